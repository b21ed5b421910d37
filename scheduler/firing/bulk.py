"""Batched writes of the fire path: runs recorded, schedules advanced, runs marked sent.

On PostgreSQL each is one statement of constant text whose rows travel as one JSON
document: planned once by the server, and no thousand-row VALUES list for the driver to
parse or a dozen arrays to adapt element by element. The documents are written by orjson,
which knows datetimes: the standard library's encoder, calling back into Python for each
of them, was a fifth of a batch create's CPU. SQLite and MySQL/MariaDB take the
portable form (the driver sends an insert's rows as one multi-row statement); MySQL has no
``RETURNING``, so which runs an insert recorded is read back by key, and it advances
schedules from one JSON document too, through ``JSON_TABLE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    TextClause,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql, sqlite

from scheduler.store.db import is_mysql
from scheduler.store.models import RunState, RunTrigger, ScheduleState, runs, schedules

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


# Statements that take a batch of run ids find them by primary key whatever PostgreSQL's
# statistics say: written ``state = 'pending'``, the condition could use the state index,
# and the planner does when its statistics still count few pending runs (a burst, a window
# prepared ahead: thousands are pending within a second). It then reads every pending run
# for each batch: 350 ms a batch of 1,000 with 10,000 pending, against 5 ms by key.
_PENDING_BY_KEY = "state || '' = 'pending'"
_PG_MARK_DISPATCHED = text(
    "UPDATE runs SET state = 'dispatched', dispatched_at = :now "
    f"WHERE {_PENDING_BY_KEY} "
    "AND id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:ids AS json))))"
)


def _json(value: object) -> str:
    """``value`` as a JSON text; a datetime as its ISO 8601 form, offset included."""
    return orjson.dumps(value).decode()


def _json_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {"rows": _json(rows)}


_POPULATE: dict[tuple[str, tuple[str, ...]], TextClause] = {}


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one statement. On PostgreSQL they travel
    as one JSON document read back with the table's own row type
    (``json_populate_recordset``): one execution of the insert, where an ``executemany`` runs
    it once per row, and no per-value adaptation in the driver. A JSON column's ``None``
    becomes SQL NULL there (the ORM's JSON ``null`` elsewhere); both read back as None."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    columns = tuple(rows[0])
    key = (table.name, columns)
    statement = _POPULATE.get(key)
    if statement is None:
        names = ", ".join(f'"{c}"' for c in columns)
        statement = _POPULATE[key] = text(
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
            f'FROM json_populate_recordset(NULL::"{table.name}", CAST(:rows AS json))'
        )
    conn.execute(statement, _json_rows(rows))


def insert_runs(conn: Connection, new_runs: Sequence[dict[str, Any]]) -> set[str]:
    """Insert runs; a fire already recorded (same schedule, time, attempt) is left alone."""
    if not new_runs:
        return set()
    if conn.dialect.name == "postgresql":
        result = conn.execute(_PG_INSERT_RUNS, _json_rows(new_runs))
    elif is_mysql(conn.dialect):
        return _mysql_insert_runs(conn, new_runs)
    else:
        result = conn.execute(
            sqlite.insert(runs).on_conflict_do_nothing().returning(runs.c.id), list(new_runs)
        )
    return {row[0] for row in result.all()}


def _mysql_insert_runs(conn: Connection, new_runs: Sequence[dict[str, Any]]) -> set[str]:
    ids = [run["id"] for run in new_runs]
    present = select(runs.c.id).where(runs.c.id.in_(ids))
    before = set(conn.execute(present).scalars())
    # A duplicate key (the same fire, recorded already) leaves the row as it is. Not
    # INSERT IGNORE: that would also turn a bad value or a missing schedule into a warning.
    ignore = mysql.insert(runs).on_duplicate_key_update(id=runs.c.id)
    fresh = [run for run in new_runs if run["id"] not in before]
    if not fresh:
        return set()
    conn.execute(ignore, fresh)
    # Present now and not before: recorded here. A fire recorded under another id (same
    # schedule, time and attempt) is present under neither.
    return set(conn.execute(present).scalars()) - before


# MySQL's DATETIME reads this form from a string; JSON_TABLE turns a missing key into NULL.
_MY_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
_MY_ADVANCE_COLUMNS = {
    "b_id": "VARCHAR(128)",
    "b_next_run_at": "DATETIME(6)",
    "b_next_due_at": "DATETIME(6)",
    "b_last_run_at": "DATETIME(6)",
    "b_state": "VARCHAR(16)",
    "b_runs": "INT",
    "b_missed": "INT",
    "b_skipped": "INT",
}
_MY_ADVANCE = text(
    "UPDATE JSON_TABLE(:rows, '$[*]' COLUMNS ("
    + ", ".join(f"{name} {kind} PATH '$.{name}'" for name, kind in _MY_ADVANCE_COLUMNS.items())
    # The rows first, then each schedule by its key: a scan of schedules (the optimizer's
    # choice on a small table) would lock rows the claim skipped, held by another
    # transaction, and wait on them. The collation keeps the lookup on the primary key.
    + ")) AS v STRAIGHT_JOIN schedules AS s FORCE INDEX (PRIMARY) "
    "ON s.id = v.b_id COLLATE utf8mb4_bin "
    "SET s.next_run_at = v.b_next_run_at, s.next_due_at = v.b_next_due_at, "
    "s.last_run_at = v.b_last_run_at, s.state = v.b_state, s.run_count = s.run_count + v.b_runs, "
    "s.missed_count = s.missed_count + v.b_missed, "
    "s.skipped_count = s.skipped_count + v.b_skipped"
)


def _my_json_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime(_MY_DATETIME)
        return value

    return {"rows": _json([{k: plain(v) for k, v in row.items() if v is not None} for row in rows])}


def advance_schedules(conn: Connection, advances: Sequence[dict[str, Any]]) -> None:
    """Move each claimed schedule to its next fire and add to its counters."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_ADVANCE, _json_rows(advances))
        return
    if is_mysql(conn.dialect):
        # One statement, as on PostgreSQL: an UPDATE per schedule costs a round trip each.
        conn.execute(_MY_ADVANCE, _my_json_rows(advances))
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
            conn.execute(_PG_MARK_DISPATCHED, {"ids": _json(ids), "now": now})
            return
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(ids), runs.c.state == RunState.PENDING.value)
            .values(state=RunState.DISPATCHED.value, dispatched_at=now)
        )


