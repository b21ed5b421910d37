"""APScheduler's view of our SQL store: schedule rows become APScheduler jobs, no pickles.

Rows are written by the API (``scheduler.store.schedule_*``) and advanced by the batched claim;
APScheduler reads them through this store to know when the next fire is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Connection, Engine, select

from scheduler.firing.claim import Claim, claim_due
from scheduler.leadership.skew import ClockGuard
from scheduler.store.models import schedules
from scheduler.timing.fire_policy import Calendars, FireTimesCache, calendar_names, fire_times_of
from scheduler.timing.triggers import FireTimes


class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger computing exactly the fire times the claim uses."""

    def __init__(self, fires: FireTimes) -> None:
        self.fires = fires

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            return self.fires.next_after(previous_fire_time)
        return self.fires.first(now)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("sundial triggers are stored as JSON columns, never pickled")


def publish_via_claim(*_args: Any, **_kwargs: Any) -> None:
    """The callable APScheduler jobs name; fires go out through the batched claim instead."""
    raise RuntimeError("sundial publishes fires from the claim, not from an APScheduler executor")


class SqlJobStore(BaseJobStore):  # type: ignore[misc]
    """Schedule rows as APScheduler jobs; claims due fires in fenced batches."""

    def __init__(self, engine: Engine, guard: ClockGuard | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._guard = guard
        self._fire_times = FireTimesCache()

    def _job(self, row: Any, calendars: Calendars) -> Job:
        job = Job.__new__(Job)
        job.__setstate__(
            {
                "version": 1,
                "id": row.id,
                "func": f"{__name__}:publish_via_claim",
                "trigger": ScheduleTrigger(fire_times_of(row._mapping, calendars)),
                "executor": "default",
                "args": (row.task, *row.args),
                "kwargs": dict(row.kwargs),
                "name": row.task,
                "misfire_grace_time": row.misfire_grace_seconds,
                "coalesce": row.coalesce,
                "max_instances": 1,
                "next_run_time": row.next_due_at,
            }
        )
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _jobs(self, *conditions: Any) -> list[Job]:
        query = (
            select(schedules)
            .where(schedules.c.next_due_at.is_not(None), *conditions)
            .order_by(schedules.c.next_due_at)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            calendars = self._calendars(conn, rows)
        return [self._job(row, calendars) for row in rows]

    def _calendars(self, conn: Connection, rows: Sequence[Any]) -> Calendars:
        names = {name for row in rows for name in calendar_names(row._mapping)}
        return self._fire_times.calendars.load(conn, names) if names else {}

    def lookup_job(self, job_id: str) -> Job | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(schedules).where(schedules.c.id == job_id)).first()
            calendars = self._calendars(conn, [row] if row is not None else [])
        return None if row is None else self._job(row, calendars)

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self._jobs(schedules.c.next_due_at <= now)

    def get_next_run_time(self) -> datetime | None:
        with self._engine.connect() as conn:
            return conn.execute(
                select(schedules.c.next_due_at)
                .where(schedules.c.next_due_at.is_not(None))
                .order_by(schedules.c.next_due_at)
                .limit(1)
            ).scalar()

    def get_all_jobs(self) -> list[Job]:
        return self._jobs()

    def add_job(self, job: Job) -> None:
        raise TypeError("schedules are created through sundial's API, which validates them")

    def update_job(self, job: Job) -> None:
        raise TypeError("the batched claim advances schedules; APScheduler never writes them")

    def remove_job(self, job_id: str) -> None:
        raise TypeError("schedules are deleted through sundial's API, never by APScheduler")

    def remove_all_jobs(self) -> None:
        raise TypeError("schedules are deleted through sundial's API, never by APScheduler")

    def claim_due(
        self, now: datetime, token: int, limit: int, ahead: timedelta = timedelta(0)
    ) -> Claim:
        """Record every fire due by ``now`` (and prepare those due within ``ahead``; see
        :func:`scheduler.firing.claim.claim_due`)."""
        return claim_due(self._engine, now, token, limit, self._fire_times, ahead, self._guard)
