"""The claim: in one fenced transaction, take a batch of due schedules, record their fires
as runs and advance them. Publishing happens after commit, from the runs (an outbox)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.errors import LeadershipLost
from scheduler.firing import FireTimesCache, plan
from scheduler.models import (
    LEADER_ROW,
    Overlap,
    RunState,
    RunTrigger,
    ScheduleState,
    leader,
    run_id_for,
    runs,
    schedules,
)
from scheduler.outcomes import IN_FLIGHT
from scheduler.overlap import InFlight, decide, in_flight


@dataclass(frozen=True)
class Dispatch:
    """One message to publish: a pending run and what its schedule says to send."""

    run_id: str
    schedule_id: str
    scheduled_for: datetime
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int | None
    expires_at: datetime | None


def check_fencing(conn: Connection, token: int) -> None:
    """Raise :class:`LeadershipLost` unless ``token`` is the current term; holds a share lock
    on the leader row until commit, so no new term can start mid-claim."""
    query = select(leader.c.fencing_token).where(leader.c.name == LEADER_ROW)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = conn.execute(query).scalar_one()
    if current != token:
        raise LeadershipLost(f"fencing token {token} is stale; current term is {current}")


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(runs).on_conflict_do_nothing()
    return sqlite.insert(runs).on_conflict_do_nothing()


def _dispatch(run: Mapping[Any, Any], schedule: Mapping[Any, Any]) -> Dispatch:
    expires = schedule["expires_seconds"]
    return Dispatch(
        run_id=run["id"],
        schedule_id=schedule["id"],
        scheduled_for=run["scheduled_for"],
        task=run["task"],
        args=list(schedule["args"]),
        kwargs=dict(schedule["kwargs"]),
        queue=schedule["queue"],
        priority=schedule["priority"],
        expires_at=None if expires is None else run["scheduled_for"] + timedelta(seconds=expires),
    )


@dataclass(frozen=True)
class Claim:
    """What a claim committed: messages to publish and runs to revoke (cancel_previous)."""

    dispatches: list[Dispatch] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)


# What planning and publishing a fire need; labels, descriptions and the rest stay put.
_CLAIM_COLUMNS = [
    schedules.c[name]
    for name in (
        "id",
        "task",
        "args",
        "kwargs",
        "trigger",
        "queue",
        "priority",
        "expires_seconds",
        "misfire_grace_seconds",
        "coalesce",
        "overlap",
        "jitter_seconds",
        "start_at",
        "end_at",
        "state",
        "next_run_at",
        "last_run_at",
        "created_at",
        "version",
    )
]


def claim_due(
    engine: Engine,
    now: datetime,
    token: int,
    limit: int,
    cache: FireTimesCache | None = None,
) -> Claim:
    """Record every fire due by ``now`` of up to ``limit`` schedules; return what to publish."""
    with engine.begin() as conn:
        check_fencing(conn, token)
        due = (
            conn.execute(
                select(*_CLAIM_COLUMNS)
                .where(schedules.c.next_due_at <= now)
                .order_by(schedules.c.next_due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .mappings()
            .all()
        )
        if not due:
            return Claim()
        policed = [row["id"] for row in due if row["overlap"] != Overlap.ALLOW]
        current = in_flight(conn, policed)
        new_runs: list[dict[str, Any]] = []
        advances: list[dict[str, Any]] = []
        held: set[str] = set()
        revoke: list[str] = []
        for row in due:
            outcome = plan(cast(Mapping[str, Any], row), now, cache=cache)
            decision = decide(
                Overlap(row["overlap"]), outcome.fires, current.get(row["id"], InFlight())
            )
            revoke.extend(decision.revoke)
            for fire in decision.fires:
                run_id = run_id_for(row["id"], fire.scheduled_for)
                if fire.scheduled_for in decision.held:
                    held.add(run_id)
                new_runs.append(
                    {
                        "id": run_id,
                        "schedule_id": row["id"],
                        "scheduled_for": fire.scheduled_for,
                        "attempt": 1,
                        "trigger": RunTrigger.SCHEDULE.value,
                        "state": fire.state.value,
                        "task": row["task"],
                        "fencing_token": token,
                        "reason": fire.reason,
                        "due_at": None,
                        "hold_while_busy": run_id in held,
                        "created_at": now,
                    }
                )
            fired = [f.scheduled_for for f in decision.fires if f.state is RunState.PENDING]
            advances.append(
                {
                    "b_id": row["id"],
                    "b_next_run_at": outcome.arming.next_run_at,
                    "b_next_due_at": outcome.arming.next_due_at,
                    "b_last_run_at": max(fired) if fired else row["last_run_at"],
                    "b_state": ScheduleState.COMPLETED.value if outcome.completed else row["state"],
                }
            )
        inserted = insert_runs(conn, new_runs)
        # Count only what this claim recorded: a fire already present (a backfill got there
        # first, an earlier term recorded it) was counted when it was recorded.
        counts = Counter((r["schedule_id"], r["state"]) for r in new_runs if r["id"] in inserted)
        for advance in advances:
            sid = advance["b_id"]
            advance["b_runs"] = counts[sid, RunState.PENDING.value]
            advance["b_missed"] = counts[sid, RunState.MISSED.value]
            advance["b_skipped"] = counts[sid, RunState.SKIPPED.value]
        _advance(conn, advances)
        if revoke:
            _cancel(conn, revoke, now)
    by_id = {row["id"]: row for row in due}
    return Claim(
        [
            _dispatch(run, by_id[run["schedule_id"]])
            for run in new_runs
            if run["id"] in inserted
            and run["id"] not in held
            and run["state"] == RunState.PENDING.value
        ],
        revoke,
    )


def _cancel(conn: Connection, run_ids: list[str], now: datetime) -> None:
    """Record runs revoked by ``cancel_previous``; the worker is told after commit."""
    conn.execute(
        update(runs)
        .where(runs.c.id.in_(run_ids), runs.c.state.in_([s.value for s in IN_FLIGHT]))
        .values(
            state=RunState.REVOKED.value,
            finished_at=now,
            reason="cancelled: a newer fire started (overlap cancel_previous)",
        )
    )


# Columns a claim or backfill writes, with their PostgreSQL types.
_RUN_COLUMNS = {
    "id": "text",
    "schedule_id": "text",
    "scheduled_for": "timestamptz",
    "attempt": "int",
    "trigger": "text",
    "state": "text",
    "task": "text",
    "fencing_token": "bigint",
    "reason": "text",
    "due_at": "timestamptz",
    "hold_while_busy": "bool",
    "created_at": "timestamptz",
}
_ADVANCE_COLUMNS = {
    "b_id": "text",
    "b_next_run_at": "timestamptz",
    "b_next_due_at": "timestamptz",
    "b_last_run_at": "timestamptz",
    "b_state": "text",
    "b_runs": "int",
    "b_missed": "int",
    "b_skipped": "int",
}


def _recordset(columns: Mapping[str, str]) -> str:
    fields = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return f"json_to_recordset(CAST(:rows AS json)) AS v({fields})"


# One statement of constant text per batch, its rows in one JSON document: PostgreSQL
# plans it once, and the driver neither re-parses a thousand-row VALUES list nor adapts
# a dozen arrays element by element.
_PG_INSERT_RUNS = text(
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) SELECT {', '.join(_RUN_COLUMNS)} "
    f"FROM {_recordset(_RUN_COLUMNS)} ON CONFLICT DO NOTHING RETURNING id"
)
_PG_ADVANCE = text(
    "UPDATE schedules AS s SET next_run_at = v.b_next_run_at, next_due_at = v.b_next_due_at, "
    "last_run_at = v.b_last_run_at, state = v.b_state, run_count = s.run_count + v.b_runs, "
    "missed_count = s.missed_count + v.b_missed, skipped_count = s.skipped_count + v.b_skipped "
    f"FROM {_recordset(_ADVANCE_COLUMNS)} WHERE s.id = v.b_id"
)


_PG_MARK_DISPATCHED = text(
    "UPDATE runs SET state = 'dispatched', dispatched_at = :now WHERE state = 'pending' "
    "AND id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:ids AS json))))"
)


def _json_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {"rows": json.dumps(rows, default=_iso)}


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def insert_runs(conn: Connection, new_runs: Sequence[dict[str, Any]]) -> set[str]:
    """Insert runs; a fire already recorded (same schedule, time, attempt) is left alone."""
    if not new_runs:
        return set()
    if conn.dialect.name == "postgresql":
        result = conn.execute(_PG_INSERT_RUNS, _json_rows(new_runs))
    else:
        result = conn.execute(
            _insert_ignoring_duplicates(conn).returning(runs.c.id), list(new_runs)
        )
    return {row[0] for row in result.all()}


def _advance(conn: Connection, advances: Sequence[dict[str, Any]]) -> None:
    """Move each claimed schedule to its next fire and add to its counters."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_ADVANCE, _json_rows(advances))
        return
    conn.execute(
        update(schedules)
        .where(schedules.c.id == bindparam("b_id"))
        .values(
            next_run_at=bindparam("b_next_run_at"),
            next_due_at=bindparam("b_next_due_at"),
            last_run_at=bindparam("b_last_run_at"),
            state=bindparam("b_state"),
            run_count=schedules.c.run_count + bindparam("b_runs"),
            missed_count=schedules.c.missed_count + bindparam("b_missed"),
            skipped_count=schedules.c.skipped_count + bindparam("b_skipped"),
        ),
        advances,
    )