# The reason of a fire prepared ahead of its instant and withdrawn before it.
WITHDRAWN = "withdrawn before its instant"
_WHY_WITHDRAWN = (
    f"'{WITHDRAWN}: ' || CASE WHEN s.state = 'paused' THEN 'the schedule was paused' "
    "ELSE 'the schedule changed (now version ' || s.version || ')' END"
)
_PG_WITHDRAW = (
    f"UPDATE runs AS r SET state = 'skipped', finished_at = :now, reason = {_WHY_WITHDRAWN} "
    "FROM schedules AS s WHERE s.id = r.schedule_id AND {pending} "
    "AND r.trigger = 'schedule' AND r.due_at IS NOT NULL AND r.schedule_version <> s.version "
)
_PG_WITHDRAW_DUE = text(
    _PG_WITHDRAW.format(pending="r.state = 'pending'")
    + "AND r.due_at <= :now RETURNING r.schedule_id"
)
# At an instant, in one statement: withdraw the listed runs whose schedule changed and list
# those still pending. The whole statement reads one snapshot: the SELECT sees the runs as
# they were before the UPDATE, so a run withdrawn here comes back joined to its row in
# ``withdrawn``. Unlike a second statement, it also still sees a run of the batch whose
# deletion (or cancel) committed after the statement began (while the UPDATE waited on a
# row lock, say); such a run goes out, as it would had that commit come after the check.
_PG_RELEASE_CHECK = text(
    "WITH ids AS (SELECT json_array_elements_text(CAST(:ids AS json)) AS id), "
    "withdrawn AS ("
    + _PG_WITHDRAW.format(pending=f"r.{_PENDING_BY_KEY}")
    + "AND r.id = ANY(ARRAY(SELECT id FROM ids)) RETURNING r.id, r.schedule_id) "
    "SELECT r.id, w.id IS NOT NULL, w.schedule_id "
    "FROM runs AS r LEFT JOIN withdrawn AS w ON w.id = r.id "
    f"WHERE r.{_PENDING_BY_KEY} AND r.id = ANY(ARRAY(SELECT id FROM ids))"
)


