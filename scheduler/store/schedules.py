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

from sqlalchemy import Connection, Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.errors import Conflict, InvalidSchedule, NotFound, SundialError, TaskNotAllowed
from scheduler.firing.bulk import new_run
from scheduler.runs.alerts import resolve_deleted
from scheduler.store.calendar_store import link_calendars, load_calendars, users_of
from scheduler.store.history import Audit, Kind, last_version, record_change
from scheduler.store.models import RunTrigger, ScheduleState, idempotency_keys, runs, schedules
from scheduler.timing.fire_policy import Arming, arm, calendar_names

# A change to any of these moves the next fire, so the schedule is re-armed.
ARMING_FIELDS = (
    "trigger",
    "start_at",
    "end_at",
    "jitter_seconds",
    "exclude_calendars",
    "on_excluded",
)
# An Idempotency-Key is remembered this long, like Stripe's; after that it may be reused.
IDEMPOTENCY_TTL = timedelta(hours=24)
PAUSED_REASON = "paused through the API"
# Schedules a free-text search examines per call; see :func:`search_schedules`.
SEARCH_SCAN = 5000
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
    exclude_calendars: list[str]
    on_excluded: str
    expect_success_within_seconds: float | None


_VALUE_COLUMNS = tuple(ScheduleValues.__annotations__)


def spec_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule's whole specification as JSON (what ``PUT`` takes): a version's record."""
    spec = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in ((name, row.get(name)) for name in _VALUE_COLUMNS)
    }
    spec["exclude_calendars"] = list(spec["exclude_calendars"] or [])
    spec["on_excluded"] = spec["on_excluded"] or "skip"
    spec["paused"] = row["state"] == ScheduleState.PAUSED
    return spec


def _record(
    conn: Connection,
    audit: Audit,
    kind: str,
    now: datetime,
    after: Row,
    before: Row | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    record_change(
        conn,
        audit,
        kind,
        now,
        schedule_id=after["id"],
        version=after["version"],
        state=after["state"],
        before=spec_of(before) if before is not None else None,
        after=spec_of(after),
        details=details,
    )


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
    query = _filtered(select(schedules), task, state, labels, after_id).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def search_schedules(
    conn: Connection,
    text: str,
    *,
    task: str | None = None,
    state: str | None = None,
    labels: Mapping[str, str] | None = None,
    after_id: str | None = None,
    limit: int = 100,
    scan: int = SEARCH_SCAN,
) -> tuple[list[Row], str | None]:
    """Schedules whose id, task or description contains ``text`` (any case), among the
    next ``scan`` schedules in id order after ``after_id`` that match the other filters.

    Returns the matches (at most ``limit``) and the id to continue after, or None when the
    end was reached: a window of ``scan`` rows bounds each call however rare the text is.
    """
    window = _filtered(select(schedules.c.id), task, state, labels, after_id).limit(scan).subquery()
    needle = text.lower()
    matching = or_(
        func.lower(schedules.c.id).contains(needle, autoescape=True),
        func.lower(schedules.c.task).contains(needle, autoescape=True),
        func.lower(schedules.c.description).contains(needle, autoescape=True),
    )
    # A join, not IN: MariaDB refuses LIMIT inside an IN subquery.
    query = (
        select(schedules)
        .join(window, window.c.id == schedules.c.id)
        .where(matching)
        .order_by(schedules.c.id)
        .limit(limit + 1)
    )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1]["id"]
    scanned, last = conn.execute(select(func.count(), func.max(window.c.id))).one()
    return rows, (last if scanned >= scan else None)


def _filtered(
    query: Select[Any],
    task: str | None,
    state: str | None,
    labels: Mapping[str, str] | None,
    after_id: str | None,
) -> Select[Any]:
    query = query.order_by(schedules.c.id)
    if task is not None:
        query = query.where(schedules.c.task == task)
    if state is not None:
        query = query.where(schedules.c.state == state)
    for key, value in (labels or {}).items():
        query = query.where(schedules.c.labels[key].as_string() == value)
    if after_id is not None:
        query = query.where(schedules.c.id > after_id)
    return query


def create_schedule(
    conn: Connection,
    schedule_id: str,
    values: ScheduleValues,
    *,
    paused: bool,
    now: datetime,
    audit: Audit,
) -> Row:
    """Insert a new, armed schedule; :class:`Conflict` when the id is taken.

    Its version continues the numbering of a deleted schedule of the same id, if any.
    """
    row: Row = {**values, **_NEW_HISTORY, "id": schedule_id, "created_at": now}
    row.update(_arming_columns(conn, row, paused=paused, current=None, now=now))
    row.update(updated_at=now, version=last_version(conn, schedule_id) + 1)
    try:
        conn.execute(insert(schedules).values(**row))
    except IntegrityError as exc:
        raise Conflict(f"schedule {schedule_id!r} already exists") from exc
    link_calendars(conn, schedule_id, values["exclude_calendars"])
    _record(conn, audit, Kind.CREATE, now, row)
    return row


def replace_schedule(
    conn: Connection,
    current: Row,
    values: ScheduleValues,
    *,
    paused: bool,
    now: datetime,
    audit: Audit,
) -> Row:
    """Overwrite a schedule's user-set columns, re-arming it when its timing changed."""
    row: Row = {**current, **values}
    if calendar_names(row) != calendar_names(current):
        link_calendars(conn, current["id"], values["exclude_calendars"])
    row.update(_arming_columns(conn, row, paused=paused, current=current, now=now))
    row = _write(conn, current, row, now)
    _record(conn, audit, Kind.UPDATE, now, row, current)
    return row


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


