"""Backfill: record the fires a trigger would have made in a past range, as paced runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from scheduler.bulk import insert_runs, new_run
from scheduler.errors import InvalidSchedule, NotFound
from scheduler.firing import fire_times_of
from scheduler.models import Overlap, RunTrigger, run_id_for, schedules

MAX_BACKFILL_FIRES = 10_000
# Backfilled runs are released at this pace so a long range does not flood the workers.
BACKFILL_RATE_PER_S = 20.0


def backfill_times(row: dict[str, Any], start: datetime, end: datetime) -> list[datetime]:
    """Every fire time of the schedule's trigger in ``[start, end]``, at most the cap."""
    if end < start:
        raise InvalidSchedule("end", "end must not be before start")
    fires = fire_times_of(row)
    out: list[datetime] = []
    current = fires.next_after(start - timedelta(microseconds=1))
    while current is not None and current <= end:
        if len(out) == MAX_BACKFILL_FIRES:
            raise InvalidSchedule(
                "end", f"the range holds more than {MAX_BACKFILL_FIRES} fires; split it"
            )
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
) -> int:
    """Record a pending run for each fire in range not recorded yet; return how many.

    ``overlap`` ``allow`` paces the runs at :data:`BACKFILL_RATE_PER_S`; any other policy
    (the schedule's own by default) runs them one after another.
    """
    with engine.begin() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        if row is None:
            raise NotFound(f"no schedule {schedule_id!r}")
        schedule = dict(row._mapping)
        serial = (overlap or Overlap(schedule["overlap"])) is not Overlap.ALLOW
        times = backfill_times(schedule, start, end)
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
            )
            for i, when in enumerate(times)
        ]
        count = len(insert_runs(conn, new_runs))
        conn.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id)
            .values(run_count=schedules.c.run_count + count)
        )
        return count
