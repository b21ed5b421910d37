"""Exclusion calendar rules: what a named calendar excludes, validated, and the intervals of
instants each rule covers in a time zone.

A rule covers whole local days (``dates``, ``date_range``, ``holidays``, all-day ICS events)
or local time windows (``weekly``), evaluated in the schedule's time zone; timed ICS events
are absolute instants. A local day runs from the first instant its midnight occurs to the
first instant the next midnight occurs, so a DST change inside it changes nothing; a weekly
window ends at the last instant its end time occurs (a repeated hour is covered twice).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal

import holidays
import icalendar
import recurring_ical_events
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from scheduler.timing.wallclock import first_instant, last_instant

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MIDNIGHT = time(0)
MAX_ICS_CHARS = 1_000_000
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day_text(value: Any) -> Any:
    # Pydantic would read a number as a Unix time and take "2026-12-24T00:00" as that day:
    # a date is sent as the string YYYY-MM-DD, nothing else.
    if not isinstance(value, str):
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        raise ValueError("a date is a string YYYY-MM-DD")
    if not _ISO_DAY.match(value):
        raise ValueError("a date is a string YYYY-MM-DD")
    return value


Day = Annotated[date, Strict(False), BeforeValidator(_day_text)]
"""A calendar date sent as ``YYYY-MM-DD``, in models that are otherwise strict."""


@dataclass(frozen=True)
class Span:
    """Instants ``[start, end)`` a rule excludes, and what excluded them (for reasons)."""

    start: datetime
    end: datetime
    label: str


class _Rule(BaseModel):
    # Strict: a text field takes a JSON string, never a number or a boolean coerced.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatesRule(_Rule):
    """Whole local days."""

    type: Literal["dates"] = "dates"
    dates: list[Day] = Field(min_length=1, max_length=5000, examples=[["2026-12-24"]])

    def spans(self, lo: date, hi: date, tz: tzinfo) -> Iterator[Span]:
        for day in self.dates:
            if lo <= day <= hi:
                yield _day_span(day, day, tz, day.isoformat())


class DateRangeRule(_Rule):
    """Every local day from ``start`` to ``end``, both included."""

    type: Literal["date_range"] = "date_range"
    start: Day
    end: Day

    @model_validator(mode="after")
    def _ordered(self) -> DateRangeRule:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self

    def spans(self, lo: date, hi: date, tz: tzinfo) -> Iterator[Span]:
        if self.start <= hi and self.end >= lo:
            label = f"{self.start.isoformat()} to {self.end.isoformat()}"
            yield _day_span(max(self.start, lo), min(self.end, hi), tz, label)


def _parse_days(items: list[str]) -> list[int]:
    days: set[int] = set()
    for item in items:
        first, dash, last = item.strip().lower().partition("-")
        if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
            raise ValueError(f"{item!r} is not a day name (mon … sun) or a range like sat-sun")
        lo = WEEKDAYS.index(first)
        hi = WEEKDAYS.index(last) if dash else lo
        span = (hi - lo) % 7
        days.update((lo + i) % 7 for i in range(span + 1))
    return sorted(days)


def _parse_clock(text: str, *, end: bool) -> time | None:
    """``HH:MM`` or ``HH:MM:SS``; ``24:00`` (as an end) is None, the next midnight."""
    if end and text in ("24:00", "24:00:00"):
        return None
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a time of day HH:MM[:SS]") from exc


class WeeklyRule(_Rule):
    """Days of the week, whole or within a local time window (``start_time`` before
    ``end_time``; ``24:00`` is the end of the day)."""

    type: Literal["weekly"] = "weekly"
    days: list[str] = Field(min_length=1, max_length=7, examples=[["sat-sun"]])
    start_time: str = Field(default="00:00", examples=["00:00"])
    end_time: str = Field(default="24:00", examples=["24:00"])

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        _parse_days(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> WeeklyRule:
        begin = _parse_clock(self.start_time, end=False)
        finish = _parse_clock(self.end_time, end=True)
        if begin is None or (finish is not None and finish <= begin):
            raise ValueError("start_time must be before end_time (a night window is two rules)")
        return self

    def spans(self, lo: date, hi: date, tz: tzinfo) -> Iterator[Span]:
        weekdays = set(_parse_days(self.days))
        begin = _parse_clock(self.start_time, end=False)
        finish = _parse_clock(self.end_time, end=True)
        assert begin is not None
        label = f"weekly {','.join(self.days)} {self.start_time}-{self.end_time}"
        day = lo
        while day <= hi:
            if day.weekday() in weekdays:
                start = first_instant(datetime.combine(day, begin), tz)
                if finish is None:
                    end = first_instant(datetime.combine(day + timedelta(days=1), _MIDNIGHT), tz)
                else:
                    end = last_instant(datetime.combine(day, finish), tz)
                yield Span(start, end, label)
            day += timedelta(days=1)


@functools.lru_cache(maxsize=256)
def _holidays_of(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return {day: str(name) for day, name in found.items()}


class HolidaysRule(_Rule):
    """Public holidays of a country (ISO 3166 code) and optional subdivision, from the
    ``holidays`` package."""

    type: Literal["holidays"] = "holidays"
    country: str = Field(min_length=2, max_length=3, examples=["DE"])
    subdivision: str | None = Field(default=None, max_length=16, examples=["BY"])

    @model_validator(mode="after")
    def _known(self) -> HolidaysRule:
        supported = holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(f"country {self.country!r} is not supported by holidays")
        if self.subdivision is not None and self.subdivision not in supported[self.country]:
            raise ValueError(f"{self.country} has no subdivision {self.subdivision!r}")
        return self

    def spans(self, lo: date, hi: date, tz: tzinfo) -> Iterator[Span]:
        for year in range(lo.year, hi.year + 1):
            for day, name in sorted(_holidays_of(self.country, self.subdivision, year).items()):
                if lo <= day <= hi:
                    yield _day_span(day, day, tz, name)


@functools.lru_cache(maxsize=64)
def _parse_ics(content: str) -> Any:
    return icalendar.Calendar.from_ical(content)


class IcsRule(_Rule):
    """The events of an iCalendar file: all-day events exclude local days, timed events
    their instants, floating times are read in the schedule's time zone, and recurring
    events (RRULE, RDATE, EXDATE) are expanded."""

    type: Literal["ics"] = "ics"
    content: str = Field(min_length=1, max_length=MAX_ICS_CHARS)

    @field_validator("content")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            calendar = _parse_ics(value)
            recurring_ical_events.of(calendar).between((2000, 1, 1), (2000, 1, 2))
        except Exception as exc:  # the parsers raise many kinds for malformed input
            raise ValueError(f"not an iCalendar file: {exc}") from exc
        if calendar.name != "VCALENDAR":
            raise ValueError("not an iCalendar file: expected BEGIN:VCALENDAR")
        return value

    def spans(self, lo: date, hi: date, tz: tzinfo) -> Iterator[Span]:
        calendar = _parse_ics(self.content)
        events = recurring_ical_events.of(calendar).between(lo, hi + timedelta(days=1))
        for event in events:
            label = str(event.get("SUMMARY") or "ics event")
            start = event.get("DTSTART").dt
            end_prop = event.get("DTEND")
            end = end_prop.dt if end_prop is not None else None
            if not isinstance(start, datetime):
                last = (end - timedelta(days=1)) if isinstance(end, date) else start
                yield _day_span(start, max(start, last), tz, label)
                continue
            begin = _instant(start, tz)
            finish = _instant(end, tz) if isinstance(end, datetime) else begin
            if finish > begin:
                yield Span(begin, finish, label)


def _instant(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:  # a floating time: the schedule's own wall clock
        return first_instant(value, tz)
    return value.astimezone(UTC)


def _day_span(first: date, last: date, tz: tzinfo, label: str) -> Span:
    start = first_instant(datetime.combine(first, _MIDNIGHT), tz)
    end = first_instant(datetime.combine(last + timedelta(days=1), _MIDNIGHT), tz)
    return Span(start, end, label)


CalendarRule = Annotated[
    DatesRule | DateRangeRule | WeeklyRule | HolidaysRule | IcsRule, Field(discriminator="type")
]
