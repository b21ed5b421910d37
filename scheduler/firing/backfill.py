"""Backfill: record the fires a trigger would have made in a past range, as paced runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from scheduler.errors import InvalidSchedule, NotFound
from scheduler.firing.bulk import insert_runs, new_run
from scheduler.store.calendar_store import load_calendars
from scheduler.store.history import Audit, Kind, record_change
from scheduler.store.models import Overlap, RunTrigger, run_id_for, runs, schedules
from scheduler.timing.exclusions import Calendar
from scheduler.timing.fire_policy import calendar_names, fire_times_of

MAX_BACKFILL_FIRES = 10_000
# Backfilled runs are released at this pace so a long range does not flood the workers.
BACKFILL_RATE_PER_S = 20.0


def backfill_times(
    row: dict[str, Any],
    start: datetime,
    end: datetime,
    calendars: Mapping[str, Calendar] | None = None,
) -> list[datetime]:
    """Every fire time of the schedule's trigger in ``[start, end]``, at most the cap; a
    fire its exclusion calendars exclude is left out (or moved, with ``next_allowed``)."""
    if end < start:
        raise InvalidSchedule("end", "end must not be before start")
    fires = fire_times_of(row, calendars)
    out: list[datetime] = []
    current = fires.next_after(start - timedelta(microseconds=1))
    while current is not None and current <= end:
        if len(out) == MAX_BACKFILL_FIRES:
            raise InvalidSchedule(
                "end", f"the range holds more than {MAX_BACKFILL_FIRES} fires; split it"
            )
        if fires.excluded(current) is None:
            out.append(current)
        current = fires.next_after(current)
    return out


def backfill(
    engine: Engine,
    schedule_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    overlap: Overlap | None = None,
    *,
    audit: Audit,
    dry_run: bool = False,
) -> int:
    """Record a pending run for each fire in range not recorded yet; return how many.

    ``overlap`` ``allow`` paces the runs at :data:`BACKFILL_RATE_PER_S`; any other policy
    (the schedule's own by default) runs them one after another. ``dry_run`` only counts
    the runs it would record, and writes nothing.
    """
    with engine.begin() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        if row is None:
            raise NotFound(f"no schedule {schedule_id!r}")
        schedule = dict(row._mapping)
        serial = (overlap or Overlap(schedule["overlap"])) is not Overlap.ALLOW
        calendars = load_calendars(conn, calendar_names(schedule))
        times = backfill_times(schedule, start, end, calendars)
        step = timedelta(seconds=1 / BACKFILL_RATE_PER_S)
        new_runs = [
            new_run(
                run_id=run_id_for(schedule_id, when),
                schedule_id=schedule_id,
                scheduled_for=when,
                task=schedule["task"],
                trigger=RunTrigger.BACKFILL,
                now=now,
                reason="backfill",
                due_at=None if serial else now + step * i,
                hold_while_busy=serial,
                schedule_version=schedule["version"],
            )
            for i, when in enumerate(times)
        ]
        if dry_run:
            return len(new_runs) - _recorded(conn, schedule_id, times)
        count = len(insert_runs(conn, new_runs))
        conn.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id)
            .values(run_count=schedules.c.run_count + count)
        )
        details = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "overlap": overlap.value if overlap else None,
            "count": count,
        }
        record_change(
            conn,
            audit,
            Kind.BACKFILL,
            now,
            schedule_id=schedule_id,
            version=schedule["version"],
            details=details,
        )
        return count


def _recorded(conn: Connection, schedule_id: str, times: list[datetime]) -> int:
    """How many of the fire ``times`` already have a first run (by the unique key, as the
    insert skips them, whatever the run's id)."""
    if not times:
        return 0
    found = conn.execute(
        select(runs.c.scheduled_for).where(
            runs.c.schedule_id == schedule_id,
            runs.c.scheduled_for >= times[0],
            runs.c.scheduled_for <= times[-1],
            runs.c.attempt == 1,
        )
    ).scalars()
    return len(set(times).intersection(found))
