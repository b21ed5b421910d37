"""Trigger specifications and the one code path that turns them into fire times.

The API validates triggers with these models, the preview endpoint lists fire times with
:func:`fire_times`, and the leader advances schedules with :meth:`FireTimes.next_after`:
the same function everywhere, so a preview is exactly what will fire.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from apscheduler.triggers.date import DateTrigger as _APSDateTrigger
from apscheduler.triggers.interval import IntervalTrigger as _APSIntervalTrigger
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    field_validator,
)

from scheduler.timing.cron import Crontab, load_timezone
from scheduler.timing.exclusions import Cover, Exclusions

_TICK = timedelta(microseconds=1)


def _time_text(value: Any) -> Any:
    # Pydantic would read a JSON number as a Unix time: a changed value, not the one sent.
    if isinstance(value, int | float):
        raise ValueError("a time is an RFC 3339 string with an offset, not a number")
    return value


Timestamp = Annotated[AwareDatetime, Strict(False), BeforeValidator(_time_text)]
"""An RFC 3339 time with an offset, sent as a string, in models that are otherwise strict."""


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time UTC cannot represent (0001-01-01 at a positive offset) is a
    ``ValueError``, which validation reports, where ``OverflowError`` would escape it."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is out of the representable range") from exc


class _Spec(BaseModel):
    # Strict: seconds must be a JSON number and names JSON strings; "60" or true would
    # otherwise be coerced into a value the client did not send.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CronSpec(_Spec):
    """Standard crontab in an IANA time zone."""

    type: Literal["cron"] = "cron"
    expression: str = Field(min_length=1, max_length=256, examples=["0 3 * * *"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_timezone(value)
        return value


class IntervalSpec(_Spec):
    """Every ``seconds``, anchored at ``start_at`` or at creation."""

    type: Literal["interval"] = "interval"
    seconds: float = Field(ge=1, le=366 * 86400, examples=[60])


class DateSpec(_Spec):
    """Once, at ``run_at``."""

    type: Literal["date"] = "date"
    run_at: Timestamp = Field(examples=["2026-11-22T02:00:00Z"])

    @field_validator("run_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return to_utc(value)


class DelaySpec(_Spec):
    """Once, ``seconds`` after the request; stored as a :class:`DateSpec`."""

    type: Literal["delay"] = "delay"
    seconds: float = Field(ge=0, le=10 * 366 * 86400, examples=[1])


TriggerSpec = Annotated[CronSpec | IntervalSpec | DateSpec | DelaySpec, Field(discriminator="type")]
StoredTrigger = Annotated[CronSpec | IntervalSpec | DateSpec, Field(discriminator="type")]
_stored = TypeAdapter(StoredTrigger)


def resolve(spec: CronSpec | IntervalSpec | DateSpec | DelaySpec, now: datetime) -> StoredTrigger:
    """Turn a delay into the date it means; other triggers are stored as given."""
    if isinstance(spec, DelaySpec):
        return DateSpec(run_at=now + timedelta(seconds=spec.seconds))
    return spec


def load_stored(data: dict[str, Any]) -> StoredTrigger:
    """A stored trigger from its JSON column."""
    return _stored.validate_python(data)


def zone_of(spec: StoredTrigger) -> str:
    """The time zone a schedule's calendars are evaluated in: its cron zone, else UTC."""
    return spec.timezone if isinstance(spec, CronSpec) else "UTC"


