"""Celery beat → sundial: a Celery app's ``beat_schedule`` as schedules in the API's shape.

Beat's ``crontab`` requires minute, hour, day of month, month and day of week all to match
(Sunday is 0, 7 is refused); standard cron, which sundial follows, fires on a day matching
*either* a restricted day of month or a restricted day of week. So each field is written as
the explicit set Celery expanded it to, and an entry restricting both days is refused
rather than silently widened. Entries with no equivalent (``solar``, custom schedule
classes, relative intervals, options sundial cannot carry) are refused, each naming the
entry, before anything is written.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule, solar

# beat_schedule entry keys beat itself reads.
_ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative"}
_OPTIONS = {
    "queue",
    "priority",
    "expires",
    "time_limit",
    "soft_time_limit",
    "exchange",
    "routing_key",
    "headers",
}
# apply_async options stored as they are, under sundial's names.
_SAME_OPTIONS = {
    "time_limit": "time_limit_seconds",
    "soft_time_limit": "soft_time_limit_seconds",
    "routing_key": "routing_key",
    "headers": "headers",
}
_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")
# (attribute of crontab, lowest value, number of values) in crontab field order.
_CRON_FIELDS = (
    ("minute", 0, 60),
    ("hour", 0, 24),
    ("day_of_month", 1, 31),
    ("month_of_year", 1, 12),
    ("day_of_week", 0, 7),
)


class BeatImportError(Exception):
    """The app or one of its entries cannot be imported; the message names the entry."""


def load_app(reference: str, search_path: Path | None = None) -> Celery:
    """The Celery app named ``module:attribute`` (or ``module``, which holds ``app``/``celery``)."""
    module_name, _, attribute = reference.partition(":")
    if str(search_path or Path.cwd()) not in sys.path:
        sys.path.insert(0, str(search_path or Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BeatImportError(f"cannot import {module_name!r}: {exc}") from exc
    names = [attribute] if attribute else ["app", "celery"]
    for name in names:
        found: Any = module
        try:
            for part in name.split("."):
                found = getattr(found, part)
        except AttributeError:
            continue
        if isinstance(found, Celery):
            return found
        raise BeatImportError(f"{reference}: {name} is a {type(found).__name__}, not a Celery app")
    raise BeatImportError(f"{module_name} has no Celery app named {' or '.join(names)}")


def convert(app: Celery) -> list[dict[str, Any]]:
    """Every entry of ``app.conf.beat_schedule`` as a schedule document; refuses all-or-nothing."""
    timezone = _zone_name(app)
    documents: list[dict[str, Any]] = []
    problems: list[str] = []
    names: dict[str, str] = {}
    for name, entry in (app.conf.beat_schedule or {}).items():
        try:
            document = _convert_entry(app, str(name), entry, timezone)
        except BeatImportError as exc:
            problems.append(str(exc))
            continue
        if document["id"] in names:
            problems.append(
                f"beat entry {name!r}: its id {document['id']!r} is also "
                f"the id of entry {names[document['id']]!r}; rename one of them"
            )
            continue
        names[document["id"]] = str(name)
        documents.append(document)
    if problems:
        raise BeatImportError("\n".join(problems))
    return documents


def schedule_id(name: str) -> str:
    """A sundial id made from a beat entry name: other characters become ``-``."""
    return _ID_CHARS.sub("-", name).strip("-._:")[:128]


def _convert_entry(app: Celery, name: str, entry: Any, timezone: str) -> dict[str, Any]:
    where = f"beat entry {name!r}"
    if not isinstance(entry, Mapping):
        raise BeatImportError(f"{where}: expected a dict, got {type(entry).__name__}")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise BeatImportError(f"{where}: keys with no sundial equivalent: {sorted(unknown)}")
    if "task" not in entry or "schedule" not in entry:
        raise BeatImportError(f"{where}: needs 'task' and 'schedule'")
    task = str(entry["task"])
    identifier = schedule_id(name)
    if not identifier:
        raise BeatImportError(f"{where}: no usable id can be made from its name")
    document: dict[str, Any] = {
        "id": identifier,
        "task": task,
        "trigger": _trigger(where, entry["schedule"], bool(entry.get("relative")), timezone),
        "args": _json(where, "args", list(entry.get("args") or ())),
        "kwargs": _json(where, "kwargs", dict(entry.get("kwargs") or {})),
        "description": f"Celery beat entry {name!r}",
    }
    document.update(_options(app, where, task, entry.get("options") or {}))
    return document


def _trigger(where: str, value: Any, relative: bool, timezone: str) -> dict[str, Any]:
    if isinstance(value, solar):
        raise BeatImportError(f"{where}: solar schedules have no sundial equivalent")
    if isinstance(value, crontab):
        return {"type": "cron", "expression": cron_expression(where, value), "timezone": timezone}
    if isinstance(value, schedule) and type(value) is schedule:
        if value.relative or relative:
            raise BeatImportError(f"{where}: relative=True has no sundial equivalent")
        return _interval(where, value.run_every.total_seconds())
    if isinstance(value, timedelta):
        if relative:
            raise BeatImportError(f"{where}: relative=True has no sundial equivalent")
        return _interval(where, value.total_seconds())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _interval(where, float(value))
    raise BeatImportError(f"{where}: a {type(value).__name__} schedule has no sundial equivalent")


def cron_expression(where: str, value: crontab) -> str:
    """The crontab as standard cron, field by field from the values Celery expanded."""
    fields = {name: sorted(getattr(value, name)) for name, _, _ in _CRON_FIELDS}
    full = {name: len(fields[name]) == size for name, _, size in _CRON_FIELDS}
    if not full["day_of_month"] and not full["day_of_week"]:
        raise BeatImportError(
            f"{where}: restricts both day_of_month and day_of_week; Celery requires both to "
            "match, standard cron fires on either, so there is no equivalent"
        )
    parts = []
    for name, _, _ in _CRON_FIELDS:
        parts.append("*" if full[name] else _compress(fields[name]))
    return " ".join(parts)


def _compress(values: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` → ``1-3,5``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _interval(where: str, seconds: float) -> dict[str, Any]:
    if seconds < 1:
        raise BeatImportError(f"{where}: every {seconds:g} s; sundial intervals are at least 1 s")
    return {"type": "interval", "seconds": seconds}


def _options(app: Celery, where: str, task: str, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise BeatImportError(f"{where}: options with no sundial equivalent: {sorted(unknown)}")
    out: dict[str, Any] = {"queue": _queue(app, task, options.get("queue"))}
    if options.get("priority") is not None:
        out["priority"] = int(options["priority"])
    expires = options.get("expires")
    if expires is not None:
        if isinstance(expires, timedelta):
            expires = expires.total_seconds()
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise BeatImportError(
                f"{where}: expires must be seconds; an absolute time has no per-fire equivalent"
            )
        out["expires_seconds"] = float(expires)
    for option, field in _SAME_OPTIONS.items():
        if options.get(option) is not None:
            out[field] = options[option]
    exchange = options.get("exchange")
    if exchange is not None:
        out["exchange"] = str(getattr(exchange, "name", exchange))
    if ("exchange" in out) != ("routing_key" in out):
        # Celery publishes to an exchange only with a routing key (else to the queue), so
        # the API takes them together: one alone would mean something else than in beat.
        raise BeatImportError(
            f"{where}: exchange and routing_key are used together or not at all; "
            "Celery ignores one without the other"
        )
    return out


def _queue(app: Celery, task: str, queue: Any) -> str:
    if queue is None:
        # Where Celery itself would route the task: task_routes, else the default queue.
        queue = app.amqp.router.route({}, task).get("queue")
    name = getattr(queue, "name", queue)
    return str(name or app.conf.task_default_queue or "celery")


def _json(where: str, field: str, value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise BeatImportError(f"{where}: {field} are not JSON: {exc}") from exc
    return value


def _zone_name(app: Celery) -> str:
    zone = app.timezone
    name = getattr(zone, "key", None) or str(zone)
    return "UTC" if name in ("UTC", "Etc/UTC", "utc") else name
