"""The leader's periodic chores: settle runs whose outcome never arrived, prune history."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select

from scheduler.leadership.chores import LeaderChore
from scheduler.runs.outcomes import FINAL, record_outcome
from scheduler.store.models import RunState, runs
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.housekeeping")

BATCH = 1000
# How long a run may go without news before the result backend is asked about it.
BACKEND_CHECK_AFTER = timedelta(seconds=30)
_WAITING = [RunState.DISPATCHED.value, RunState.STARTED.value, RunState.RETRYING.value]
_FINAL = [s.value for s in FINAL] + [RunState.SKIPPED.value, RunState.MISSED.value]

# Maps a run id to (state, columns) from a Celery result backend, or None if it knows nothing.
ResultLookup = Callable[[str], tuple[RunState, dict[str, Any]] | None]


@dataclass(frozen=True)
class Retention:
    """How much finished history to keep."""

    max_age: timedelta
    per_schedule: int


def settle_stale_runs(
    engine: Engine,
    now: datetime,
    timeout: timedelta,
    lookup: ResultLookup | None,
) -> int:
    """Fill in outcomes from the result backend; fail runs silent for ``timeout``."""
    last_news = func.coalesce(runs.c.started_at, runs.c.dispatched_at)
    with engine.connect() as conn:
        stale = conn.execute(
            select(runs.c.id, last_news.label("last_news"))
            .where(runs.c.state.in_(_WAITING), last_news < now - BACKEND_CHECK_AFTER)
            .order_by(last_news)
            .limit(BATCH)
        ).all()
    settled = 0
    for run_id, news_at in stale:
        found = None
        if lookup is not None:
            try:
                found = lookup(run_id)
            except Exception as exc:  # backend down: fall through to the timeout
                log.warning("housekeeping: result backend lookup of %s failed: %s", run_id, exc)
        if found is not None:
            settled += record_outcome(engine, run_id, found[0], found[1], now)
        elif news_at < now - timeout:
            error = {
                "type": "OutcomeUnknown",
                "message": f"no task event or result for {timeout.total_seconds():g}s",
                "traceback": None,
            }
            settled += record_outcome(
                engine, run_id, RunState.FAILED, {"finished_at": now, "error": error}, now
            )
    return settled


def prune_runs(engine: Engine, now: datetime, retention: Retention) -> int:
    """Delete one batch of finished runs beyond the retention; return how many went."""
    with engine.begin() as conn:
        old = select(runs.c.id).where(
            runs.c.state.in_(_FINAL), runs.c.scheduled_for < now - retention.max_age
        )
        ranked = (
            select(
                runs.c.id,
                func.row_number()
                .over(
                    partition_by=runs.c.schedule_id,
                    order_by=(runs.c.scheduled_for.desc(), runs.c.attempt.desc()),
                )
                .label("rank"),
            )
            .where(runs.c.state.in_(_FINAL))
            .subquery()
        )
        surplus = select(ranked.c.id).where(ranked.c.rank > retention.per_schedule)
        doomed = [
            row[0]
            for row in conn.execute(
                select(runs.c.id)
                .where(or_(runs.c.id.in_(old), runs.c.id.in_(surplus)))
                .limit(BATCH)
            )
        ]
        if doomed:
            conn.execute(delete(runs).where(runs.c.id.in_(doomed)))
    return len(doomed)


class Housekeeper:
    """Runs the chores at most once per interval while this replica leads, from a thread
    of its own: a prune over a large history must not hold up the fire path."""

    def __init__(
        self,
        engine: Engine,
        interval: timedelta,
        timeout: timedelta,
        retention: Retention,
        lookup: ResultLookup | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._clock = clock
        self._chore: LeaderChore | None = None
        self._engine = engine
        self._interval = interval
        self._timeout = timeout
        self._retention = retention
        self._lookup = lookup
        self._next: datetime | None = None

    def maybe_run(self, now: datetime) -> None:
        """Do the chores if the interval has passed since the last time."""
        if self._next is not None and now < self._next:
            return
        self._next = now + self._interval
        settled = settle_stale_runs(self._engine, now, self._timeout, self._lookup)
        pruned = prune_runs(self._engine, now, self._retention)
        if settled or pruned:
            log.info("housekeeping: settled %d stale runs, pruned %d", settled, pruned)

    def start(self, leading: Callable[[], bool]) -> None:
        """Do the chores in the background whenever ``leading()`` holds."""
        period = min(1.0, self._interval.total_seconds())
        self._chore = LeaderChore("housekeeping", period, self.maybe_run, self._clock)
        self._chore.start(leading)

    def stop(self) -> None:
        """Stop the background chores."""
        if self._chore is not None:
            self._chore.stop()
