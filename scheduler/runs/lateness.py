"""Fire lateness: how long after its scheduled time a fire reached the broker.

The dashboard reads it from the run history (``dispatched_at - scheduled_for`` of recent
scheduled fires, jitter included); a scheduler metric can feed the same buckets and summary
from the fire path. Both share :data:`BUCKETS_S` so their histograms read alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, union_all

from scheduler.store.models import RunState, RunTrigger, runs

# Upper bounds of the histogram buckets, in seconds (Prometheus ``le`` style: cumulative
# counts are derived from these; the last bucket is everything slower).
BUCKETS_S: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A fire that has reached the broker is in one of these states.
PUBLISHED_STATES: tuple[RunState, ...] = (
    RunState.DISPATCHED,
    RunState.STARTED,
    RunState.SUCCEEDED,
    RunState.FAILED,
    RunState.RETRYING,
    RunState.EXPIRED,
    RunState.REVOKED,
)
# The newest fires sampled; a busy day holds millions, and a percentile needs far fewer.
DEFAULT_SAMPLE = 5000


@dataclass(frozen=True)
class LatenessSummary:
    """Percentiles and a histogram of lateness samples, in seconds."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None
    # (upper bound or None for "slower than the last bound", samples in that bucket)
    buckets: tuple[tuple[float | None, int], ...]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) of sorted ``ordered`` by the nearest-rank method."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> LatenessSummary:
    """p50, p99, max and per-bucket counts of ``samples`` (seconds)."""
    ordered = sorted(samples)
    counts = [0] * (len(BUCKETS_S) + 1)
    for value in ordered:
        index = next((i for i, bound in enumerate(BUCKETS_S) if value <= bound), len(BUCKETS_S))
        counts[index] += 1
    bounds: list[float | None] = [*BUCKETS_S, None]
    return LatenessSummary(
        count=len(ordered),
        p50=percentile(ordered, 0.5),
        p99=percentile(ordered, 0.99),
        max=ordered[-1] if ordered else None,
        buckets=tuple(zip(bounds, counts, strict=True)),
    )


def recent_samples(
    conn: Connection, since: datetime, limit: int = DEFAULT_SAMPLE
) -> list[tuple[datetime, float]]:
    """``(scheduled_for, lateness in seconds)`` of the newest ``limit`` scheduled fires since
    ``since`` that reached the broker, newest first.

    One index range per state (``ix_runs_state_scheduled_for``), each cut at ``limit``, so
    the cost does not grow with the day's volume. Manual, retry and backfill runs are left
    out: their ``scheduled_for`` is not a time anyone waited for.
    """
    parts = [
        select(runs.c.scheduled_for, runs.c.dispatched_at)
        .where(
            runs.c.state == state.value,
            runs.c.scheduled_for >= since,
            runs.c.trigger == RunTrigger.SCHEDULE.value,
            runs.c.dispatched_at.is_not(None),
        )
        .order_by(runs.c.scheduled_for.desc())
        .limit(limit)
        .subquery()
        for state in PUBLISHED_STATES
    ]
    merged = union_all(*(select(part) for part in parts)).subquery()
    query = select(merged).order_by(merged.c.scheduled_for.desc()).limit(limit)
    return [
        (row.scheduled_for, (row.dispatched_at - row.scheduled_for).total_seconds())
        for row in conn.execute(query)
    ]
