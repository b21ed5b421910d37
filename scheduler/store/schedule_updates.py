"""Writes to existing schedules: replace, delete, pause, resume, re-arm, mark applied."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, update

from scheduler.errors import Conflict
from scheduler.runs.alerts import resolve_deleted
from scheduler.store.calendar_store import link_calendars, users_of
from scheduler.store.history import Audit, Kind, record_change, record_changes
from scheduler.store.models import ScheduleState, schedules
from scheduler.store.schedule_arming import STATE_COLUMNS, arming_columns, fire_prepared
from scheduler.store.schedule_reads import get_schedule
from scheduler.store.schedule_spec import VALUE_COLUMNS, Row, ScheduleValues, spec_change, spec_of
from scheduler.timing.fire_policy import calendar_names

_WRITE_STAMP = ("updated_at", "version")


def _record(
    conn: Connection, audit: Audit, kind: str, now: datetime, after: Row, before: Row | None = None
) -> None:
    record_changes(conn, [spec_change(audit, kind, now, after, before)])


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
    row.update(arming_columns(conn, row, paused=paused, current=current, now=now))
    row = _write(conn, current, row, now)
    _record(conn, audit, Kind.UPDATE, now, row, current)
    return row


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
    if current["state"] == ScheduleState.COMPLETED and not fire_prepared(current, now):
        raise Conflict(f"schedule {schedule_id!r} is completed; it has nothing to pause")
    reason = audit.reason
    if current["state"] == ScheduleState.PAUSED:
        if reason is None or reason == current["state_reason"]:
            return current
        row = _write(conn, current, {**current, "state_reason": reason}, now)
        _record(conn, audit, Kind.PAUSE, now, row, current)
        return row
    row = {**current, **arming_columns(conn, current, paused=True, current=current, now=now)}
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
    row = {**current, **arming_columns(conn, current, paused=False, current=None, now=now)}
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
        columns = arming_columns(conn, current, paused=False, current=None, now=since)
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


def _write(conn: Connection, current: Row, row: Row, now: datetime) -> Row:
    row.update(updated_at=now, version=current["version"] + 1)
    # Only the columns the API owns: run history columns belong to the leader.
    changes = {k: row[k] for k in (*VALUE_COLUMNS, *STATE_COLUMNS, *_WRITE_STAMP)}
    conn.execute(update(schedules).where(schedules.c.id == current["id"]).values(**changes))
    return row
