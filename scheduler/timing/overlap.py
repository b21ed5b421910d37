"""Overlap policy: what a new fire does while the schedule's previous run is in flight."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, select

from scheduler.runs.outcomes import IN_FLIGHT
from scheduler.store.models import Overlap, RunState, runs
from scheduler.timing.fire_policy import Fire

BUFFERED = "buffered until the previous run ends"


@dataclass(frozen=True)
class InFlight:
    """A schedule's runs that have not finished: published or waiting to be."""

    running: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True when any run of the schedule has not finished."""
        return bool(self.running or self.waiting)


@dataclass(frozen=True)
class Decision:
    """The fires after the policy, which of them wait, and which runs to revoke."""

    fires: list[Fire]
    held: set[datetime] = field(default_factory=set)
    revoke: list[str] = field(default_factory=list)


def in_flight(conn: Connection, schedule_ids: Iterable[str]) -> dict[str, InFlight]:
    """Unfinished runs of the given schedules, split into running and waiting."""
    ids = list(schedule_ids)
    found: dict[str, InFlight] = {}
    if not ids:
        return found
    rows = conn.execute(
        select(runs.c.schedule_id, runs.c.id, runs.c.state).where(
            runs.c.schedule_id.in_(ids), runs.c.state.in_([s.value for s in IN_FLIGHT])
        )
    )
    for schedule_id, run_id, state in rows:
        entry = found.setdefault(schedule_id, InFlight())
        (entry.waiting if state == RunState.PENDING else entry.running).append(run_id)
    return found


def decide(policy: Overlap, fires: Sequence[Fire], current: InFlight) -> Decision:
    """Apply ``policy`` to a schedule's newly due fires (in time order)."""
    pending = [f for f in fires if f.state is RunState.PENDING]
    if policy is Overlap.ALLOW or not pending:
        return Decision(list(fires))
    others = [f for f in fires if f.state is not RunState.PENDING]
    busy = current.busy

    def skip(fire: Fire, why: str) -> Fire:
        return replace(fire, state=RunState.SKIPPED, reason=why)

    if policy is Overlap.SKIP:
        keep = [] if busy else pending[:1]
        why = "previous run still in flight" if busy else "the earlier fire is running"
        out = keep + [skip(f, why) for f in pending[len(keep) :]]
        return Decision(sorted(others + out, key=lambda f: f.scheduled_for))
    if policy is Overlap.BUFFER_ONE:
        runnable: list[Fire] = [] if busy else pending[:1]
        room = 0 if current.waiting else 1
        buffered = [replace(f, reason=BUFFERED) for f in pending[len(runnable) :][:room]]
        rest = pending[len(runnable) + len(buffered) :]
        out = runnable + buffered + [skip(f, "buffer full: one fire already waits") for f in rest]
        held = {f.scheduled_for for f in buffered}
        return Decision(sorted(others + out, key=lambda f: f.scheduled_for), held=held)
    # cancel_previous: the newest fire wins; whatever still runs or waits is revoked.
    latest = pending[-1]
    out = [skip(f, "superseded by a later fire") for f in pending[:-1]] + [latest]
    return Decision(
        sorted(others + out, key=lambda f: f.scheduled_for),
        revoke=current.running + current.waiting,
    )
