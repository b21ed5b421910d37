"""Everything the overview page shows, gathered in one place.

The leader and replicas come from the same code as ``GET /v1/scheduler``; run counts,
fire lateness and the schedules needing a look from bounded, indexed reads of the store
(:mod:`scheduler.runs.run_history`, :mod:`scheduler.runs.lateness`). When the scheduler exports
figures of its own, this is where the overview reads them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.deps import AppContext
from api.routes.scheduler_status import scheduler_status
from api.status_schemas import SchedulerStatus
from scheduler.runs.lateness import LatenessSummary, recent_samples, summarize
from scheduler.runs.run_history import (
    FAILURE_PAUSE_PREFIX,
    QUARANTINE_PREFIX,
    StateCounts,
    counts_by_state,
    failing_schedules,
    held_schedules,
)
from scheduler.store.models import RunState

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Each state's day count stops here; the page shows "10,000+".
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Overview:
    """The overview page's figures, read at ``now``."""

    now: datetime
    status: SchedulerStatus
    counts: dict[RunState, StateCounts]
    lateness_hour: LatenessSummary
    lateness_day: LatenessSummary
    failing: list[dict[str, Any]]
    paused_after_failures: list[dict[str, Any]]
    quarantined: list[dict[str, Any]]

    @property
    def needs_attention(self) -> int:
        """How many schedules are listed as needing a look."""
        return len(self.failing) + len(self.paused_after_failures) + len(self.quarantined)


def load_overview(ctx: AppContext) -> Overview:
    """Read the overview's figures."""
    status = scheduler_status(ctx)
    now = ctx.clock()
    with ctx.engine.connect() as conn:
        counts = counts_by_state(conn, now - HOUR, now - DAY, cap=COUNT_CAP)
        samples = recent_samples(conn, now - DAY)
        failing = failing_schedules(conn)
        paused = held_schedules(conn, FAILURE_PAUSE_PREFIX)
        quarantined = held_schedules(conn, QUARANTINE_PREFIX)
    hour_ago = now - HOUR
    return Overview(
        now=now,
        status=status,
        counts=counts,
        lateness_hour=summarize([late for at, late in samples if at >= hour_ago]),
        lateness_day=summarize([late for _, late in samples]),
        failing=failing,
        paused_after_failures=paused,
        quarantined=quarantined,
    )
