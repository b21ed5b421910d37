"""The schedule and run repository: SQL reads and writes, and the arming rules they apply.

Plain SQLAlchemy Core over a caller's connection (the caller owns the transaction), with
``now`` passed in. Failures are :mod:`scheduler.errors` exceptions; nothing here knows HTTP.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.bulk import new_run
from scheduler.errors import Conflict, InvalidSchedule, NotFound, TaskNotAllowed
from scheduler.firing import Arming, arm
from scheduler.models import RunTrigger, ScheduleState, idempotency_keys, runs, schedules

# A change to any of these moves the next fire, so the schedule is re-armed.
ARMING_FIELDS = ("trigger", "start_at", "end_at", "jitter_seconds")
# An Idempotency-Key is remembered this long, like Stripe's; after that it may be reused.
IDEMPOTENCY_TTL = timedelta(hours=24)
PAUSED_REASON = "paused through the API"
COMPLETED_REASON = "the trigger has no fire time left"

Row = dict[str, Any]
_STATE_COLUMNS = ("state", "state_reason", "next_run_at", "next_due_at")
_WRITE_STAMP = ("updated_at", "version")
# The run history of a new schedule; the leader keeps these up to date, API writes never do.
_NEW_HISTORY: Row = {
    "last_run_at": None,
    "last_run_state": None,
    "run_count": 0,
    "failure_count": 0,
    "consecutive_failures": 0,
    "missed_count": 0,
    "skipped_count": 0,
}


# What a run just recorded shows of its outcome: nothing yet.
_NO_OUTCOME: Row = dict.fromkeys(
    ("dispatched_at", "started_at", "finished_at", "worker", "result", "error")
)


class ScheduleValues(TypedDict):
    """The user-set columns of a schedule, validated, with the trigger resolved to JSON."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    trigger: dict[str, Any]
    queue: str
    priority: int | None
    expires_seconds: float | None
    misfire_grace_seconds: float | None
    coalesce: bool
    overlap: str
    jitter_seconds: float
    retry: dict[str, Any] | None
    pause_after_failures: int | None
    start_at: datetime | None
    end_at: datetime | None
    description: str
    labels: dict[str, str]


_VALUE_COLUMNS = tuple(ScheduleValues.__annotations__)


def check_task_allowed(task: str, patterns: Sequence[str]) -> None:
    """Raise :class:`TaskNotAllowed` unless ``task`` matches one of the glob ``patterns``."""
    if not any(fnmatch.fnmatchcase(task, pattern) for pattern in patterns):
        raise TaskNotAllowed("task", f"task {task!r} is not in SUNDIAL_ALLOWED_TASKS")