def withdraw_changed(conn: Connection, now: datetime) -> int:
    """Record ``skipped`` the runs prepared ahead of their instant and due by ``now`` whose
    schedule was paused or changed since: they fired a version that is no longer the
    schedule. A deleted schedule's runs went with it. Returns how many."""
    if conn.dialect.name == "postgresql":
        withdrawn = [row[0] for row in conn.execute(_PG_WITHDRAW_DUE, {"now": now})]
    else:
        withdrawn = _withdraw_portable(conn, now, None)
    if withdrawn:
        _count_withdrawn(conn, withdrawn)
    return len(withdrawn)


def _withdraw_portable(conn: Connection, now: datetime, run_ids: Sequence[str] | None) -> list[str]:
    query = (
        select(runs.c.id, runs.c.schedule_id, schedules.c.state, schedules.c.version)
        .join(schedules, schedules.c.id == runs.c.schedule_id)
        .where(
            runs.c.state == RunState.PENDING.value,
            runs.c.trigger == RunTrigger.SCHEDULE.value,
            runs.c.due_at.is_not(None),
            runs.c.schedule_version != schedules.c.version,
            runs.c.id.in_(list(run_ids)) if run_ids is not None else runs.c.due_at <= now,
        )
    )
    withdrawn: list[str] = []
    for run_id, schedule_id, state, version in conn.execute(query).all():
        why = (
            "the schedule was paused"
            if state == ScheduleState.PAUSED
            else f"the schedule changed (now version {version})"
        )
        conn.execute(
            update(runs)
            .where(and_(runs.c.id == run_id, runs.c.state == RunState.PENDING.value))
            .values(state=RunState.SKIPPED.value, finished_at=now, reason=f"{WITHDRAWN}: {why}")
        )
        withdrawn.append(schedule_id)
    return withdrawn


def _count_withdrawn(conn: Connection, schedule_ids: Sequence[str]) -> None:
    """A withdrawn fire was counted as a run when prepared: count it skipped instead."""
    per_schedule: dict[str, int] = {}
    for sid in schedule_ids:
        per_schedule[sid] = per_schedule.get(sid, 0) + 1
    conn.execute(
        update(schedules)
        .where(schedules.c.id == bindparam("w_id"))
        .values(
            # SQLite's two-argument max() is its greatest().
            run_count=func.max(schedules.c.run_count - bindparam("w_n"), 0)
            if conn.dialect.name == "sqlite"
            else func.greatest(schedules.c.run_count - bindparam("w_n"), 0),
            skipped_count=schedules.c.skipped_count + bindparam("w_n"),
        ),
        [{"w_id": sid, "w_n": n} for sid, n in per_schedule.items()],
    )


def release_check(conn: Connection, now: datetime, run_ids: Sequence[str]) -> set[str]:
    """Which of ``run_ids``, prepared ahead, may go out at their instant ``now``: those whose
    schedule was paused or changed since are withdrawn (recorded ``skipped`` with the
    reason, as by :func:`withdraw_changed`), and those no longer pending (cancelled, deleted
    with their schedule) are left out."""
    if not run_ids:
        return set()
    going: set[str] = set()
    withdrawn: list[str] = []
    if conn.dialect.name == "postgresql":
        params = {"ids": _json(list(run_ids)), "now": now}
        for run_id, was_withdrawn, schedule_id in conn.execute(_PG_RELEASE_CHECK, params):
            if was_withdrawn:
                withdrawn.append(schedule_id)
            else:
                going.add(run_id)
    else:
        withdrawn = _withdraw_portable(conn, now, run_ids)
        still_pending = select(runs.c.id).where(
            runs.c.id.in_(list(run_ids)), runs.c.state == RunState.PENDING.value
        )
        going = {row[0] for row in conn.execute(still_pending)}
    if withdrawn:
        _count_withdrawn(conn, withdrawn)
    return going
