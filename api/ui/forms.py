"""The schedule form: from a schedule's JSON document to form fields and back.

The form builds the same JSON document a client would send, and the API's models and
route functions validate it; only what HTML itself cannot carry (JSON in a text box,
``key=value`` label lines) is checked here, with the error placed by its field.
Numbers and times are passed on as typed, so the API's own messages name them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from api import strict_json
from api.ui.refusals import Refused

TRIGGER_TYPES = ("cron", "interval", "date", "delay")
OVERLAPS = ("allow", "skip", "buffer_one", "cancel_previous")
# Fields that hold null when left empty.
_OPTIONAL = (
    "priority",
    "expires_seconds",
    "misfire_grace_seconds",
    "pause_after_failures",
    "start_at",
    "end_at",
    "time_limit_seconds",
    "soft_time_limit_seconds",
)
# Text fields that hold null when left empty (exchange and routing key go together).
_OPTIONAL_TEXT = ("exchange", "routing_key")
_RETRY = ("max_attempts", "backoff_seconds", "backoff_max_seconds")
_TIMES = ("start_at", "end_at")
# What a new schedule's form starts with: the API's defaults.
NEW_FORM: dict[str, str] = {
    "id": "",
    "task": "",
    "description": "",
    "trigger.type": "cron",
    "trigger.expression": "",
    "trigger.timezone": "UTC",
    "trigger.seconds": "",
    "trigger.run_at": "",
    "args": "[]",
    "kwargs": "{}",
    "labels": "",
    "queue": "celery",
    "priority": "",
    "expires_seconds": "",
    "misfire_grace_seconds": "60",
    "coalesce": "on",
    "overlap": "allow",
    "jitter_seconds": "0",
    "retry.max_attempts": "",
    "retry.backoff_seconds": "10",
    "retry.backoff_max_seconds": "3600",
    "pause_after_failures": "",
    "start_at": "",
    "end_at": "",
    "paused": "",
    "time_limit_seconds": "",
    "soft_time_limit_seconds": "",
    "exchange": "",
    "routing_key": "",
    "headers": "{}",
}


# Where the form shows an error next to its input; "trigger" and "retry" head their group.
_PLACED = {*NEW_FORM, "trigger", "retry"}


def unplaced(errors: Mapping[str, str]) -> list[tuple[str, str]]:
    """The errors no input of the form shows (listed at the top instead)."""
    return [
        (name, text)
        for name, text in errors.items()
        if name not in _PLACED and not name.startswith("labels.")
    ]


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def fields_of(document: Mapping[str, Any]) -> dict[str, str]:
    """The form's fields for a schedule's JSON document (``SchedulePublic.spec_document``)."""
    trigger = document["trigger"]
    retry = document.get("retry") or {}
    fields = dict(NEW_FORM)
    fields.update(
        {
            "task": document["task"],
            "description": document.get("description", ""),
            "trigger.type": trigger["type"],
            "trigger.expression": _text(trigger.get("expression")),
            "trigger.timezone": _text(trigger.get("timezone") or "UTC"),
            "trigger.seconds": _text(trigger.get("seconds")),
            "trigger.run_at": _text(trigger.get("run_at")),
            "args": json.dumps(document.get("args", [])),
            "kwargs": json.dumps(document.get("kwargs", {}), indent=2),
            "labels": "\n".join(f"{k}={v}" for k, v in sorted(document["labels"].items())),
            "queue": document["queue"],
            "overlap": document["overlap"],
            "jitter_seconds": _text(document["jitter_seconds"]),
            "coalesce": "on" if document["coalesce"] else "",
            "paused": "on" if document.get("paused") else "",
            "headers": json.dumps(document.get("headers") or {}, indent=2),
        }
    )
    fields.update({name: _text(document.get(name)) for name in (*_OPTIONAL, *_OPTIONAL_TEXT)})
    if retry:
        fields.update({f"retry.{name}": _text(retry.get(name)) for name in _RETRY})
    else:
        fields["retry.max_attempts"] = ""
    return fields


def _json(fields: Mapping[str, str], name: str, errors: dict[str, str]) -> Any:
    try:
        return strict_json.loads((fields.get(name, "") or "null").encode())
    except ValueError as exc:
        errors[name] = f"not valid JSON: {exc}"
        return None


def _number(text: str) -> int | float | str | None:
    """A number typed in a text box, as JSON would carry it; the API's validation (strict
    about types) names the field when the text is no number."""
    text = text.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return text


def _labels(text: str, errors: dict[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            errors["labels"] = f"line {number}: expected key=value"
            continue
        labels[key.strip()] = value.strip()
    return labels


def _trigger(fields: Mapping[str, str]) -> dict[str, Any]:
    kind = fields.get("trigger.type", "cron")
    if kind == "cron":
        return {
            "type": "cron",
            "expression": fields.get("trigger.expression", "").strip(),
            "timezone": fields.get("trigger.timezone", "").strip() or "UTC",
        }
    if kind == "date":
        return {"type": "date", "run_at": fields.get("trigger.run_at", "").strip()}
    return {"type": kind, "seconds": _number(fields.get("trigger.seconds", ""))}


def document_of(
    fields: Mapping[str, str], stored: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The schedule document the form describes; :class:`Refused` (422) naming the field
    when a JSON box or the labels cannot be read.

    ``stored`` is the edited schedule's document (``SchedulePublic.spec_document``): the
    form overrides only the fields it shows, so a field it does not show (calendars, the
    success deadline, any added later) survives an edit unchanged instead of falling back
    to its default.
    """
    errors: dict[str, str] = {}
    document: dict[str, Any] = dict(stored or {})
    document |= {
        "task": fields.get("task", "").strip(),
        "description": fields.get("description", ""),
        "trigger": _trigger(fields),
        "args": _json(fields, "args", errors),
        "kwargs": _json(fields, "kwargs", errors),
        "labels": _labels(fields.get("labels", ""), errors),
        "queue": fields.get("queue", "").strip(),
        "overlap": fields.get("overlap", "allow"),
        "coalesce": bool(fields.get("coalesce")),
        "paused": bool(fields.get("paused")),
        "jitter_seconds": _number(fields.get("jitter_seconds", "")) or 0,
        "headers": _json(fields, "headers", errors) or {},
    }
    for name in _OPTIONAL_TEXT:
        document[name] = fields.get(name, "").strip() or None
    for name in _OPTIONAL:
        text = fields.get(name, "")
        document[name] = (text.strip() or None) if name in _TIMES else _number(text)
    if fields.get("retry.max_attempts", "").strip():
        document["retry"] = {
            name: value
            for name in _RETRY
            if (value := _number(fields.get(f"retry.{name}", ""))) is not None
        }
    else:
        document["retry"] = None
    if errors:
        raise Refused(422, "Some fields need fixing.", errors)
    return document


def document_of_json(text: str) -> dict[str, Any]:
    """The schedule document typed in the JSON editor; :class:`Refused` when it is not a
    JSON object."""
    try:
        document = strict_json.loads(text.encode())
    except ValueError as exc:
        raise Refused(422, "Some fields need fixing.", {"json": f"not valid JSON: {exc}"}) from exc
    if not isinstance(document, dict):
        raise Refused(422, "Some fields need fixing.", {"json": "expected a JSON object"})
    return document


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (a dependency: the endpoints using it stay sync)."""
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(read_form)]