def find_schedule(conn: Connection, schedule_id: str, *, for_update: bool = False) -> Row | None:
    """The schedule row, or None; ``for_update`` locks it until the transaction ends."""
    query = select(schedules).where(schedules.c.id == schedule_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def get_schedule(conn: Connection, schedule_id: str, *, for_update: bool = False) -> Row:
    """The schedule row, or :class:`NotFound`."""
    row = find_schedule(conn, schedule_id, for_update=for_update)
    if row is None:
        raise NotFound(f"no schedule {schedule_id!r}")
    return row


def list_schedules(
    conn: Connection,
    *,
    task: str | None = None,
    state: str | None = None,
    labels: Mapping[str, str] | None = None,
    after_id: str | None = None,
    limit: int = 100,
) -> list[Row]:
    """Schedules ordered by id, after ``after_id``, matching every given filter."""
    query = select(schedules).order_by(schedules.c.id).limit(limit)
    if task is not None:
        query = query.where(schedules.c.task == task)
    if state is not None:
        query = query.where(schedules.c.state == state)
    for key, value in (labels or {}).items():
        query = query.where(schedules.c.labels[key].as_string() == value)
    if after_id is not None:
        query = query.where(schedules.c.id > after_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def create_schedule(
    conn: Connection, schedule_id: str, values: ScheduleValues, *, paused: bool, now: datetime
) -> Row:
    """Insert a new, armed schedule; :class:`Conflict` when the id is taken."""
    row: Row = {**values, **_NEW_HISTORY, "id": schedule_id, "created_at": now}
    row.update(_arming_columns(row, paused=paused, current=None, now=now))
    row.update(updated_at=now, version=1)
    try:
        conn.execute(insert(schedules).values(**row))
    except IntegrityError as exc:
        raise Conflict(f"schedule {schedule_id!r} already exists") from exc
    return row


def replace_schedule(
    conn: Connection, current: Row, values: ScheduleValues, *, paused: bool, now: datetime
) -> Row:
    """Overwrite a schedule's user-set columns, re-arming it when its timing changed."""
    row: Row = {**current, **values}
    row.update(_arming_columns(row, paused=paused, current=current, now=now))
    return _write(conn, current, row, now)


def paused_values(reason: str, now: datetime) -> Row:
    """The values the paused transition writes, whoever pauses (the API, a failure streak,
    a quarantine): no next fire, the reason, and a new version, so ETags change too."""
    return {
        "state": ScheduleState.PAUSED.value,
        "state_reason": reason,
        "next_run_at": None,
        "next_due_at": None,
        "updated_at": now,
        "version": schedules.c.version + 1,
    }


def delete_schedule(conn: Connection, schedule_id: str) -> None:
    """Delete a schedule and its run history; :class:`NotFound` when absent."""
    result = conn.execute(delete(schedules).where(schedules.c.id == schedule_id))
    if result.rowcount == 0:
        raise NotFound(f"no schedule {schedule_id!r}")


def pause_schedule(conn: Connection, schedule_id: str, now: datetime) -> Row:
    """Stop a schedule's fires until resumed; pausing a paused schedule changes nothing."""
    current = get_schedule(conn, schedule_id, for_update=True)
    if current["state"] == ScheduleState.PAUSED:
        return current
    if current["state"] == ScheduleState.COMPLETED:
        raise Conflict(f"schedule {schedule_id!r} is completed; it has nothing to pause")
    row = {**current, **_arming_columns(current, paused=True, current=current, now=now)}
    return _write(conn, current, row, now)


def resume_schedule(conn: Connection, schedule_id: str, now: datetime) -> Row:
    """Re-arm a paused schedule from ``now``; resuming an active one changes nothing."""
    current = get_schedule(conn, schedule_id, for_update=True)
    if current["state"] == ScheduleState.ACTIVE:
        return current
    if current["state"] == ScheduleState.COMPLETED:
        raise Conflict(f"schedule {schedule_id!r} is completed; its trigger will not fire again")
    row = {**current, **_arming_columns(current, paused=False, current=None, now=now)}
    return _write(conn, current, row, now)


def create_idempotent(
    conn: Connection,
    key: str,
    request_hash: str,
    schedule_id: str,
    values: ScheduleValues,
    *,
    paused: bool,
    now: datetime,
) -> tuple[Row, bool]:
    """Create once per ``key``: ``(row, True)`` replays the schedule the key made before.

    The same key with a different request (``request_hash``) is a :class:`Conflict`.
    """
    seen = (
        conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key))
        .mappings()
        .first()
    )
    if seen is not None and seen["created_at"] > now - IDEMPOTENCY_TTL:
        if seen["request_hash"] != request_hash:
            raise Conflict("Idempotency-Key was used with a different request body")
        return get_schedule(conn, seen["schedule_id"]), True
    if seen is not None:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key == key))
    row = create_schedule(conn, schedule_id, values, paused=paused, now=now)
    try:
        conn.execute(
            insert(idempotency_keys).values(
                key=key, request_hash=request_hash, schedule_id=schedule_id, created_at=now
            )
        )
    except IntegrityError as exc:
        raise Conflict("a request with this Idempotency-Key is in progress") from exc
    return row, False


