"""The claim: in one fenced transaction, take a batch of due schedules, record their fires
as runs and advance them. Publishing happens after commit, from the runs (an outbox)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from scheduler.errors import LeadershipLost, SundialError
from scheduler.firing.bulk import (
    advance_schedules,
    insert_runs,
    new_run,
)
from scheduler.leadership.skew import ClockGuard
from scheduler.runs.outcomes import IN_FLIGHT, record_auto_pause
from scheduler.store.calendar_store import CalendarCache
from scheduler.store.db import is_mysql
from scheduler.store.history import Kind
from scheduler.store.models import (
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
from scheduler.store.schedule_arming import paused_values
from scheduler.timing.fire_policy import FireTimesCache, calendar_names, plan
from scheduler.timing.overlap import InFlight, decide, in_flight

log = logging.getLogger("sundial.scheduler")


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
    trigger: str = RunTrigger.SCHEDULE.value
    # Celery's dispatch options, as ``apply_async`` takes them.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    exchange: str | None = None
    routing_key: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    # A fire prepared ahead of its instant: it may not be published before this.
    due_at: datetime | None = None


# The schedule columns a message carries beside its queue, priority and expiry.
DISPATCH_OPTIONS = (
    "time_limit_seconds",
    "soft_time_limit_seconds",
    "exchange",
    "routing_key",
    "headers",
)


def check_fencing(conn: Connection, token: int) -> None:
    """Raise :class:`LeadershipLost` unless ``token`` is the current term; holds a share lock
    on the leader row until commit, so no new term can start mid-claim."""
    query = select(leader.c.fencing_token).where(leader.c.name == LEADER_ROW)
    if conn.dialect.name == "postgresql" or is_mysql(conn.dialect):
        query = query.with_for_update(read=True)
    current = conn.execute(query).scalar_one()
    if current != token:
        raise LeadershipLost(f"fencing token {token} is stale; current term is {current}")


def dispatch_of(run: Mapping[Any, Any], schedule: Mapping[Any, Any]) -> Dispatch:
    """The message of a recorded run, from its schedule's columns."""
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
        trigger=run["trigger"],
        time_limit=schedule["time_limit_seconds"],
        soft_time_limit=schedule["soft_time_limit_seconds"],
        exchange=schedule["exchange"],
        routing_key=schedule["routing_key"],
        headers=dict(schedule["headers"] or {}),
        due_at=run["due_at"],
    )


@dataclass(frozen=True)
class Claim:
    """What a claim committed: messages to publish and runs to revoke (cancel_previous)."""

    dispatches: list[Dispatch] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)
    # Fires this claim recorded, by run state (pending, missed, skipped): for the metrics.
    recorded: dict[str, int] = field(default_factory=dict)


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
        *DISPATCH_OPTIONS,
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
        "exclude_calendars",
        "on_excluded",
    )
]


