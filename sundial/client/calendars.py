"""Exclusion calendars as typed models: the rules a calendar holds, the spec you send, and
the calendar as stored.

>>> CalendarSpec(description="weekends", rules=[Weekly(days=["sat-sun"])])
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dates(_Rule):
    """Whole local days."""

    type: Literal["dates"] = "dates"
    dates: list[date]


class DateRange(_Rule):
    """Every local day from ``start`` to ``end``, both included."""

    type: Literal["date_range"] = "date_range"
    start: date
    end: date


class Weekly(_Rule):
    """Days of the week (``["sat-sun"]``, ``["mon", "wed"]``), whole or within a local time
    window (``HH:MM``; ``24:00`` is the end of the day)."""

    type: Literal["weekly"] = "weekly"
    days: list[str]
    start_time: str = "00:00"
    end_time: str = "24:00"


class Holidays(_Rule):
    """Public holidays of a country (ISO 3166 code) and optional subdivision."""

    type: Literal["holidays"] = "holidays"
    country: str
    subdivision: str | None = None


class Ics(_Rule):
    """The events of an iCalendar file (its text)."""

    type: Literal["ics"] = "ics"
    content: str


CalendarRule = Annotated[Dates | DateRange | Weekly | Holidays | Ics, Field(discriminator="type")]


class CalendarSpec(BaseModel):
    """What a calendar excludes: an instant is excluded when any rule covers it."""

    model_config = ConfigDict(extra="forbid")

    rules: list[CalendarRule]
    description: str = ""


class Calendar(BaseModel):
    """A named exclusion calendar as stored; ``used_by`` (the schedules naming it) is
    filled in when one calendar is read."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    rules: list[dict[str, Any]]
    version: int
    created_at: datetime
    updated_at: datetime
    used_by: list[str] | None = None


def calendar_body(spec: CalendarSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The request body of a calendar spec (a model or a plain mapping)."""
    if isinstance(spec, CalendarSpec):
        return spec.model_dump(mode="json")
    body: dict[str, Any] = to_jsonable_python(dict(spec))
    return body
