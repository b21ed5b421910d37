"""The leader's periodic chores: settle runs whose outcome never arrived, prune history
and finished one-offs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select

from scheduler.leadership.chores import LeaderChore
from scheduler.runs.outcomes import FINAL, record_outcome
from scheduler.runs.retention import prune_history, prune_one_offs
from scheduler.store.db import among
from scheduler.store.models import RunState, runs, schedules
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.housekeeping")

BATCH = 1000
# Schedules looked at per round for runs beyond the per-schedule limit: a bounded walk
# along the primary key, resumed where the last round stopped.
SURPLUS_SCAN = 10_000
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
    # Finished one-offs are deleted this long after their fire settled, and their history
    # this long after that; None keeps them forever.
    one_off_max_age: timedelta | None = None
    batch: int = BATCH


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
    """Delete one batch of finished runs older than the retention; return how many went."""
    with engine.begin() as conn:
        doomed = list(
            conn.execute(
                select(runs.c.id)
                .where(runs.c.state.in_(_FINAL), runs.c.scheduled_for < now - retention.max_age)
                .limit(retention.batch)
            ).scalars()
        )
        if doomed:
            conn.execute(delete(runs).where(among(conn, runs.c.id, doomed)))
    return len(doomed)


def prune_surplus_runs(engine: Engine, retention: Retention, after: str) -> tuple[int, str]:
    """Delete finished runs beyond the newest ``per_schedule`` of each of the next
    :data:`SURPLUS_SCAN` schedules after id ``after``; return how many went and the id the
    next round starts after (``""``: from the start again)."""
    fires = schedules.c.run_count + schedules.c.missed_count + schedules.c.skipped_count
    with engine.begin() as conn:
        walked = conn.execute(
            select(schedules.c.id, fires)
            .where(schedules.c.id > after)
            .order_by(schedules.c.id)
            .limit(SURPLUS_SCAN)
        ).all()
        # Only a schedule that has recorded more fires than the limit can be over it (its
        # retries are not counted: they count only towards the age limit).
        full = [schedule_id for schedule_id, count in walked if count > retention.per_schedule]
        doomed: list[str] = []
        if full:
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
                .where(among(conn, runs.c.schedule_id, full), runs.c.state.in_(_FINAL))
                .subquery()
            )
            doomed = list(
                conn.execute(
                    select(ranked.c.id)
                    .where(ranked.c.rank > retention.per_schedule)
                    .limit(retention.batch)
                ).scalars()
            )
            if doomed:
                conn.execute(delete(runs).where(among(conn, runs.c.id, doomed)))
    if len(doomed) == retention.batch:
        return len(doomed), after  # more left in this stretch
    return len(doomed), walked[-1][0] if len(walked) == SURPLUS_SCAN else ""


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
        token: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._clock = clock
        self._chore: LeaderChore | None = None
        self._engine = engine
        self._interval = interval
        self._timeout = timeout
        self._retention = retention
        self._lookup = lookup
        self._token = token
        self._next: datetime | None = None
        self._surplus_after = ""

    def maybe_run(self, now: datetime) -> None:
        """Do the chores if the interval has passed since the last time."""
        if self._next is not None and now < self._next:
            return
        self._next = now + self._interval
        settled = settle_stale_runs(self._engine, now, self._timeout, self._lookup)
        pruned = prune_runs(self._engine, now, self._retention)
        surplus, self._surplus_after = prune_surplus_runs(
            self._engine, self._retention, self._surplus_after
        )
        pruned += surplus
        if settled or pruned:
            log.info("housekeeping: settled %d stale runs, pruned %d", settled, pruned)
        max_age = self._retention.one_off_max_age
        if max_age is not None:
            one_offs = self._drain(prune_one_offs, now, max_age)
            history = self._drain(prune_history, now, max_age)
            if one_offs or history:
                log.info(
                    "housekeeping: pruned %d finished one-offs, the history of %d",
                    one_offs,
                    history,
                )

    def _drain(self, prune: Callable[..., int], now: datetime, max_age: timedelta) -> int:
        """Batches of ``prune`` until one comes back short, the interval is used up or the
        lease is gone (each batch checks the fencing token in its own transaction)."""
        batch = self._retention.batch
        budget = time.monotonic() + self._interval.total_seconds()
        total = 0
        while (token := self._token()) is not None:
            pruned: int = prune(self._engine, now, max_age, batch, token)
            total += pruned
            if pruned < batch or time.monotonic() >= budget:
                break
        return total

    def start(self, leading: Callable[[], bool]) -> None:
        """Do the chores in the background whenever ``leading()`` holds."""
        period = min(1.0, self._interval.total_seconds())
        self._chore = LeaderChore("housekeeping", period, self.maybe_run, self._clock)
        self._chore.start(leading)

    def stop(self) -> None:
        """Stop the background chores."""
        if self._chore is not None:
            self._chore.stop()
