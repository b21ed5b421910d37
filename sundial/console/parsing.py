"""Reading command-line values: durations, times, JSON arguments, labels, triggers."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import click

from sundial.client import Cron, Date, Delay, Interval, Trigger

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}


def duration(text: str, name: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h30m``, ``2d`` → seconds."""
    compact = text.replace(" ", "").lower()
    pos, total = 0, 0.0
    while pos < len(compact):
        match = _DURATION.match(compact, pos)
        if match is None:
            raise click.BadParameter(
                f"{text!r} is not a duration like 90, 15m or 1h30m", param_hint=name
            )
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise click.BadParameter("empty duration", param_hint=name)
    return total


def timestamp(text: str, name: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` or ``+01:00``)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an RFC 3339 time", param_hint=name) from exc
    if value.tzinfo is None:
        raise click.BadParameter(f"{text!r} needs an offset, e.g. Z or +01:00", param_hint=name)
    return value


def moment(text: str, name: str, now: datetime) -> datetime:
    """An RFC 3339 time, or a duration ago (``90m``, ``2h``, ``7d``)."""
    try:
        return timestamp(text, name)
    except click.BadParameter:
        pass
    try:
        return now - timedelta(seconds=duration(text, name))
    except click.BadParameter:
        raise click.BadParameter(
            f"{text!r} is neither an RFC 3339 time nor a duration ago like 2h or 7d",
            param_hint=name,
        ) from None


def json_value(text: str | None, name: str, kind: type) -> Any:
    """A JSON argument of the given kind (list or dict)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=name) from exc
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=name)
    return value


def label_pairs(pairs: tuple[str, ...], name: str = "--label") -> dict[str, str]:
    """``k=v`` (or ``k:v``) pairs."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            key, sep, value = pair.partition(":")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint=name)
        out[key] = value
    return out


def trigger_from(
    cron: str | None,
    timezone: str,
    every: str | None,
    at: str | None,
    in_: str | None,
) -> Trigger | None:
    """The one trigger given by ``--cron``/``--every``/``--at``/``--in``, or None."""
    given = [
        name for name, v in (("--cron", cron), ("--every", every), ("--at", at), ("--in", in_)) if v
    ]
    if len(given) > 1:
        raise click.UsageError(f"give one trigger, not {' and '.join(given)}")
    if cron:
        return Cron(expression=cron, timezone=timezone)
    if every:
        return Interval(seconds=duration(every, "--every"))
    if at:
        return Date(run_at=timestamp(at, "--at"))
    if in_:
        return Delay(seconds=duration(in_, "--in"))
    return None


def trigger_options(command: Any) -> Any:
    """``--cron EXPR [--timezone TZ] | --every DURATION | --at TIME | --in DURATION``."""
    for option in reversed(
        (
            click.option("--cron", metavar="EXPR", help='Crontab, e.g. "0 3 * * *".'),
            click.option(
                "--timezone",
                "--tz",
                default="UTC",
                show_default=True,
                help="IANA time zone of --cron.",
            ),
            click.option("--every", metavar="DURATION", help="Interval: 90, 15m, 1h30m, 2d."),
            click.option("--at", metavar="TIME", help="Once, at an RFC 3339 time with offset."),
            click.option("--in", "in_", metavar="DURATION", help="Once, this long from now."),
        )
    ):
        command = option(command)
    return command
