"""Standard crontab on top of APScheduler's ``CronTrigger``, with vixie cron's DST rule.

APScheduler 3 reads day-of-week ``0`` as Monday, rejects ``7``, ANDs day-of-month with
day-of-week, and fires a fixed wall-clock time twice on the fall-back day. We parse the
crontab ourselves into explicit value lists, let ``CronTrigger`` find matching wall-clock
times, and map wall-clock times to instants here:

* hour field starting with ``*``: the schedule follows elapsed time, so every real instant
  whose local time matches fires (both passes of a repeated hour; none in a gap);
* otherwise a repeated wall-clock time fires once, at its first occurrence, and a skipped
  one fires at the first instant after the gap.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger as _APSCronTrigger

from scheduler.errors import InvalidSchedule
from scheduler.timing.wallclock import exists, first_instant, gap_exit, is_ambiguous, transition

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n.lower(): i for i, n in enumerate(calendar.month_abbr) if n}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# APScheduler's day-of-week names, indexed by crontab's numbering (0 = Sunday).
_APS_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_MAX_MONTH_DAYS = {m: (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in range(1, 13)}
_TICK = timedelta(microseconds=1)
_SEPARATOR = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 0, 7, _DAYS)


def _value(text: str, field: _Field) -> int:
    if field.names and text.lower() in field.names:
        return field.names[text.lower()]
    if not _is_number(text):
        raise ValueError(f"{field.name}: {text!r} is not a number or name")
    number = int(text)
    if not field.lo <= number <= field.hi:
        raise ValueError(f"{field.name}: {number} is outside {field.lo}-{field.hi}")
    return number


def _is_number(text: str) -> bool:
    # str.isdigit alone accepts non-ASCII digits such as '٣'.
    return text.isascii() and text.isdigit()


def expand_field(text: str, field: _Field) -> set[int]:
    """The values a crontab field matches: lists, ranges, steps, names and ``*``."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text) or int(step_text) == 0:
                raise ValueError(f"{field.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            lo, hi = field.lo, field.hi
        elif "-" in base:
            first, _, last = base.partition("-")
            lo, hi = _value(first, field), _value(last, field)
            if lo > hi:
                raise ValueError(f"{field.name}: range {base!r} runs backwards")
        else:
            lo = _value(base, field)
            hi = field.hi if slash else lo
        values.update(range(lo, hi + 1, step))
    if field is _DOW:
        # 7 is Sunday as well as 0; `*` over 0-7 would otherwise list Sunday twice.
        values = {v % 7 for v in values}
    return values


def _as_list(values: set[int]) -> str:
    """Compact ``1,2,3,7`` to ``1-3,7`` so APScheduler has few expressions to test."""
    ordered = sorted(values)
    parts: list[str] = []
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def load_timezone(name: str) -> ZoneInfo:
    """An IANA time zone, or :class:`InvalidSchedule` naming ``trigger.timezone``."""
    if name == "localtime":
        # Not an IANA zone: the host's /etc/localtime, so API and scheduler could disagree.
        raise InvalidSchedule("trigger.timezone", f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: the tzdata package opens the name as a file (a 300-character name fails).
        raise InvalidSchedule("trigger.timezone", f"unknown time zone {name!r}") from exc


class Crontab:
    """A parsed crontab expression in one time zone; ``next_after`` gives fire times."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = expression.strip()
        self.tz: tzinfo = load_timezone(timezone)
        try:
            self._matchers, self.follows_elapsed_time = self._parse(self.expression)
        except ValueError as exc:
            raise InvalidSchedule("trigger.expression", str(exc)) from exc

    @staticmethod
    def _parse(expression: str) -> tuple[list[_APSCronTrigger], bool]:
        text = MACROS.get(expression.lower(), expression)
        if text.startswith("@"):
            raise ValueError(f"unknown macro {text!r}")
        fields = _SEPARATOR.split(text)
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError("a crontab has 5 fields (or 6 with leading seconds)")
        second, minute, hour, dom, month, dow = fields
        sets = {
            "second": expand_field(second, _SECOND),
            "minute": expand_field(minute, _MINUTE),
            "hour": expand_field(hour, _HOUR),
            "month": expand_field(month, _MONTH),
        }
        days = expand_field(dom, _DOM)
        weekdays = expand_field(dow, _DOW)
        common = {k: _as_list(v) for k, v in sets.items()}
        dom_any, dow_any = dom.startswith("*"), dow.startswith("*")
        dom_occurs = any(d <= _MAX_MONTH_DAYS[m] for m in sets["month"] for d in days)
        # Vixie cron: when both day fields are restricted, a day matching either fires.
        if not dom_any and not dow_any:
            day_rules = [(set(range(1, 32)), weekdays)]
            # A day-of-month that never occurs (`30 2`) would send APScheduler searching
            # to the year 9999 on every call; the day-of-week rule alone decides then.
            if dom_occurs:
                day_rules.append((days, set(range(7))))
        else:
            day_rules = [(days, weekdays)]
        if dow_any and not dom_occurs:
            raise ValueError(f"day-of-month {dom!r} never occurs in month {month!r}")
        matchers = [
            _APSCronTrigger(
                **common,
                day=_as_list(day_set),
                day_of_week=",".join(_APS_DAYS[d] for d in sorted(weekday_set)),
                timezone=UTC,
            )
            for day_set, weekday_set in day_rules
        ]
        return matchers, hour.startswith("*")

    def _next_wall(self, wall: datetime) -> datetime:
        """The first matching wall-clock time strictly after ``wall`` (naive)."""
        start = wall.replace(tzinfo=UTC) + _TICK
        candidates = [m.get_next_fire_time(None, start) for m in self._matchers]
        found: datetime = min(c for c in candidates if c is not None)
        return found.replace(tzinfo=None)

    def next_after(self, after: datetime) -> datetime:
        """The first fire instant strictly after ``after`` (aware), as aware UTC."""
        after = after.astimezone(UTC)
        local = after.astimezone(self.tz)
        wall = local.replace(tzinfo=None, fold=0)
        if self.follows_elapsed_time:
            return self._next_elapsed(after, local)
        if local.fold == 1 and self._is_ambiguous(local):
            # In the second pass of a repeated interval every wall time left in it already
            # fired in the first pass: resume the search where the repetition ends.
            wall = self._repeat_bounds(local)[1] - _TICK
        while True:
            wall = self._next_wall(wall)
            instant = self._wall_to_instant(wall)
            if instant > after:
                return instant

    def _next_elapsed(self, after: datetime, local: datetime) -> datetime:
        # Every wall time that exists fires, at each instant it occurs; so if we are in the
        # first pass of a repeated hour, the second pass's matches come next in real time.
        wall = local.replace(tzinfo=None, fold=0)
        best: datetime | None = None
        probe = wall
        while best is None:
            probe = self._next_wall(probe)
            exists = False
            for fold in (0, 1):
                candidate = probe.replace(tzinfo=self.tz, fold=fold)
                if not self._exists(candidate):
                    continue
                exists = True
                instant = candidate.astimezone(UTC)
                if instant > after and (best is None or instant < best):
                    best = instant
            if not exists:
                # No wall time in a gap exists: continue from the gap's end, not through
                # each matching second of it.
                probe = self._gap_exit(probe).astimezone(self.tz).replace(tzinfo=None) - _TICK
        if local.fold == 0 and self._is_ambiguous(local):
            # Matches in the repeated hour's second pass occur before `best` in real time.
            repeat_start = self._repeat_bounds(local)[0]
            probe = repeat_start - _TICK
            while True:
                probe = self._next_wall(probe)
                second_pass = probe.replace(tzinfo=self.tz, fold=1)
                if not self._is_ambiguous(second_pass):
                    break
                instant = second_pass.astimezone(UTC)
                if instant > after:
                    best = min(best, instant)
                    break
        return best

    def _wall_to_instant(self, wall: datetime) -> datetime:
        return first_instant(wall, self.tz)

    def _exists(self, local: datetime) -> bool:
        return exists(local)

    def _is_ambiguous(self, local: datetime) -> bool:
        return is_ambiguous(local)

    def _repeat_bounds(self, local: datetime) -> tuple[datetime, datetime]:
        """The naive wall times between which the interval containing ``local`` repeats."""
        first = local.replace(fold=0)
        second = local.replace(fold=1)
        offset_before, offset_after = first.utcoffset(), second.utcoffset()
        assert offset_before is not None and offset_after is not None
        transition = self._transition(first.astimezone(UTC), second.astimezone(UTC))
        return (
            (transition + offset_after).replace(tzinfo=None),
            (transition + offset_before).replace(tzinfo=None),
        )

    def _gap_exit(self, wall: datetime) -> datetime:
        """The first instant after the DST gap that swallowed ``wall``."""
        return gap_exit(wall, self.tz)

    def _transition(self, lo: datetime, hi: datetime) -> datetime:
        """The instant in ``(lo, hi]`` where the UTC offset changes from that of ``lo``."""
        return transition(lo, hi, self.tz)
