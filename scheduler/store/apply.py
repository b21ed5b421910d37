"""Declarative apply: make the schedules one source manages match a desired set.

One call runs in the caller's transaction (a dry run rolls it back, so it meets every
check a real apply meets). Each write goes through :mod:`scheduler.store.schedule_creation`
and :mod:`scheduler.store.schedule_updates`, like any other API write. A schedule remembers
the source that manages it and the fields that source last applied: a hand edit since then
is drift, and pruning only ever removes schedules of the same source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.errors import Conflict, InvalidSchedule, NotFound
from scheduler.store import calendar_store, schedule_creation, schedule_reads, schedule_updates
from scheduler.store.calendar_store import CalendarSpec
from scheduler.store.history import Audit, Kind
from scheduler.store.models import ScheduleState, apply_sources, schedules
from scheduler.store.schedule_arming import ARMING_FIELDS
from scheduler.store.schedule_spec import Row, ScheduleValues
from scheduler.timing.fire_policy import calendar_names, fire_times_of, upcoming

SPEC_FIELDS = (*ScheduleValues.__annotations__, "paused")


@dataclass(frozen=True)
class Desired:
    """One schedule as the source wants it."""

    id: str
    values: ScheduleValues
    paused: bool


@dataclass(frozen=True)
class DesiredCalendar:
    """One exclusion calendar as the source wants it."""

    name: str
    spec: CalendarSpec


@dataclass(frozen=True)
class FieldChange:
    """One user-set field that differs: ``before`` → ``after``."""

    field: str
    before: Any
    after: Any


@dataclass
class PlanEntry:
    """What apply does (or would do) to one schedule, and why."""

    id: str
    # Live → desired, field by field (empty when created, unchanged or pruned).
    changes: list[FieldChange] = field(default_factory=list)
    # Last applied → live: edits made outside apply since this source last applied it.
    drift: list[FieldChange] = field(default_factory=list)
    # The schedule existed, made by hand, and this apply takes it over.
    adopted: bool = False
    # The next fire times now and after the apply, when its timing changes.
    fire_times_before: list[datetime] = field(default_factory=list)
    fire_times_after: list[datetime] = field(default_factory=list)


@dataclass
class CalendarPlan:
    """What apply does to the calendars it lists (it never deletes one: see the README)."""

    created: list[str] = field(default_factory=list)
    # Name → the fields (description, rules) that differ.
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    # Schedules re-armed because a calendar they name changed.
    rearmed: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The outcome of an apply, entry by entry."""

    source: str
    created: list[PlanEntry] = field(default_factory=list)
    changed: list[PlanEntry] = field(default_factory=list)
    unchanged: list[PlanEntry] = field(default_factory=list)
    pruned: list[PlanEntry] = field(default_factory=list)
    # Managed by this source, absent from the desired set, kept because pruning is off.
    orphaned: list[PlanEntry] = field(default_factory=list)
    calendars: CalendarPlan = field(default_factory=CalendarPlan)

    @property
    def touched(self) -> list[str]:
        """Ids of the schedules whose timing or fields the apply writes."""
        ids = [e.id for e in (*self.created, *self.changed, *self.pruned)]
        return list(dict.fromkeys([*self.calendars.rearmed, *ids]))


def spec_document(values: Mapping[str, Any], paused: bool) -> dict[str, Any]:
    """The user-set fields of a schedule as JSON, the form applies are compared and kept in."""
    doc = {name: _jsonable(values[name]) for name in ScheduleValues.__annotations__}
    doc["paused"] = paused
    return doc


def live_document(row: Row) -> dict[str, Any]:
    """The user-set fields of a stored schedule, as :func:`spec_document` writes them."""
    return spec_document(row, row["state"] == ScheduleState.PAUSED)


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """The fields that differ, in the schedule's field order."""
    return [
        FieldChange(name, before.get(name), after.get(name))
        for name in SPEC_FIELDS
        if before.get(name) != after.get(name)
    ]


