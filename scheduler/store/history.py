"""Change history: every change to a schedule or a calendar, with when, who and why.

:func:`record_change` is the one way a change is recorded; every write path calls it in
the transaction that makes the change. A schedule's entries hold the whole specification
of each version they create, so any version can be restored, and outlive the schedule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Connection, func, select

from scheduler.firing.bulk import insert_rows
from scheduler.store.models import changes
from scheduler.store.reads import newest_first

# The actor of changes nobody asked for: automatic pauses and quarantines.
SCHEDULER_ACTOR = "scheduler"
ANONYMOUS_ACTOR = "anonymous"
MAX_REASON_CHARS = 1000
Row = dict[str, Any]


class Kind:
    """What a change was (the ``kind`` column)."""

    CREATE = "create"
    UPDATE = "update"
    PAUSE = "pause"
    RESUME = "resume"
    DELETE = "delete"
    TRIGGER = "trigger"
    BACKFILL = "backfill"
    RESTORE = "restore"
    APPLY = "apply"
    AUTO_PAUSE = "auto_pause"
    QUARANTINE = "quarantine"
    BASELINE = "baseline"
    CALENDAR_CREATE = "calendar_create"
    CALENDAR_UPDATE = "calendar_update"
    CALENDAR_DELETE = "calendar_delete"

    ALL = (
        CREATE,
        UPDATE,
        PAUSE,
        RESUME,
        DELETE,
        TRIGGER,
        BACKFILL,
        RESTORE,
        APPLY,
        AUTO_PAUSE,
        QUARANTINE,
        BASELINE,
        CALENDAR_CREATE,
        CALENDAR_UPDATE,
        CALENDAR_DELETE,
    )


@dataclass(frozen=True)
class Audit:
    """Who makes a change and why; ``kind``, when set, names the change instead of the
    write's own kind (a replace made by a restore or an apply is recorded as such)."""

    actor: str
    reason: str | None = None
    kind: str | None = None
    details: Mapping[str, Any] | None = None


SCHEDULER = Audit(SCHEDULER_ACTOR)


def diff_specs(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Field-level difference of two specifications: ``{field: {"from": a, "to": b}}``."""
    if before is None or after is None:
        return {}
    fields = sorted(set(before) | set(after))
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in fields
        if before.get(name) != after.get(name)
    }


class ChangeFields(TypedDict, total=False):
    """What a change is about: ``after`` is the specification the change leaves (None when
    it leaves none, or changes no specification), ``before`` the one it replaced."""

    schedule_id: str | None
    calendar: str | None
    version: int | None
    state: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    details: Mapping[str, Any] | None


def change_row(audit: Audit, kind: str, now: datetime, **fields: Unpack[ChangeFields]) -> Row:
    """The row of one change."""
    reason = audit.reason[:MAX_REASON_CHARS] if audit.reason else None
    before, after, details = fields.get("before"), fields.get("after"), fields.get("details")
    return {
        "at": now,
        "schedule_id": fields.get("schedule_id"),
        "calendar": fields.get("calendar"),
        "kind": audit.kind or kind,
        "actor": audit.actor,
        "reason": reason,
        "version": fields.get("version"),
        "state": fields.get("state"),
        "spec": dict(after) if after is not None else None,
        "diff": diff_specs(before, after) or None,
        "details": {**(details or {}), **(audit.details or {})} or None,
    }


def record_change(
    conn: Connection, audit: Audit, kind: str, now: datetime, **fields: Unpack[ChangeFields]
) -> None:
    """Record one change (see :class:`ChangeFields`)."""
    record_changes(conn, [change_row(audit, kind, now, **fields)])


def record_changes(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record many changes (rows of :func:`change_row`) in one statement: a batch of
    creates writes its history at the cost of one round trip, not one per schedule."""
    insert_rows(conn, changes, rows)


def last_version(conn: Connection, schedule_id: str) -> int:
    """The highest version the schedule's history knows (0 when none): a schedule made
    again under a deleted one's id continues its numbering, so versions never repeat."""
    return last_versions(conn, [schedule_id]).get(schedule_id, 0)


def last_versions(conn: Connection, schedule_ids: Sequence[str]) -> dict[str, int]:
    """:func:`last_version` of many schedules in one query; ids without history are absent."""
    if not schedule_ids:
        return {}
    found = conn.execute(
        select(changes.c.schedule_id, func.max(changes.c.version))
        .where(changes.c.schedule_id.in_(schedule_ids))
        .group_by(changes.c.schedule_id)
    )
    return {schedule_id: int(version or 0) for schedule_id, version in found}


def find_version(conn: Connection, schedule_id: str, version: int) -> dict[str, Any] | None:
    """The change that made ``version`` of the schedule (it holds that version's spec)."""
    row = (
        conn.execute(
            select(changes)
            .where(
                changes.c.schedule_id == schedule_id,
                changes.c.version == version,
                changes.c.spec.is_not(None),
            )
            .order_by(changes.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def list_changes(
    conn: Connection,
    *,
    schedule_id: str | None = None,
    calendar: str | None = None,
    actors: Sequence[str] = (),
    kinds: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Changes newest first, in ``[since, until)``, older than ``before_id``, filtered."""
    query = newest_first(
        changes, changes.c.at, since=since, until=until, before_id=before_id, limit=limit
    )
    if schedule_id is not None:
        query = query.where(changes.c.schedule_id == schedule_id)
    if calendar is not None:
        query = query.where(changes.c.calendar == calendar)
    if actors:
        query = query.where(changes.c.actor.in_(actors))
    if kinds:
        query = query.where(changes.c.kind.in_(kinds))
    return [dict(row) for row in conn.execute(query).mappings()]


def spec_versions(conn: Connection, schedule_id: str, since: datetime) -> list[dict[str, Any]]:
    """The schedule's changes that set its state or spec, oldest first, from the last one
    before ``since`` on: what was in force when (for the timeline)."""
    state_changes = (changes.c.schedule_id == schedule_id) & changes.c.state.is_not(None)
    first = conn.execute(
        select(func.max(changes.c.id)).where(state_changes, changes.c.at <= since)
    ).scalar()
    query = select(changes).where(state_changes).order_by(changes.c.id)
    if first is not None:
        query = query.where(changes.c.id >= first)
    return [dict(row) for row in conn.execute(query).mappings()]
