"""The fire timeline: every instant a schedule's trigger planned in a window, and what
became of it — its run, or why there is none — from the records, not from guesses.

The instants come from the trigger of the version in force at the time (the change history
holds each version's spec), through the same :class:`~scheduler.timing.triggers.FireTimes` the
claim uses, with the schedule's calendars as they are now. What happened comes from the
runs (their state and reason), the pause intervals in the history, and the leadership
terms the lease recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select

from scheduler.store.calendar_store import load_calendars
from scheduler.store.history import spec_versions
from scheduler.store.models import LEADER_ROW, RunState, ScheduleState, leader, leader_terms, runs
from scheduler.store.schedule_reads import get_schedule
from scheduler.store.schedule_spec import spec_of
from scheduler.timing.exclusions import Calendar
from scheduler.timing.fire_policy import EXCLUDED, MOVED_HERE, fire_times_of
from scheduler.timing.triggers import jitter

_TICK = timedelta(microseconds=1)
# The reason the claim records for an excluded fire (see fire_policy.excluded_reason).
_EXCLUDED_REASON = re.compile(rf"^{EXCLUDED} '(?P<calendar>[^']+)'.*?(?:; moved to (?P<to>\S+))?$")
# A fire due this recently may not be claimed yet: it is "due", not unexplained.
CLAIM_LAG = timedelta(seconds=5)


@dataclass(frozen=True)
class Interval:
    """``[start, end)``; ``end`` None while it lasts."""

    start: datetime
    end: datetime | None
    info: dict[str, Any] = field(default_factory=dict)

    def holds(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


@dataclass
class Entry:
    """One planned instant and what became of it."""

    scheduled_for: datetime
    due_at: datetime
    status: str
    cause: str | None = None
    detail: str = ""
    run: dict[str, Any] | None = None
    attempts: int = 0
    schedule_version: int | None = None
    paused: dict[str, Any] | None = None
    calendar: str | None = None
    moved_to: datetime | None = None
    late_seconds: float | None = None
    leader_gap: Interval | None = None


@dataclass(frozen=True)
class _Segment:
    start: datetime
    end: datetime | None
    spec: dict[str, Any]
    version: int | None


def _segments(conn: Connection, row: Mapping[str, Any], since: datetime) -> list[_Segment]:
    """The spec in force over time, from the history; the current row if it has none."""
    versions = [
        v for v in spec_versions(conn, row["id"], since) if v["at"] >= row["created_at"]
    ] or [{"at": row["created_at"], "spec": spec_of(row), "version": row["version"]}]
    out: list[_Segment] = []
    spec: dict[str, Any] = versions[0]["spec"] or spec_of(row)
    version = versions[0]["version"]
    start = min(versions[0]["at"], row["created_at"])
    for change in versions[1:]:
        if change["spec"] is not None and change["spec"] != spec:
            out.append(_Segment(start, change["at"], spec, version))
            start, spec = change["at"], change["spec"]
        version = change["version"]
    out.append(_Segment(start, None, spec, version))
    return out


def pause_intervals(conn: Connection, row: Mapping[str, Any], since: datetime) -> list[Interval]:
    """When the schedule was paused, by whom and why, from its recorded state changes."""
    out: list[Interval] = []
    opened: Interval | None = None
    for change in spec_versions(conn, row["id"], since):
        paused = change["state"] == ScheduleState.PAUSED
        if paused and opened is None:
            info = {"since": change["at"], "actor": change["actor"], "reason": change["reason"]}
            opened = Interval(change["at"], None, info)
        elif not paused and opened is not None:
            out.append(Interval(opened.start, change["at"], opened.info))
            opened = None
    if opened is not None:
        out.append(opened)
    return out


def leader_gaps(
    conn: Connection, start: datetime, end: datetime, now: datetime
) -> tuple[list[Interval], datetime | None]:
    """Stretches of ``[start, end]`` with no leadership term, and since when terms are
    recorded (None: never, so nothing can be said)."""
    first = conn.execute(select(leader_terms.c.started_at).order_by(leader_terms.c.started_at))
    known = first.scalar()
    if known is None:
        return [], None
    terms = conn.execute(
        select(leader_terms)
        .where(
            leader_terms.c.started_at <= end,
            or_(leader_terms.c.ended_at.is_(None), leader_terms.c.ended_at >= start),
        )
        .order_by(leader_terms.c.started_at)
    ).mappings()
    current = conn.execute(select(leader).where(leader.c.name == LEADER_ROW)).mappings().first()
    covered: list[tuple[datetime, datetime]] = []
    for term in terms:
        term_end = term["ended_at"]
        if term_end is None:
            # The current term: it ends when its lease runs out without renewal.
            live = current is not None and current["fencing_token"] == term["fencing_token"]
            expires = current["lease_expires_at"] if live and current else None
            term_end = expires if expires is not None and expires < now else now
        covered.append((term["started_at"], term_end))
    gaps: list[Interval] = []
    cursor = max(start, known)
    for term_start, term_end in covered:
        if term_start > cursor:
            gaps.append(Interval(cursor, term_start))
        cursor = max(cursor, term_end)
    if cursor < end:
        gaps.append(Interval(cursor, None))
    return gaps, known


def planned_instants(
    segments: Sequence[_Segment],
    row: Mapping[str, Any],
    calendars: Mapping[str, Calendar],
    since: datetime,
    until: datetime,
    limit: int,
) -> list[tuple[datetime, _Segment]]:
    """Up to ``limit`` instants in ``[since, until)`` from the spec in force at each."""
    found: dict[datetime, _Segment] = {}
    for segment in segments:
        if segment.end is not None and segment.end <= since:
            continue
        if segment.start >= until:
            break
        spec = segment.spec
        unbounded = {
            **spec,
            "id": row["id"],
            "created_at": row["created_at"],
            "start_at": None,
            "end_at": None,
        }
        if spec["trigger"].get("type") == "interval" and spec.get("start_at"):
            unbounded["created_at"] = datetime.fromisoformat(spec["start_at"])
        fires = fire_times_of(unbounded, calendars)
        current = fires.first(segment.start) if segment.start >= since else None
        if current is None or current < since:
            current = fires.next_after(max(since, segment.start) - _TICK)
        while current is not None and current < until and len(found) <= limit:
            if segment.end is not None and current >= segment.end:
                break
            found.setdefault(current, segment)
            current = fires.next_after(current)
    return sorted(found.items())[: limit + 1]


def _run_cause(run: Mapping[str, Any]) -> tuple[str | None, str]:
    reason = run["reason"] or ""
    if run["state"] == RunState.SKIPPED:
        if reason.startswith(EXCLUDED):
            return "calendar", reason
        if reason.startswith("coalesced"):
            return "coalesced", reason
        return "overlap", reason
    if run["state"] == RunState.MISSED:
        return "late", reason
    if reason.startswith(MOVED_HERE):
        return "moved", reason
    return (run["trigger"] if run["trigger"] != "schedule" else None), reason


def timeline(
    conn: Connection,
    schedule_id: str,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    retention: timedelta,
    limit: int = 100,
) -> tuple[list[Entry], datetime | None]:
    """The page of instants in ``[since, until)``, and the instant to continue after."""
    row = get_schedule(conn, schedule_id)
    segments = _segments(conn, row, since)
    names = {n for s in segments for n in s.spec.get("exclude_calendars") or []}
    calendars = load_calendars(conn, names)
    instants = planned_instants(segments, row, calendars, since, until, limit)
    more = len(instants) > limit
    instants = instants[:limit]
    if not instants:
        return [], None
    first, last = instants[0][0], instants[-1][0]
    found: dict[datetime, list[dict[str, Any]]] = {}
    query = select(runs).where(
        runs.c.schedule_id == schedule_id, runs.c.scheduled_for.between(first, last)
    )
    for run in conn.execute(query.order_by(runs.c.attempt)).mappings():
        found.setdefault(run["scheduled_for"], []).append(dict(run))
    pauses = pause_intervals(conn, row, since)
    gaps, _known = leader_gaps(conn, first, last + timedelta(days=1), now)
    entries = [
        _classify(when, segment, row, calendars, found.get(when, []), pauses, gaps, now, retention)
        for when, segment in instants
    ]
    return entries, (last if more else None)


def _classify(
    when: datetime,
    segment: _Segment,
    row: Mapping[str, Any],
    calendars: Mapping[str, Calendar],
    attempts: list[dict[str, Any]],
    pauses: list[Interval],
    gaps: list[Interval],
    now: datetime,
    retention: timedelta,
) -> Entry:
    spec = segment.spec
    due = when + jitter(row["id"], when, spec.get("jitter_seconds") or 0)
    entry = Entry(when, due, "", schedule_version=segment.version, attempts=len(attempts))
    gap = next((g for g in gaps if g.holds(due)), None)
    if attempts:
        run = attempts[-1]
        entry.run, entry.status = run, run["state"]
        entry.schedule_version = run["schedule_version"] or segment.version
        entry.cause, entry.detail = _run_cause(attempts[0])
        recorded = _EXCLUDED_REASON.match(entry.detail) if entry.cause == "calendar" else None
        if recorded is not None:
            entry.calendar = recorded["calendar"]
            entry.moved_to = datetime.fromisoformat(recorded["to"]) if recorded["to"] else None
        if attempts[0]["state"] == RunState.MISSED:
            entry.late_seconds = (attempts[0]["created_at"] - due).total_seconds()
            if gap is not None:
                entry.cause, entry.leader_gap = "no_leader", gap
                entry.detail = f"no leader from {gap.start.isoformat()}; {entry.detail}"
        return entry
    start_at, end_at = spec.get("start_at"), spec.get("end_at")
    if (start_at and when < datetime.fromisoformat(start_at)) or (
        end_at and when > datetime.fromisoformat(end_at)
    ):
        entry.status, entry.cause = "not_planned", "outside_window"
        entry.detail = f"outside start_at {start_at} / end_at {end_at}"
        return entry
    unbounded = {**spec, "id": row["id"], "created_at": row["created_at"]}
    unbounded.update(start_at=None, end_at=None)
    cover = fire_times_of(unbounded, calendars).excluded(when)
    if cover is not None:
        entry.calendar, entry.cause = cover.calendar, "calendar"
        if spec.get("on_excluded") == "next_allowed":
            entry.moved_to = cover.end
        entry.detail = f"{EXCLUDED} {cover.calendar!r} ({cover.label})"
    pause = next((p for p in pauses if p.holds(due)), None)
    if pause is not None:
        entry.status, entry.cause, entry.paused = "not_fired", "paused", pause.info
        who = pause.info
        entry.detail = f"paused since {who['since'].isoformat()} by {who['actor']}" + (
            f": {who['reason']}" if who["reason"] else ""
        )
    elif due > now - CLAIM_LAG:
        entry.status = "upcoming" if due > now else "due"
        entry.cause = entry.cause or ("not_due" if due > now else "due")
        entry.detail = entry.detail or "not yet due"
    elif cover is not None:
        entry.status = "not_fired"
    elif gap is not None:
        entry.status, entry.cause, entry.leader_gap = "not_fired", "no_leader", gap
        entry.detail = f"no leader from {gap.start.isoformat()}" + (
            f" to {gap.end.isoformat()}" if gap.end else ""
        )
    elif due < now - retention:
        entry.status, entry.cause = "not_fired", "pruned"
        entry.detail = "no run kept: older than the run retention"
    else:
        entry.status, entry.cause = "not_fired", "no_record"
        entry.detail = "no run recorded (pruned beyond the per-schedule retention, or deleted)"
    return entry
