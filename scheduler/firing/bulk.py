"""Batched writes of the fire path: runs recorded, schedules advanced, runs marked sent.

On PostgreSQL each is one statement of constant text whose rows travel as one JSON
document: planned once by the server, and no thousand-row VALUES list for the driver to
parse or a dozen arrays to adapt element by element. SQLite takes the portable form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text, update
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.store.models import RunState, RunTrigger, runs, schedules


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(runs).on_conflict_do_nothing()
    return sqlite.insert(runs).on_conflict_do_nothing()


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
    "schedule_version": "int",
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


def new_run(
    *,
    run_id: str,
    schedule_id: str,
    scheduled_for: datetime,
    task: str,
    trigger: RunTrigger,
    now: datetime,
    schedule_version: int | None,
    attempt: int = 1,
    state: RunState = RunState.PENDING,
    fencing_token: int | None = None,
    reason: str | None = None,
    due_at: datetime | None = None,
    hold_while_busy: bool = False,
) -> dict[str, Any]:
    """A run row as :func:`insert_runs` writes it: a fire recorded, nothing known yet;
    ``schedule_version`` is the version of the schedule it fires under."""
    return {
        "id": run_id,
        "schedule_id": schedule_id,
        "scheduled_for": scheduled_for,
        "attempt": attempt,
        "trigger": trigger.value,
        "state": state.value,
        "task": task,
        "fencing_token": fencing_token,
        "reason": reason,
        "due_at": due_at,
        "hold_while_busy": hold_while_busy,
        "created_at": now,
        "schedule_version": schedule_version,
    }


def _recordset(columns: Mapping[str, str]) -> str:
    fields = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return f"json_to_recordset(CAST(:rows AS json)) AS v({fields})"


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


def advance_schedules(conn: Connection, advances: Sequence[dict[str, Any]]) -> None:
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