def trigger_run(conn: Connection, schedule_id: str, now: datetime) -> Row:
    """Record a manual fire at ``now`` as a pending run, for the leader's relay to publish.

    The schedule's ``run_count`` counts it: the leader counts only the fires it claims.
    """
    counted = conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(run_count=schedules.c.run_count + 1)
        .returning(schedules.c.task)
    ).first()
    if counted is None:
        raise NotFound(f"no schedule {schedule_id!r}")
    run: Row = new_run(
        run_id=str(uuid.uuid4()),
        schedule_id=schedule_id,
        scheduled_for=now,
        task=counted.task,
        trigger=RunTrigger.MANUAL,
        now=now,
    )
    try:
        conn.execute(insert(runs).values(**run))
    except IntegrityError as exc:
        raise Conflict(f"schedule {schedule_id!r} already has a run for {now.isoformat()}") from exc
    return {**run, **_NO_OUTCOME}


def get_run(conn: Connection, run_id: str) -> Row:
    """The run row, or :class:`NotFound`."""
    row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    return dict(row)


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
    query = (
        select(runs)
        .where(runs.c.schedule_id == schedule_id)
        .order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
        .limit(limit)
    )
    if states:
        query = query.where(runs.c.state.in_(states))
    if triggers:
        query = query.where(runs.c.trigger.in_(triggers))
    if since is not None:
        query = query.where(runs.c.scheduled_for >= since)
    if until is not None:
        query = query.where(runs.c.scheduled_for < until)
    if before is not None:
        at, run_id = before
        query = query.where(
            or_(
                runs.c.scheduled_for < at,
                and_(runs.c.scheduled_for == at, runs.c.id < run_id),
            )
        )
    return [dict(row) for row in conn.execute(query).mappings()]


def count_by_state(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    """How many schedules and runs are in each state."""
    counts = []
    for table in (schedules, runs):
        result = conn.execute(select(table.c.state, func.count()).group_by(table.c.state))
        counts.append({state: int(n) for state, n in result})
    return counts[0], counts[1]


def _write(conn: Connection, current: Row, row: Row, now: datetime) -> Row:
    row.update(updated_at=now, version=current["version"] + 1)
    # Only the columns the API owns: run history columns belong to the leader.
    changes = {k: row[k] for k in (*_VALUE_COLUMNS, *_STATE_COLUMNS, *_WRITE_STAMP)}
    conn.execute(update(schedules).where(schedules.c.id == current["id"]).values(**changes))
    return row


def _arming_columns(row: Row, *, paused: bool, current: Row | None, now: datetime) -> Row:
    """State and next-fire columns for ``row``; ``current`` is the row it replaces, if any."""
    keep = _STATE_COLUMNS
    if paused:
        if current is not None and current["state"] == ScheduleState.PAUSED:
            return {k: current[k] for k in keep}
        pausing = paused_values(PAUSED_REASON, now)
        return {k: pausing[k] for k in keep}
    timing_changed = current is None or any(row[f] != current[f] for f in ARMING_FIELDS)
    if current is not None and current["state"] != ScheduleState.PAUSED and not timing_changed:
        return {k: current[k] for k in keep}
    arming = _arm(row, now)
    last = row["last_run_at"]
    # Never re-arm at or before the last fire: a finished one-off must not fire twice.
    if arming.next_run_at is None or (last is not None and arming.next_run_at <= last):
        return dict(
            zip(keep, (ScheduleState.COMPLETED.value, COMPLETED_REASON, None, None), strict=True)
        )
    return dict(
        zip(
            keep,
            (ScheduleState.ACTIVE.value, None, arming.next_run_at, arming.next_due_at),
            strict=True,
        )
    )


def _arm(row: Row, now: datetime) -> Arming:
    try:
        return arm(row, now)
    except (OverflowError, ValueError) as exc:
        # Fire times near the end of the datetime range cannot be represented.
        raise InvalidSchedule("trigger", f"no representable fire time: {exc}") from exc
