"""The outbox's reads of the store: the runs left pending for the relay, the runs an
earlier term prepared ahead, and the check of prepared runs at their instant. Each is one
fenced transaction; what they return is published by :mod:`scheduler.firing.outbox`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from scheduler.firing.bulk import release_check, withdraw_changed
from scheduler.firing.claim import DISPATCH_OPTIONS, Dispatch, check_fencing, dispatch_of
from scheduler.leadership.skew import ClockGuard
from scheduler.store.models import RunState, RunTrigger, runs, schedules
from scheduler.timing.overlap import in_flight


def release(
    engine: Engine,
    token: int,
    run_ids: Sequence[str],
    now: datetime,
    guard: ClockGuard | None = None,
) -> set[str]:
    """At their instant, which of these runs prepared ahead may go out: in one fenced
    transaction, those whose schedule was paused or changed since are withdrawn (recorded
    ``skipped`` with the reason) and those no longer pending (deleted with their schedule,
    cancelled) are left out. A stale term raises :class:`LeadershipLost`; a ``guard``
    refuses when ``now`` (the instant the leader waited for) disagrees with the database."""
    with engine.begin() as conn:
        check_fencing(conn, token)
        if guard is not None:
            guard.check(conn, now)
        return release_check(conn, now, run_ids)


def prepared_dispatches(engine: Engine, token: int, limit: int, now: datetime) -> list[Dispatch]:
    """Runs an earlier term prepared ahead of an instant still to come, by due time: a new
    term holds them like its own, so that they go out at their instant and in order."""
    with engine.begin() as conn:
        check_fencing(conn, token)
        rows = (
            conn.execute(
                _pending_query()
                .where(
                    runs.c.state == RunState.PENDING.value,
                    runs.c.trigger == RunTrigger.SCHEDULE.value,
                    runs.c.due_at > now,
                )
                .order_by(runs.c.due_at, runs.c.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [dispatch_of(row, _schedule_of(row)) for row in rows]


def _pending_query() -> Any:
    return select(
        runs,
        schedules.c.args.label("s_args"),
        schedules.c.kwargs.label("s_kwargs"),
        schedules.c.queue.label("s_queue"),
        schedules.c.priority.label("s_priority"),
        schedules.c.expires_seconds.label("s_expires_seconds"),
        *(schedules.c[name].label(f"s_{name}") for name in DISPATCH_OPTIONS),
    ).join(schedules, schedules.c.id == runs.c.schedule_id)


def _schedule_of(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["schedule_id"],
        "args": row["s_args"],
        "kwargs": row["s_kwargs"],
        "queue": row["s_queue"],
        "priority": row["s_priority"],
        "expires_seconds": row["s_expires_seconds"],
        **{name: row[f"s_{name}"] for name in DISPATCH_OPTIONS},
    }


def pending_dispatches(
    engine: Engine, token: int, limit: int, now: datetime, guard: ClockGuard | None = None
) -> list[Dispatch]:
    """Runs recorded but not yet accepted by the broker and due now, oldest fire first;
    a held run (``buffer_one``, serial backfill) waits while its schedule has one in flight.
    Runs prepared ahead (by this term or an earlier one) whose schedule was paused or
    changed since are withdrawn first, as at their instant."""
    with engine.begin() as conn:
        check_fencing(conn, token)
        if guard is not None:
            guard.check(conn, now)
        withdraw_changed(conn, now)
        rows = (
            conn.execute(
                _pending_query()
                .where(
                    runs.c.state == RunState.PENDING.value,
                    or_(runs.c.due_at.is_(None), runs.c.due_at <= now),
                )
                .order_by(runs.c.scheduled_for, runs.c.attempt, runs.c.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        held = {r["schedule_id"] for r in rows if r["hold_while_busy"]}
        busy = {sid for sid, f in in_flight(conn, held).items() if f.running}
    released: set[str] = set()
    out: list[Dispatch] = []
    for row in rows:
        sid = row["schedule_id"]
        # One held run per schedule goes out, and none behind a run of it going out now (a
        # pending one ahead of it: relayed after a crash, or put back after a lost message);
        # it is in flight when the next pass looks.
        if row["hold_while_busy"] and (sid in busy or sid in released):
            continue
        released.add(sid)
        out.append(dispatch_of(row, _schedule_of(row)))
    return out