def pending_dispatches(engine: Engine, token: int, limit: int, now: datetime) -> list[Dispatch]:
    """Runs recorded but not yet accepted by the broker and due now, oldest fire first;
    a held run (``buffer_one``, serial backfill) waits while its schedule has one in flight."""
    with engine.begin() as conn:
        check_fencing(conn, token)
        rows = (
            conn.execute(
                select(
                    runs,
                    schedules.c.args.label("s_args"),
                    schedules.c.kwargs.label("s_kwargs"),
                    schedules.c.queue.label("s_queue"),
                    schedules.c.priority.label("s_priority"),
                    schedules.c.expires_seconds.label("s_expires_seconds"),
                )
                .join(schedules, schedules.c.id == runs.c.schedule_id)
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
        if row["hold_while_busy"]:
            # One held run per schedule goes out; it is in flight when the next pass looks.
            if sid in busy or sid in released:
                continue
            released.add(sid)
        out.append(
            _dispatch(
                row,
                {
                    "id": row["schedule_id"],
                    "args": row["s_args"],
                    "kwargs": row["s_kwargs"],
                    "queue": row["s_queue"],
                    "priority": row["s_priority"],
                    "expires_seconds": row["s_expires_seconds"],
                },
            )
        )
    return out


def mark_dispatched(engine: Engine, run_ids: Iterable[str], now: datetime) -> None:
    """Record that the broker accepted these runs' messages."""
    ids = list(run_ids)
    if not ids:
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_MARK_DISPATCHED, {"ids": json.dumps(ids), "now": now})
            return
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(ids), runs.c.state == RunState.PENDING.value)
            .values(state=RunState.DISPATCHED.value, dispatched_at=now)
        )


def next_due_at(engine: Engine) -> datetime | None:
    """The earliest instant a schedule or a waiting run (retry, backfill) falls due."""
    with engine.connect() as conn:
        times = [
            conn.execute(select(func.min(schedules.c.next_due_at))).scalar(),
            conn.execute(
                select(func.min(runs.c.due_at)).where(runs.c.state == RunState.PENDING.value)
            ).scalar(),
        ]
    found = [t for t in times if t is not None]
    return min(found) if found else None
