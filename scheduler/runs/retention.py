"""Retention of finished one-offs: a delay or date schedule whose fire has settled is
deleted with its runs after the retention period, and the history of what was deleted
one period later again, so a stream of delayed jobs leaves the tables the size of a window.

Each pass deletes at most one batch in one fenced transaction, oldest first, found through
indexes; the leader's housekeeping thread calls it, never the fire path.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
)

from scheduler.firing.claim import check_fencing
from scheduler.runs.alerts import resolve_all_deleted
from scheduler.runs.outcomes import FINAL
from scheduler.store.db import among
from scheduler.store.history import Audit, Kind, change_row, record_changes
from scheduler.store.models import RunState, ScheduleState, alerts, changes, runs, schedules

RETENTION_ACTOR = "retention"
RETENTION = Audit(RETENTION_ACTOR, details={"pruned": True})
_SETTLED = [s.value for s in FINAL] + [RunState.SKIPPED.value, RunState.MISSED.value]


def prune_one_offs(
    engine: Engine, now: datetime, max_age: timedelta, batch: int, token: int
) -> int:
    """Delete one batch of one-offs whose every run settled before ``now - max_age``, with
    their runs, keys and alerts; record each as a delete by ``retention``. Return how many."""
    cutoff = now - max_age
    unsettled = exists().where(
        runs.c.schedule_id == schedules.c.id,
        or_(
            runs.c.state.not_in(_SETTLED),
            func.coalesce(runs.c.finished_at, runs.c.created_at) >= cutoff,
        ),
    )
    # A completed schedule's last write came before its fire settled: ``updated_at`` older
    # than the cutoff is necessary, walked oldest first along the (state, updated_at) index.
    query = (
        select(schedules.c.id, schedules.c.version)
        .where(
            schedules.c.state == ScheduleState.COMPLETED.value,
            schedules.c.updated_at < cutoff,
            schedules.c.trigger["type"].as_string() == "date",
            ~unsettled,
        )
        .order_by(schedules.c.updated_at)
        .limit(batch)
        # A concurrent edit, trigger or delete holds its row: leave that one to a later pass.
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        check_fencing(conn, token)
        doomed = conn.execute(query).all()
        if not doomed:
            return 0
        ids = [schedule_id for schedule_id, _version in doomed]
        conn.execute(delete(runs).where(among(conn, runs.c.schedule_id, ids)))
        resolve_all_deleted(conn, ids, now)
        # Keys and calendar links go with the schedule (ON DELETE CASCADE).
        conn.execute(delete(schedules).where(among(conn, schedules.c.id, ids)))
        # Like an API delete, the record names the version and leaves no specification.
        record_changes(
            conn,
            [
                change_row(RETENTION, Kind.DELETE, now, schedule_id=sid, version=version)
                for sid, version in doomed
            ],
        )
    return len(doomed)


def prune_history(engine: Engine, now: datetime, max_age: timedelta, batch: int, token: int) -> int:
    """Delete the change history and settled alerts of one batch of schedules that
    retention deleted before ``now - max_age``; return how many schedules' history went."""
    query = (
        select(changes.c.id, changes.c.schedule_id, changes.c.at)
        .where(changes.c.actor == RETENTION_ACTOR, changes.c.at < now - max_age)
        .order_by(changes.c.at)
        .limit(batch)
    )
    with engine.begin() as conn:
        check_fencing(conn, token)
        marks = conn.execute(query).all()
        if not marks:
            return 0
        _forget(conn, [(mark_id, sid, at) for mark_id, sid, at in marks])
    return len(marks)


def _forget(conn: Connection, marks: list[tuple[int, str, datetime]]) -> None:
    # Only what came up to the deletion: a schedule made again under the same id keeps its
    # own history. Alerts were resolved when the schedule went; a webhook still failing a
    # period later has long given up.
    if conn.dialect.name == "postgresql":
        ids, sids, at = (list(column) for column in zip(*marks, strict=True))
        conn.execute(_PG_FORGET, {"ids": ids, "sids": sids, "at": at})
        return
    conn.execute(
        delete(changes).where(
            changes.c.schedule_id == bindparam("sid"), changes.c.id <= bindparam("upto")
        ),
        [{"sid": sid, "upto": mark_id} for mark_id, sid, _at in marks],
    )
    conn.execute(
        delete(alerts).where(
            alerts.c.schedule_id == bindparam("sid"), alerts.c.raised_at <= bindparam("gone")
        ),
        [{"sid": sid, "gone": at} for _id, sid, at in marks],
    )


# The same two deletes with the batch as three arrays, in one round trip.
_PG_FORGET = text(
    "WITH m AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:sids AS text[]),"
    " CAST(:at AS timestamptz[])) AS m(upto, sid, gone)),"
    " a AS (DELETE FROM alerts USING m WHERE alerts.schedule_id = m.sid"
    " AND alerts.raised_at <= m.gone)"
    " DELETE FROM changes USING m WHERE changes.schedule_id = m.sid AND changes.id <= m.upto"
)