class FireTimes:
    """The fire times of one trigger within ``[start_at, end_at]``, anchored at ``anchor``.

    With ``exclusions``, an instant the trigger plans inside an exclusion calendar stays in
    the sequence (the claim records it skipped); with ``move_excluded`` the first allowed
    instant after such a stretch joins the sequence too, once however many fires the
    stretch swallowed: that is where they fire (``next_allowed``).
    """

    def __init__(
        self,
        spec: StoredTrigger,
        anchor: datetime,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        exclusions: Exclusions | None = None,
        move_excluded: bool = False,
    ) -> None:
        self.spec = spec
        self.anchor = anchor
        self.start_at = start_at
        self.end_at = end_at
        self.exclusions = exclusions
        self.move_excluded = move_excluded
        self._cron: Crontab | None = None
        self._aps: _APSIntervalTrigger | _APSDateTrigger | None = None
        if isinstance(spec, CronSpec):
            self._cron = Crontab(spec.expression, spec.timezone)
        elif isinstance(spec, IntervalSpec):
            self._aps = _APSIntervalTrigger(
                seconds=spec.seconds, start_date=start_at or anchor, timezone=UTC
            )
        else:
            self._aps = _APSDateTrigger(run_date=spec.run_at, timezone=UTC)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``, or None when the trigger is done."""
        planned = self.planned_after(after)
        if self.exclusions is None or not self.move_excluded:
            return planned
        # A stretch holding ``after`` that swallowed a planned fire fires at its end.
        cover = self.exclusions.cover(after)
        if cover is None or cover.end is None or (planned is not None and planned <= cover.end):
            return planned
        # Only fires planned since the schedule exists count (not one before its creation).
        swallowed = self.planned_after(max(cover.start, self.anchor) - _TICK)
        return cover.end if swallowed is not None and swallowed <= after else planned

    def excluded(self, instant: datetime) -> Cover | None:
        """The calendar stretch holding a planned ``instant``, or None when it may fire."""
        return None if self.exclusions is None else self.exclusions.cover(instant)

    def moved_from(self, instant: datetime) -> datetime | None:
        """For a fire ``next_allowed`` moved to ``instant``: the first fire it stands for."""
        if self.exclusions is None or not self.move_excluded:
            return None
        if self.planned_after(instant - _TICK) == instant:
            return None
        cover = self.exclusions.cover(instant - _TICK)
        return None if cover is None else self.planned_after(cover.start - _TICK)

    def planned_after(self, after: datetime) -> datetime | None:
        """The trigger's own next instant strictly after ``after``, calendars aside."""
        if self.start_at is not None and after < self.start_at:
            after = self.start_at - _TICK
        if self._cron is not None:
            fire: datetime | None = self._cron.next_after(after)
        else:
            assert self._aps is not None
            fire = self._aps.get_next_fire_time(None, after + _TICK)
            if isinstance(self.spec, DateSpec) and fire is not None and fire <= after:
                fire = None
        if fire is None or (self.end_at is not None and fire > self.end_at):
            return None
        return fire.astimezone(UTC)

    def first(self, created_at: datetime) -> datetime | None:
        """The first fire time of a schedule created (or re-armed) at ``created_at``."""
        if isinstance(self.spec, DateSpec):
            # A one-off whose time has passed still fires (or is recorded missed): never lost.
            return self.next_after(min(created_at, self.spec.run_at) - _TICK)
        return self.next_after(created_at)


def fire_times(fires: FireTimes, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``."""
    out: list[datetime] = []
    current = after
    while len(out) < count:
        nxt = fires.next_after(current)
        if nxt is None:
            break
        out.append(nxt)
        current = nxt
    return out


def jitter(schedule_id: str, fire_time: datetime, jitter_seconds: float) -> timedelta:
    """A delay in ``[0, jitter_seconds)`` fixed by (schedule, fire time), so all agree on it."""
    if jitter_seconds <= 0:
        return timedelta(0)
    # Hash the instant in UTC: the same fire time given with another offset gets the same delay.
    instant = fire_time.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"{schedule_id}\x00{instant}".encode()).digest()
    # 48 bits divide exactly in a float, so the fraction stays below 1.
    fraction = int.from_bytes(digest[:6], "big") / 2**48
    # Whole milliseconds, rounded down: rounding to nearest could reach jitter_seconds itself.
    return timedelta(milliseconds=math.floor(fraction * jitter_seconds * 1000))
