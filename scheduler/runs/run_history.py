"""Reads of the run history for people: the latest states of many schedules at once, the
attempts of one fire, runs in one state across schedules, counts by state, and the
schedules that need a look (failing, paused after failures, quarantined).

Every query is bounded and follows an index, so none grows with a million schedules or a
busy day's runs: per-key parts are cut with ``LIMIT`` and glued with ``UNION ALL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select, union_all

from scheduler.store.models import RunState, ScheduleState, runs, schedules
from scheduler.store.reads import runs_newest_first

Row = dict[str, Any]
# How the scheduler words a schedule it paused by itself (scheduler/outcomes.py for
# pause_after_failures, scheduler/claim.py for a trigger it cannot evaluate).
FAILURE_PAUSE_PREFIX = "paused after "
QUARANTINE_PREFIX = "quarantined: "
# Paused schedules examined for those two reasons: a bound, not a page.
HELD_SCAN = 10_000
# Newest failed runs examined to find the schedules that are failing now.
FAILED_SCAN = 2_000
_STRIP_COLUMNS = (runs.c.schedule_id, runs.c.id, runs.c.state, runs.c.scheduled_for)


@dataclass(frozen=True)
class StateCounts:
    """Runs in one state scheduled in the last hour and day; ``capped`` marks a day count
    that stopped at the cap (there are at least that many)."""

    hour: int
    day: int
    capped: bool


def recent_states(
    conn: Connection, schedule_ids: Sequence[str], per_schedule: int = 10
) -> dict[str, list[Row]]:
    """The newest ``per_schedule`` runs of each schedule (id, state, scheduled_for), newest
    first: one backward range of the ``(schedule_id, scheduled_for, attempt)`` key each."""
    if not schedule_ids:
        return {}
    parts = [
        select(*_STRIP_COLUMNS)
        .where(runs.c.schedule_id == schedule_id)
        .order_by(runs.c.scheduled_for.desc(), runs.c.attempt.desc())
        .limit(per_schedule)
        .subquery()
        for schedule_id in schedule_ids
    ]
    merged = union_all(*(select(part) for part in parts)).subquery()
    out: dict[str, list[Row]] = {schedule_id: [] for schedule_id in schedule_ids}
    query = select(merged).order_by(merged.c.scheduled_for.desc(), merged.c.id)
    for row in conn.execute(query).mappings():
        out[row["schedule_id"]].append(dict(row))
    return out


def attempts_of(conn: Connection, schedule_id: str, scheduled_for: datetime) -> list[Row]:
    """Every attempt of one fire (the first run and its retries), first attempt first."""
    query = (
        select(runs)
        .where(runs.c.schedule_id == schedule_id, runs.c.scheduled_for == scheduled_for)
        .order_by(runs.c.attempt)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def runs_in_state(
    conn: Connection,
    state: RunState,
    *,
    since: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Runs of every schedule in ``state``, newest first (``scheduled_for``, then id), with
    ``scheduled_for >= since``, strictly after the cursor ``before``."""
    query = runs_newest_first(
        runs.c.state == state.value, since=since, until=None, before=before, limit=limit
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def counts_by_state(
    conn: Connection, hour_ago: datetime, day_ago: datetime, cap: int = 10_000
) -> dict[RunState, StateCounts]:
    """Runs per state scheduled since ``hour_ago`` and since ``day_ago``, each state's day
    count stopping at ``cap`` (the newest ``cap`` rows hold the whole hour unless capped)."""
    parts = [
        select(runs.c.state, runs.c.scheduled_for)
        .where(runs.c.state == state.value, runs.c.scheduled_for >= day_ago)
        .order_by(runs.c.scheduled_for.desc())
        .limit(cap)
        .subquery()
        for state in RunState
    ]
    merged = union_all(*(select(part) for part in parts)).subquery()
    in_hour = func.sum(case((merged.c.scheduled_for >= hour_ago, 1), else_=0))
    query = select(merged.c.state, func.count(), in_hour).group_by(merged.c.state)
    found = {state: (int(day), int(hour or 0)) for state, day, hour in conn.execute(query)}
    out: dict[RunState, StateCounts] = {}
    for state in RunState:
        day, hour = found.get(state.value, (0, 0))
        out[state] = StateCounts(hour=hour, day=day, capped=day >= cap)
    return out


def failing_schedules(conn: Connection, limit: int = 20, scan: int = FAILED_SCAN) -> list[Row]:
    """Active schedules whose latest runs failed: those among the newest ``scan`` failed
    runs that have not succeeded since, most consecutive failures first."""
    recent = (
        select(runs.c.schedule_id)
        .where(runs.c.state == RunState.FAILED.value)
        .order_by(runs.c.scheduled_for.desc())
        .limit(scan)
        .subquery()
    )
    query = (
        select(schedules)
        .where(
            schedules.c.id.in_(select(recent.c.schedule_id).distinct()),
            schedules.c.state == ScheduleState.ACTIVE.value,
            schedules.c.consecutive_failures > 0,
        )
        .order_by(schedules.c.consecutive_failures.desc(), schedules.c.id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def held_schedules(
    conn: Connection, reason_prefix: str, limit: int = 20, scan: int = HELD_SCAN
) -> list[Row]:
    """Paused schedules whose reason starts with ``reason_prefix`` (the scheduler paused
    them), most recently changed first, looked for among at most ``scan`` paused ones (the
    state index has no order to page by; thousands held by the scheduler is an outage)."""
    paused = (
        select(schedules.c.id)
        .where(schedules.c.state == ScheduleState.PAUSED.value)
        .limit(scan)
        .subquery()
    )
    query = (
        select(schedules)
        .join(paused, paused.c.id == schedules.c.id)
        .where(schedules.c.state_reason.startswith(reason_prefix, autoescape=True))
        .order_by(schedules.c.updated_at.desc(), schedules.c.id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
