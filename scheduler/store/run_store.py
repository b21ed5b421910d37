"""A schedule's runs: recording a manual fire, reading one run, listing a schedule's runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from scheduler.errors import Conflict, NotFound
from scheduler.firing.bulk import new_run
from scheduler.store.db import update_one_returning
from scheduler.store.history import Audit, Kind, record_change
from scheduler.store.models import RunTrigger, runs, schedules
from scheduler.store.reads import one_row, runs_newest_first
from scheduler.store.schedule_reads import get_schedule
from scheduler.store.schedule_spec import Row

# What a run just recorded shows of its outcome: nothing yet.
_NO_OUTCOME: Row = dict.fromkeys(
    ("dispatched_at", "started_at", "finished_at", "worker", "result", "error")
)


def trigger_run(conn: Connection, schedule_id: str, now: datetime, audit: Audit) -> Row:
    """Record a manual fire at ``now`` as a pending run, for the leader's relay to publish.

    The schedule's ``run_count`` counts it: the leader counts only the fires it claims.
    """
    counted = update_one_returning(
        conn,
        schedules,
        [schedules.c.id == schedule_id],
        {"run_count": schedules.c.run_count + 1},
        [schedules.c.task, schedules.c.version],
    )
    if counted is None:
        raise NotFound(f"no schedule {schedule_id!r}")
    run: Row = new_run(
        run_id=str(uuid.uuid4()),
        schedule_id=schedule_id,
        scheduled_for=now,
        task=counted.task,
        trigger=RunTrigger.MANUAL,
        now=now,
        schedule_version=counted.version,
    )
    try:
        conn.execute(insert(runs).values(**run))
    except IntegrityError as exc:
        raise Conflict(f"schedule {schedule_id!r} already has a run for {now.isoformat()}") from exc
    record_change(
        conn,
        audit,
        Kind.TRIGGER,
        now,
        schedule_id=schedule_id,
        version=counted.version,
        details={"run_id": run["id"]},
    )
    return {**run, **_NO_OUTCOME}


def get_run(conn: Connection, run_id: str) -> Row:
    """The run row, or :class:`NotFound`."""
    return one_row(conn, runs, runs.c.id, run_id, f"no run {run_id!r}")


def list_runs(
    conn: Connection,
    schedule_id: str,
    *,
    states: Sequence[str] = (),
    triggers: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[Row]:
    """A schedule's runs, newest first, in ``[since, until)``, strictly after ``before``;
    ``states`` and ``triggers``, when given, keep only runs in one of them."""
    get_schedule(conn, schedule_id)
    query = runs_newest_first(
        runs.c.schedule_id == schedule_id, since=since, until=until, before=before, limit=limit
    )
    if states:
        query = query.where(runs.c.state.in_(states))
    if triggers:
        query = query.where(runs.c.trigger.in_(triggers))
    return [dict(row) for row in conn.execute(query).mappings()]
