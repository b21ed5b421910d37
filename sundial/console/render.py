"""Printing results: rich tables for people, JSON and YAML for programs; plain-words triggers
and relative times."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import yaml
from cron_descriptor import ExpressionDescriptor, Options
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from sundial.client import Cron, Date, Delay, Interval, Schedule, Trigger

_MACROS = {
    "@yearly": "Every year on 1 January at 00:00",
    "@annually": "Every year on 1 January at 00:00",
    "@monthly": "Every month on day 1 at 00:00",
    "@weekly": "Every Sunday at 00:00",
    "@daily": "Every day at 00:00",
    "@midnight": "Every day at 00:00",
    "@hourly": "Every hour, at minute 0",
}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_WORDS = {"d": "day", "h": "hour", "m": "minute", "s": "second"}


def emit(data: Any, output: str) -> None:
    """Write ``data`` (models, lists, dicts) as JSON or YAML on stdout."""
    plain = to_jsonable_python(data, by_alias=True)
    if isinstance(data, BaseModel):
        plain = data.model_dump(mode="json")
    elif isinstance(data, list) and data and isinstance(data[0], BaseModel):
        plain = [item.model_dump(mode="json") for item in data]
    if output == "json":
        click.echo(json.dumps(plain, indent=2))
    else:
        click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), nl=False)


def _console() -> Console:
    # Piped output has no width: never wrap cells there, so lines stay greppable.
    console = Console(soft_wrap=False)
    return console if console.is_terminal else Console(soft_wrap=False, width=1000)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table on stdout."""
    grid = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    _console().print(grid)


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """A two-column table of names and values."""
    grid = Table(show_header=False, show_edge=False, box=None)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, value)
    _console().print(grid)


def describe_trigger(trigger: Trigger) -> str:
    """The trigger in plain words, with its time zone."""
    if isinstance(trigger, Cron):
        return f"{describe_cron(trigger.expression)} ({trigger.timezone})"
    if isinstance(trigger, Interval):
        return f"Every {words(trigger.seconds)}"
    if isinstance(trigger, Date):
        return f"Once, at {absolute(trigger.run_at)}"
    assert isinstance(trigger, Delay)
    return f"Once, {words(trigger.seconds)} from now"


def describe_cron(expression: str) -> str:
    """A crontab expression in English, or the expression itself if it cannot be read."""
    text = expression.strip()
    if text.lower() in _MACROS:
        return _MACROS[text.lower()]
    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(ExpressionDescriptor(text, options).get_description())
    except Exception:  # cron-descriptor raises several kinds; the expression still reads
        return text


def words(seconds: float) -> str:
    """``90`` → ``1 minute 30 seconds``; ``3600`` → ``hour``."""
    parts = []
    remaining = round(seconds)
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            name = _WORDS[unit]
            parts.append(f"{count} {name}s" if count != 1 else f"1 {name}")
    if seconds != round(seconds) or not parts:
        return f"{seconds:g} seconds"
    if len(parts) == 1 and parts[0].startswith("1 "):
        return parts[0][2:]
    return " ".join(parts)


def absolute(when: datetime | None) -> str:
    """A time in UTC, to the second."""
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def zone_of(trigger: Trigger) -> str:
    """The time zone a trigger is evaluated in: its own for cron, else UTC."""
    return trigger.timezone if isinstance(trigger, Cron) else "UTC"


def local(when: datetime | None, zone: str) -> str:
    """A time in ``zone``, to the second, with the zone's abbreviation (``CET``)."""
    if when is None:
        return "-"
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return absolute(when)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def relative(when: datetime | None, now: datetime) -> str:
    """``in 3h 12m`` or ``5m ago``."""
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    span = abs(delta)
    parts: list[str] = []
    for unit, size in _UNITS:
        count, span = divmod(span, size)
        if count and len(parts) < 2:
            parts.append(f"{int(count)}{unit}")
    text = " ".join(parts) or "0s"
    return f"in {text}" if delta >= 0 else f"{text} ago"


def when(at: datetime | None, now: datetime) -> str:
    """Relative and absolute: ``in 3h 12m (2026-11-22 02:00:00Z)``."""
    if at is None:
        return "-"
    return f"{relative(at, now)} ({absolute(at)})"


def labels(values: Mapping[str, str]) -> str:
    """``k=v,k2=v2``."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def schedules_table(items: Sequence[Schedule], now: datetime) -> None:
    """The schedule list: id, trigger in words, state, next run, last run, labels."""
    table(
        None,
        ("ID", "TRIGGER", "STATE", "NEXT RUN", "LAST RUN", "LABELS"),
        (
            (
                s.id,
                describe_trigger(s.trigger),
                s.state,
                when(s.next_run_at, now),
                s.last_run_state or "-",
                labels(s.labels),
            )
            for s in items
        ),
    )


def compact(value: Any) -> str:
    """JSON on one line."""
    return json.dumps(to_jsonable_python(value), separators=(",", ":"))


def now_utc() -> datetime:
    """The current time, for relative times in tables."""
    return datetime.now(UTC)
