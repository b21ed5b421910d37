"""Everything the overview page shows, gathered in one place.

The leader and replicas come from the same code as ``GET /v1/scheduler``; run counts,
fire lateness and the schedules needing a look from bounded, indexed reads of the store
(:mod:`scheduler.runs.run_history`, :mod:`scheduler.runs.lateness`). The leader's own metrics
(what its Prometheus endpoint serves) come from the snapshot its heartbeat writes to its
replica row (:mod:`scheduler.metrics`): the API runs in another process, often on another
machine, and the store is the one place both reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.deps import AppContext
from api.routes.scheduler_status import scheduler_status
from api.status_schemas import SchedulerStatus
from api.ui.describe import duration
from scheduler.metrics import (
    FIRE_OUTCOMES,
    RENEW_FAILURES,
    STORE_OPERATIONS,
    HistogramView,
    Snapshot,
    replica_snapshot,
)
from scheduler.runs.lateness import LatenessSummary, recent_samples, summarize
from scheduler.runs.run_history import (
    FAILURE_PAUSE_PREFIX,
    QUARANTINE_PREFIX,
    StateCounts,
    counts_by_state,
    failing_schedules,
    held_schedules,
)
from scheduler.store.models import RunState, RunTrigger

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Each state's day count stops here; the page shows "10,000+".
COUNT_CAP = 10_000


@dataclass(frozen=True)
class LeaderMetrics:
    """The leader's metrics as of its last heartbeat, counted since its process started."""

    at: datetime
    term: int
    fires: dict[str, int]
    published: dict[str, int]
    lateness: HistogramView
    claim: HistogramView
    publish: HistogramView
    outbox_pending: int
    broker_refusals: int
    renew_failures: int
    store_errors: dict[str, int]

    @classmethod
    def of(cls, snap: Snapshot) -> LeaderMetrics:
        """Read the figures the page shows out of a snapshot."""
        return cls(
            at=snap.at,
            term=int(snap.value("fencing_term")),
            fires={o: int(snap.value("fires_total", outcome=o)) for o in FIRE_OUTCOMES},
            published={
                t.value: int(snap.value("runs_published_total", trigger=t.value))
                for t in RunTrigger
            },
            lateness=snap.histogram("fire_lateness_seconds"),
            claim=snap.histogram("claim_duration_seconds"),
            publish=snap.histogram("publish_duration_seconds"),
            outbox_pending=int(snap.value("outbox_pending_runs")),
            broker_refusals=int(snap.value("broker_refusals_total")),
            renew_failures=sum(
                int(snap.value("lease_renew_failures_total", reason=r)) for r in RENEW_FAILURES
            ),
            store_errors={
                op: int(snap.value("store_errors_total", operation=op)) for op in STORE_OPERATIONS
            },
        )


def bound_text(view: HistogramView, bound: float) -> str:
    """A bucket's upper bound in words: "≤ 250 ms", or "> 60 s" for the last one."""
    if math.isinf(bound):
        finite = [b for b, _ in view.cumulative if not math.isinf(b)]
        return f"> {duration(finite[-1])}" if finite else "any"
    return f"≤ {duration(bound)}"


def quantile_text(view: HistogramView, q: float) -> str:
    """The ``q``-quantile as the bucket it falls in ("≤ 100 ms"); "—" with no samples."""
    bound = view.quantile_bound(q)
    return "—" if bound is None else bound_text(view, bound)


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
    # None when no replica leads, or its metrics are off
    metrics: LeaderMetrics | None = None

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
        snap = replica_snapshot(conn, status.leader.replica_id) if status.leader else None
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
        metrics=LeaderMetrics.of(snap) if snap is not None else None,
    )
