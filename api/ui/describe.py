"""Words and marks for people: a trigger in plain words, durations, the zone a schedule
lives in, and the clock changes between its next fire times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options

_MACROS = {
    "@yearly": "Once a year, at midnight on 1 January",
    "@annually": "Once a year, at midnight on 1 January",
    "@monthly": "Once a month, at midnight on the 1st",
    "@weekly": "Once a week, at midnight on Sunday",
    "@daily": "Every day at midnight",
    "@midnight": "Every day at midnight",
    "@hourly": "Every hour, on the hour",
}
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    return options


def cron_words(expression: str) -> str:
    """A crontab expression in English (``0 3 * * *``: "At 03:00"); the expression itself
    when it cannot be described."""
    macro = _MACROS.get(expression.strip().lower())
    if macro is not None:
        return macro
    try:
        return str(ExpressionDescriptor(expression, _options()).get_description())
    except Exception:  # the describer is a nicety; a stored expression is already valid
        return expression


def every(seconds: float) -> str:
    """An interval in words: "every 15 minutes", "every 90 seconds", "every day"."""
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def trigger_words(trigger: dict[str, Any]) -> str:
    """A stored trigger in plain words."""
    kind = trigger.get("type")
    if kind == "cron":
        return cron_words(str(trigger["expression"]))
    if kind == "interval":
        return every(float(trigger["seconds"])).capitalize()
    return "Once"


def zone_of(trigger: dict[str, Any]) -> str:
    """The time zone a schedule's times are read in: its cron zone, else UTC."""
    return str(trigger.get("timezone") or "UTC") if trigger.get("type") == "cron" else "UTC"


def duration(seconds: float | None) -> str:
    """A short duration: "40 ms", "2.5 s", "3 min 20 s", "2 h 5 min", "3 d 4 h"."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    if value < 1:
        return f"{sign}{value * 1000:.0f} ms"
    if value < 60:
        return f"{sign}{value:.3g} s"
    parts: list[str] = []
    rest = int(value)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if rest >= size and len(parts) < 2:
            parts.append(f"{rest // size} {unit}")
            rest %= size
        elif parts:
            break
    return sign + " ".join(parts)


def between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``, or None when either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def error_field(error: Any, key: str) -> str:
    """One field of a run's stored error (type, message, traceback), or ""."""
    value = error.get(key) if isinstance(error, dict) else None
    return "" if value is None else str(value)


@dataclass(frozen=True)
class NextFire:
    """One upcoming fire: its time, when it is published (jitter added), clock changes."""

    at: datetime
    due: datetime
    jitter_s: float
    local: str
    # Set when the zone's UTC offset differs from the previous fire's (or from now's).
    clock_change: str | None


def _offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def next_fires(
    fire_times: Sequence[datetime], due_times: Sequence[datetime], zone: str, now: datetime
) -> list[NextFire]:
    """The next fire times as shown on a schedule's page, with DST changes marked."""
    tz = ZoneInfo(zone)
    previous = now.astimezone(tz).utcoffset()
    out: list[NextFire] = []
    for at, due in zip(fire_times, due_times, strict=True):
        local = at.astimezone(tz)
        offset = local.utcoffset()
        change = None
        if offset != previous:
            direction = (
                "forward" if (offset or timedelta(0)) > (previous or timedelta(0)) else "back"
            )
            change = f"clocks go {direction}: {_offset(previous)} → {_offset(offset)}"
        previous = offset
        out.append(
            NextFire(
                at=at.astimezone(UTC),
                due=due.astimezone(UTC),
                jitter_s=(due - at).total_seconds(),
                local=local.strftime("%a %d %b %Y %H:%M:%S %Z"),
                clock_change=change,
            )
        )
    return out
