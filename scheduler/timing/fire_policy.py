"""Fire policy as pure functions of a schedule and ``now``: what falls due, what runs,
what is missed or coalesced, and where the schedule's next fire lies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduler.errors import InvalidSchedule
from scheduler.store.calendar_store import CalendarCache
from scheduler.store.models import ExcludedPolicy, RunState
from scheduler.timing.cron import load_timezone
from scheduler.timing.exclusions import Calendar, Cover, Exclusions
from scheduler.timing.triggers import FireTimes, load_stored, zone_of
from scheduler.timing.triggers import jitter as jitter_for

Calendars = Mapping[str, Calendar]
# Reasons of fires calendars excluded or moved; the timeline reads these prefixes back.
EXCLUDED = "excluded by calendar"
MOVED_HERE = "moved here from"

# One claim records at most this many fires of a schedule; a longer backlog (a 1-second
# interval after a day-long outage) is worked off over the following claims.
MAX_FIRES_PER_CLAIM = 1000


@dataclass(frozen=True)
class Fire:
    """One fire time of a schedule and what becomes of it."""

    scheduled_for: datetime
    state: RunState
    reason: str | None = None


@dataclass(frozen=True)
class Arming:
    """Where a schedule's next fire lies; all None once the trigger is exhausted."""

    next_run_at: datetime | None
    next_due_at: datetime | None


@dataclass(frozen=True)
class Plan:
    """The outcome of claiming one due schedule."""

    fires: list[Fire] = field(default_factory=list)
    arming: Arming = Arming(None, None)

    @property
    def completed(self) -> bool:
        """True when the trigger will never fire again."""
        return self.arming.next_run_at is None


def calendar_names(row: Mapping[Any, Any]) -> list[str]:
    """The exclusion calendars a schedule row names."""
    return list(row.get("exclude_calendars") or [])