def apply_schedules(
    conn: Connection,
    source: str,
    desired: Sequence[Desired],
    *,
    prune: bool,
    now: datetime,
    audit: Audit,
    fire_time_count: int = 3,
    calendars: Sequence[DesiredCalendar] = (),
) -> Plan:
    """Create or replace ``calendars``, then create, replace, adopt and (with ``prune``)
    delete so that ``source`` manages exactly ``desired``. Entry errors name the entry:
    ``schedules.<index>.<field>``.

    Each write is recorded in the schedule's history as an ``apply`` by ``audit``'s actor
    (a pruned schedule as a ``delete``), with the source in its details; a calendar's as
    a ``calendar_create`` or ``calendar_update``."""
    details = {**(audit.details or {}), "source": source}
    _lock_source(conn, source, now)
    plan = Plan(source)
    for index, calendar in enumerate(calendars):
        try:
            _apply_calendar(conn, calendar, plan.calendars, now, replace(audit, details=details))
        except Conflict as exc:
            raise Conflict(f"calendars[{index}] ({calendar.name!r}): {exc}") from exc
    audit = replace(audit, kind=Kind.APPLY, details=details)
    prune_audit = replace(audit, kind=None, details={**details, "pruned": True})
    wanted = {d.id for d in desired}
    for index, want in enumerate(desired):
        try:
            _apply_one(conn, source, want, plan, now, fire_time_count, audit)
        except InvalidSchedule as exc:
            raise InvalidSchedule(f"schedules.{index}.{exc.field}", exc.message) from exc
        except Conflict as exc:
            raise Conflict(f"schedules[{index}] ({want.id!r}): {exc}") from exc
    for row in _managed_by(conn, source):
        if row["id"] in wanted:
            continue
        entry = PlanEntry(row["id"], drift=_drift(row))
        if prune:
            schedule_updates.delete_schedule(conn, row["id"], now, prune_audit)
            plan.pruned.append(entry)
        else:
            plan.orphaned.append(entry)
    return plan


def _apply_one(
    conn: Connection,
    source: str,
    want: Desired,
    plan: Plan,
    now: datetime,
    count: int,
    audit: Audit,
) -> None:
    doc = spec_document(want.values, want.paused)
    current = schedule_reads.find_schedule(conn, want.id, for_update=True)
    if current is None:
        row = schedule_creation.create_schedule(
            conn, want.id, want.values, paused=want.paused, now=now, audit=audit
        )
        schedule_updates.mark_applied(conn, want.id, source, doc)
        plan.created.append(PlanEntry(want.id, fire_times_after=_upcoming(conn, row, now, count)))
        return
    owner = current["managed_by"]
    if owner is not None and owner != source:
        raise Conflict(
            f"schedule {want.id!r} is managed by source {owner!r}; "
            "apply it from that source, or delete it there first"
        )
    live = live_document(current)
    entry = PlanEntry(want.id, changes=diff(live, doc), drift=_drift(current))
    entry.adopted = owner is None
    if not entry.changes:
        if entry.adopted or current["applied"] != doc:
            schedule_updates.mark_applied(conn, want.id, source, doc)
        plan.unchanged.append(entry)
        return
    row = schedule_updates.replace_schedule(
        conn, current, want.values, paused=want.paused, now=now, audit=audit
    )
    schedule_updates.mark_applied(conn, want.id, source, doc)
    if any(c.field in ARMING_FIELDS for c in entry.changes):
        entry.fire_times_before = _upcoming(conn, current, now, count)
        entry.fire_times_after = _upcoming(conn, row, now, count)
    plan.changed.append(entry)


def _apply_calendar(
    conn: Connection, want: DesiredCalendar, plan: CalendarPlan, now: datetime, audit: Audit
) -> None:
    doc = want.spec.document()
    try:
        current = calendar_store.get_calendar(conn, want.name)
    except NotFound:
        current = None
    if current is None:
        calendar_store.put_calendar(conn, want.name, want.spec, now, audit)
        plan.created.append(want.name)
        return
    changes = [
        FieldChange(name, current[name], doc[name])
        for name in ("description", "rules")
        if current[name] != doc[name]
    ]
    if not changes:
        plan.unchanged.append(want.name)
        return
    calendar_store.put_calendar(conn, want.name, want.spec, now, audit)
    plan.changed[want.name] = changes
    plan.rearmed.extend(schedule_updates.rearm_calendar_users(conn, want.name, now))


def _drift(row: Row) -> list[FieldChange]:
    applied = row["applied"]
    if row["managed_by"] is None or applied is None:
        return []
    return diff(applied, live_document(row))


def _upcoming(conn: Connection, row: Row, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``now`` (those its calendars let fire, as the
    preview lists them); none when they cannot be represented."""
    calendars = calendar_store.load_calendars(conn, calendar_names(row))
    try:
        planned = upcoming(fire_times_of(row, calendars), now, count)
        return [p.scheduled_for for p in planned if p.excluded is None]
    except (OverflowError, ValueError):
        return []


def _managed_by(conn: Connection, source: str) -> list[Row]:
    query = (
        select(schedules)
        .where(schedules.c.managed_by == source)
        .order_by(schedules.c.id)
        .with_for_update()
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def _lock_source(conn: Connection, source: str, now: datetime) -> None:
    """Hold the source's row until the transaction ends: one apply per source at a time."""
    query = select(apply_sources.c.source).where(apply_sources.c.source == source)
    if conn.execute(query.with_for_update()).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(apply_sources).values(source=source, applied_at=now))
            return
        except IntegrityError:
            # A concurrent first apply of this source inserted the row: wait for it to end.
            conn.execute(query.with_for_update())
    conn.execute(
        update(apply_sources).where(apply_sources.c.source == source).values(applied_at=now)
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value