def claim_due(
    engine: Engine,
    now: datetime,
    token: int,
    limit: int,
    cache: FireTimesCache | None = None,
    ahead: timedelta = timedelta(0),
    guard: ClockGuard | None = None,
) -> Claim:
    """Record every fire due by ``now`` of up to ``limit`` schedules; return what to publish.

    With ``ahead``, fires due within that much of ``now`` are recorded too, prepared: pending
    with their ``due_at``, to be published at their instant (:mod:`scheduler.firing.outbox`). Only
    schedules whose overlap policy is ``allow`` are prepared ahead: the others decide from
    the runs in flight at the instant itself. With a ``guard``, nothing is claimed when
    ``now`` disagrees with the database's clock.
    """
    horizon = now + ahead
    when_due = schedules.c.next_due_at <= now
    if ahead > timedelta(0):
        when_due = and_(
            schedules.c.next_due_at <= horizon,
            or_(schedules.c.next_due_at <= now, schedules.c.overlap == Overlap.ALLOW.value),
        )
    with engine.begin() as conn:
        check_fencing(conn, token)
        if guard is not None:
            guard.check(conn, now)
        due = (
            conn.execute(
                select(*_CLAIM_COLUMNS)
                .where(when_due)
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
        named = {name for row in due for name in calendar_names(row)}
        calendars = {}
        if named:
            calendars = (cache.calendars if cache else CalendarCache()).load(conn, named)
        new_runs: list[dict[str, Any]] = []
        advances: list[dict[str, Any]] = []
        held: set[str] = set()
        revoke: list[str] = []
        quarantined: dict[str, str] = {}
        for row in due:
            try:
                outcome = plan(
                    cast(Mapping[str, Any], row),
                    now,
                    cache=cache,
                    calendars=calendars,
                    horizon=horizon if row["overlap"] == Overlap.ALLOW else None,
                )
            except (ValueError, TypeError, KeyError, SundialError) as exc:
                # A row no trigger can be built from must not stall every other schedule.
                quarantined[row["id"]] = f"{type(exc).__name__}: {exc}"
                continue
            decision = decide(
                Overlap(row["overlap"]), outcome.fires, current.get(row["id"], InFlight())
            )
            revoke.extend(decision.revoke)
            for fire in decision.fires:
                run_id = run_id_for(row["id"], fire.scheduled_for)
                if fire.scheduled_for in decision.held:
                    held.add(run_id)
                new_runs.append(
                    new_run(
                        run_id=run_id,
                        schedule_id=row["id"],
                        scheduled_for=fire.scheduled_for,
                        task=row["task"],
                        trigger=RunTrigger.SCHEDULE,
                        now=now,
                        state=fire.state,
                        fencing_token=token,
                        reason=fire.reason,
                        hold_while_busy=run_id in held,
                        schedule_version=row["version"],
                        due_at=fire.due_at,
                    )
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
        advance_schedules(conn, advances)
        if quarantined:
            _quarantine(conn, quarantined, now)
        if revoke:
            _cancel(conn, revoke, now)
    by_id = {row["id"]: row for row in due}
    return Claim(
        [
            dispatch_of(run, by_id[run["schedule_id"]])
            for run in new_runs
            if run["id"] in inserted
            and run["id"] not in held
            and run["state"] == RunState.PENDING.value
        ],
        revoke,
        dict(Counter(state for _, state in counts.elements())),
    )


def _quarantine(conn: Connection, reasons: Mapping[str, str], now: datetime) -> None:
    """Pause schedules whose stored trigger cannot be evaluated; keep them for a human."""
    for schedule_id, reason in reasons.items():
        log.error("scheduler: schedule %s quarantined: %s", schedule_id, reason)
        state_reason = f"quarantined: {reason}"[:1000]
        record_auto_pause(conn, schedule_id, state_reason, now, Kind.QUARANTINE)
        conn.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id)
            .values(paused_values(state_reason, now))
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


class DueTimes(NamedTuple):
    """When the store next needs the leader: a schedule's next fire, and the earliest
    instant a run waiting in the store (a retry's backoff, a paced backfill) may go out;
    ``policed`` is the next fire of a schedule with an overlap policy (never fired ahead)."""

    fire: datetime | None
    run: datetime | None
    policed: datetime | None = None


def due_times(engine: Engine) -> DueTimes:
    """The instants of :class:`DueTimes`, in one query."""
    next_due = func.min(schedules.c.next_due_at)
    query = select(
        select(next_due).where(schedules.c.overlap == Overlap.ALLOW.value).scalar_subquery(),
        select(func.min(runs.c.due_at))
        .where(runs.c.state == RunState.PENDING.value)
        .scalar_subquery(),
        select(next_due).where(schedules.c.overlap != Overlap.ALLOW.value).scalar_subquery(),
    )
    with engine.connect() as conn:
        fire, run, policed = conn.execute(query).one()
    return DueTimes(fire, run, policed)