def delete_schedule(conn: Connection, schedule_id: str, now: datetime, audit: Audit) -> None:
    """Delete a schedule and its run history (its change history stays);
    :class:`NotFound` when absent."""
    current = get_schedule(conn, schedule_id, for_update=True)
    conn.execute(delete(schedules).where(schedules.c.id == schedule_id))
    resolve_deleted(conn, schedule_id, now)
    record_change(
        conn,
        audit,
        Kind.DELETE,
        now,
        schedule_id=schedule_id,
        version=current["version"],
        before=spec_of(current),
    )


def pause_schedule(conn: Connection, schedule_id: str, now: datetime, audit: Audit) -> Row:
    """Stop a schedule's fires until resumed, with the audit's reason (if any) as its
    ``state_reason``. Pausing a paused schedule changes nothing, unless a new reason is given.
    """
    current = get_schedule(conn, schedule_id, for_update=True)
    if current["state"] == ScheduleState.COMPLETED:
        raise Conflict(f"schedule {schedule_id!r} is completed; it has nothing to pause")
    reason = audit.reason
    if current["state"] == ScheduleState.PAUSED:
        if reason is None or reason == current["state_reason"]:
            return current
        row = _write(conn, current, {**current, "state_reason": reason}, now)
        _record(conn, audit, Kind.PAUSE, now, row, current)
        return row
    row = {**current, **_arming_columns(conn, current, paused=True, current=current, now=now)}
    if reason is not None:
        row["state_reason"] = reason
    row = _write(conn, current, row, now)
    _record(conn, audit, Kind.PAUSE, now, row, current)
    return row


def resume_schedule(conn: Connection, schedule_id: str, now: datetime, audit: Audit) -> Row:
    """Re-arm a paused schedule from ``now``; resuming an active one changes nothing.

    The audit's reason, if given, is kept as the ``state_reason`` of the active schedule.
    """
    current = get_schedule(conn, schedule_id, for_update=True)
    if current["state"] == ScheduleState.ACTIVE:
        return current
    if current["state"] == ScheduleState.COMPLETED:
        raise Conflict(f"schedule {schedule_id!r} is completed; its trigger will not fire again")
    row = {**current, **_arming_columns(conn, current, paused=False, current=None, now=now)}
    if audit.reason is not None and row["state"] == ScheduleState.ACTIVE:
        row["state_reason"] = audit.reason
    row = _write(conn, current, row, now)
    _record(conn, audit, Kind.RESUME, now, row, current)
    return row


def rearm_calendar_users(conn: Connection, calendar: str, now: datetime) -> list[str]:
    """Re-arm the active schedules naming ``calendar`` after it changed; their ids.

    A fire due but not yet claimed stays due: the next fire is looked for from just before
    the current one, or from ``now`` if that is earlier.
    """
    rearmed = []
    for schedule_id in users_of(conn, calendar):
        current = get_schedule(conn, schedule_id, for_update=True)
        if current["state"] != ScheduleState.ACTIVE:
            continue
        pending = current["next_run_at"]
        since = min(now, pending - timedelta(microseconds=1)) if pending else now
        columns = _arming_columns(conn, current, paused=False, current=None, now=since)
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**columns))
        rearmed.append(schedule_id)
    return rearmed


def mark_applied(conn: Connection, schedule_id: str, source: str, applied: Row) -> None:
    """Record that ``source`` manages the schedule and last applied ``applied`` to it.

    Not a change of the schedule itself: its version and ETag stay.
    """
    conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(managed_by=source, applied=applied)
    )


def create_idempotent(
    conn: Connection,
    key: str,
    request_hash: str,
    schedule_id: str,
    values: ScheduleValues,
    *,
    paused: bool,
    now: datetime,
    audit: Audit,
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
    row = create_schedule(conn, schedule_id, values, paused=paused, now=now, audit=audit)
    try:
        conn.execute(
            insert(idempotency_keys).values(
                key=key, request_hash=request_hash, schedule_id=schedule_id, created_at=now
            )
        )
    except IntegrityError as exc:
        raise Conflict("a request with this Idempotency-Key is in progress") from exc
    return row, False


def trigger_run(conn: Connection, schedule_id: str, now: datetime, audit: Audit) -> Row:
    """Record a manual fire at ``now`` as a pending run, for the leader's relay to publish.

    The schedule's ``run_count`` counts it: the leader counts only the fires it claims.
    """
    counted = conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(run_count=schedules.c.run_count + 1)
        .returning(schedules.c.task, schedules.c.version)
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


def _arming_columns(
    conn: Connection, row: Row, *, paused: bool, current: Row | None, now: datetime
) -> Row:
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
    arming = _arm(conn, row, now)
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


def _arm(conn: Connection, row: Row, now: datetime) -> Arming:
    try:
        return arm(row, now, load_calendars(conn, calendar_names(row)))
    except SundialError:
        raise
    except (OverflowError, ValueError) as exc:
        # Fire times near the end of the datetime range cannot be represented.
        raise InvalidSchedule("trigger", f"no representable fire time: {exc}") from exc