def fire_times_of(row: Mapping[str, Any], calendars: Calendars | None = None) -> FireTimes:
    """The fire times of a stored schedule row, its exclusion calendars (from
    ``calendars``, by name) applied."""
    spec = load_stored(row["trigger"])
    names = calendar_names(row)
    exclusions = None
    if names:
        missing = [n for n in names if calendars is None or n not in calendars]
        if missing:
            raise InvalidSchedule("exclude_calendars", f"no calendar named {missing[0]!r}")
        assert calendars is not None
        zone = load_timezone(zone_of(spec))
        exclusions = Exclusions([calendars[n] for n in names], zone)
    return FireTimes(
        spec,
        anchor=row["created_at"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        exclusions=exclusions,
        move_excluded=row.get("on_excluded") == ExcludedPolicy.NEXT_ALLOWED,
    )


def excluded_reason(fires: FireTimes, when: datetime) -> str | None:
    """Why a planned fire does not run at ``when`` (a calendar excludes it), or None."""
    cover = fires.excluded(when)
    if cover is None:
        return None
    reason = f"{EXCLUDED} {cover.calendar!r} ({cover.label})"
    if not fires.move_excluded:
        return reason
    if cover.end is None:
        return f"{reason}; no allowed instant within a year to move it to"
    return f"{reason}; moved to {cover.end.isoformat()}"


def moved_reason(fires: FireTimes, when: datetime) -> str | None:
    """For a fire ``next_allowed`` put at ``when``: the fire it stands for, else None."""
    source = fires.moved_from(when)
    return None if source is None else f"{MOVED_HERE} {source.isoformat()} (next_allowed)"


def _arming(schedule_id: str, fire: datetime | None, jitter_seconds: float) -> Arming:
    if fire is None:
        return Arming(None, None)
    return Arming(fire, fire + jitter_for(schedule_id, fire, jitter_seconds))


# A preview stops after this many planned instants, however few of them may fire.
MAX_PREVIEW_SCAN = 100_000


@dataclass(frozen=True)
class Planned:
    """An instant in a schedule's sequence, and the calendar stretch excluding it, if any."""

    scheduled_for: datetime
    excluded: Cover | None = None


def upcoming(fires: FireTimes, after: datetime, count: int) -> list[Planned]:
    """The sequence strictly after ``after`` until ``count`` instants that fire, with the
    excluded ones met on the way: exactly what the claim will record, in order."""
    out: list[Planned] = []
    firing = 0
    current = fires.next_after(after)
    while current is not None and firing < count and len(out) < MAX_PREVIEW_SCAN:
        cover = fires.excluded(current)
        out.append(Planned(current, cover))
        firing += cover is None
        current = fires.next_after(current)
    return out


def arm(row: Mapping[str, Any], now: datetime, calendars: Calendars | None = None) -> Arming:
    """The first fire of a schedule that is created, changed or resumed at ``now``."""
    fires = fire_times_of(row, calendars)
    return _arming(row["id"], fires.first(now), row["jitter_seconds"])


class FireTimesCache:
    """Parsed triggers of claimed schedules, so a recurring schedule is not re-parsed at
    every fire. Keyed by (id, version, created_at) and the versions of its calendars: any
    change to a schedule bumps its version, and a schedule deleted and made again has a
    new creation time."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._max = max_entries
        self._entries: dict[tuple[Any, ...], FireTimes] = {}
        self.calendars = CalendarCache()

    def get(self, row: Mapping[str, Any], calendars: Calendars | None = None) -> FireTimes:
        """The schedule's fire times, parsed at most once per version."""
        key: tuple[Any, ...] = (row["id"], row["version"], row["created_at"])
        names = calendar_names(row)
        if names and calendars is not None:
            key += tuple(calendars[n].version if n in calendars else None for n in names)
        found = self._entries.get(key)
        if found is None:
            if len(self._entries) >= self._max:
                self._entries.clear()
            found = self._entries[key] = fire_times_of(row, calendars)
        return found


def plan(
    row: Mapping[str, Any],
    now: datetime,
    limit: int = MAX_FIRES_PER_CLAIM,
    cache: FireTimesCache | None = None,
    calendars: Calendars | None = None,
) -> Plan:
    """Fires of ``row`` due by ``now`` with calendars, misfire grace and coalescing applied."""
    # A one-off has no fire after its own: no trigger to build on the hot path of a burst.
    once = row["trigger"].get("type") == "date" and not calendar_names(row)
    fires = None
    if not once:
        fires = cache.get(row, calendars) if cache is not None else fire_times_of(row, calendars)
    checked = fires is not None and fires.exclusions is not None
    sid, jitter_s = row["id"], row["jitter_seconds"]
    grace = row["misfire_grace_seconds"]
    due: list[tuple[datetime, timedelta]] = []
    current: datetime | None = row["next_run_at"]
    while current is not None and len(due) < limit:
        lateness = now - (current + jitter_for(sid, current, jitter_s))
        if lateness < timedelta(0):
            break
        due.append((current, lateness))
        current = None if fires is None else fires.next_after(current)

    out: list[Fire] = []
    runnable: list[datetime] = []
    moved: dict[datetime, str | None] = {}
    for when, lateness in due:
        if checked:
            assert fires is not None
            why = excluded_reason(fires, when)
            if why is not None:
                out.append(Fire(when, RunState.SKIPPED, why))
                continue
            moved[when] = moved_reason(fires, when)
        if grace is not None and lateness.total_seconds() > grace:
            out.append(
                Fire(
                    when, RunState.MISSED, f"{lateness.total_seconds():.3f}s late, grace {grace:g}s"
                )
            )
        else:
            runnable.append(when)
    arming = _arming(sid, current, jitter_s)
    if row["coalesce"] and arming.next_due_at is not None and arming.next_due_at <= now:
        # The limit cut a backlog that is still due: the one coalesced run belongs to a
        # later claim, so this one runs nothing.
        out.extend(Fire(when, RunState.SKIPPED, "coalesced into a later fire") for when in runnable)
        runnable = []
    elif row["coalesce"] and len(runnable) > 1:
        last = runnable[-1]
        out.extend(
            Fire(when, RunState.SKIPPED, f"coalesced into the fire of {last.isoformat()}")
            for when in runnable[:-1]
        )
        runnable = [last]
    out.extend(Fire(when, RunState.PENDING, moved.get(when)) for when in runnable)
    out.sort(key=lambda f: f.scheduled_for)
    return Plan(out, arming)
