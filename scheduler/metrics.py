"""The scheduler's own Prometheus metrics: one object owns them, the entry point builds it
with a registry and passes it to the parts of the fire path that report.

Label sets are bounded by enums (run trigger, fire outcome, store operation, renew
failure kind); a schedule id is never a label. The same figures are written to the
replica's row at each heartbeat (:meth:`SchedulerMetrics.snapshot`), which is how the
dashboard, served by another process, shows them (:class:`Snapshot`).
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from scheduler.firing.claim import Claim, Dispatch
from scheduler.runs.lateness import BUCKETS_S
from scheduler.store.models import RunState, RunTrigger, replicas, runs
from scheduler.timing.clock import monotonic

log = logging.getLogger("sundial.metrics")

PREFIX = "sundial_scheduler_"
# Fire outcomes counted by ``sundial_scheduler_fires_total``.
FIRE_OUTCOMES = ("published", "missed", "skipped")
# Where a store error was met; each a bounded label value.
# cycle: the leader's claim or relay; wait: reading when to look next; mark: recording
# published runs; heartbeat: the replica row; tracking: a task event; scrape: this module.
STORE_OPERATIONS = ("cycle", "wait", "mark", "heartbeat", "tracking", "scrape")
# A renewal the store or Redis answered "not yours" (lost) or could not answer (error).
RENEW_FAILURES = ("lost", "error")
# Pending runs are counted up to this many at a scrape: an index range, never a full scan.
PENDING_CAP = 100_000
# Claims and publishes take milliseconds; a slow store or broker takes seconds.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LeaseView(Protocol):
    """What the metrics read from a lease at scrape time."""

    token: int | None

    def held(self) -> bool:
        """True while this replica leads."""


def _gauge(registry: CollectorRegistry, name: str, documentation: str) -> Gauge:
    return Gauge(PREFIX + name, documentation, registry=registry)


def _histogram(
    registry: CollectorRegistry, name: str, documentation: str, buckets: Sequence[float]
) -> Histogram:
    return Histogram(PREFIX + name, documentation, buckets=buckets, registry=registry)


def _counter(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    label: str | None = None,
    values: Iterable[str] = (),
) -> Counter:
    """A counter, with one ``label`` when given; each of its ``values`` has a series from
    the start, at 0, so rate() and absent() work at once."""
    counter = Counter(PREFIX + name, documentation, [label] if label else [], registry=registry)
    for value in values:
        counter.labels(value)
    return counter


@contextmanager
def _timed(histogram: Histogram) -> Iterator[None]:
    """Observe the block's duration in ``histogram``, also when it raises."""
    started = monotonic()
    try:
        yield
    finally:
        histogram.observe(monotonic() - started)


class SchedulerMetrics:
    """Every metric one scheduler replica exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.leader = _gauge(registry, "leader", "1 while this replica holds the lease and fires")
        self.term = _gauge(
            registry,
            "fencing_term",
            "Fencing token of the term this replica leads; 0 while it follows",
        )
        self.lateness = _histogram(
            registry,
            "fire_lateness_seconds",
            "Scheduled fires: seconds from the scheduled time to the broker accepting the message",
            BUCKETS_S,
        )
        self.fires = _counter(
            registry,
            "fires",
            "Scheduled fires published, or recorded missed (past the misfire grace) or skipped "
            "(coalesced, overlap, excluded)",
            "outcome",
            FIRE_OUTCOMES,
        )
        self.published = _counter(
            registry,
            "runs_published",
            "Runs the broker accepted, by what made them (schedule, manual, retry, backfill)",
            "trigger",
            [trigger.value for trigger in RunTrigger],
        )
        self.claim_seconds = _histogram(
            registry,
            "claim_duration_seconds",
            "One claim transaction: fencing check, due schedules, runs recorded",
            DURATION_BUCKETS_S,
        )
        self.publish_seconds = _histogram(
            registry,
            "publish_duration_seconds",
            "One batch handed to the broker",
            DURATION_BUCKETS_S,
        )
        self.outbox_pending = _gauge(
            registry,
            "outbox_pending_runs",
            f"Runs recorded but not yet accepted by the broker (leader only; capped at "
            f"{PENDING_CAP})",
        )
        self.renew_failures = _counter(
            registry,
            "lease_renew_failures",
            "Lease renewals that failed: lost (another holder, or expired) or error (unreachable)",
            "reason",
            RENEW_FAILURES,
        )
        self.broker_refusals = _counter(
            registry,
            "broker_refusals",
            "Batches the broker did not accept in full (the rest stay pending)",
        )
        self.store_errors = _counter(
            registry,
            "store_errors",
            "Job store errors met, by operation",
            "operation",
            STORE_OPERATIONS,
        )

    # -- wiring, done once by the entry point

    def watch(self, lease: LeaseView, engine: Engine) -> None:
        """Read leadership, term and the outbox's size from ``lease`` and the store at each
        scrape (and snapshot), so they are never stale."""
        self.leader.set_function(lambda: 1.0 if lease.held() else 0.0)
        self.term.set_function(lambda: float(lease.token or 0) if lease.held() else 0.0)
        self.outbox_pending.set_function(
            lambda: float(self._pending(engine)) if lease.held() else 0.0
        )

    def _pending(self, engine: Engine) -> int:
        capped = (
            select(runs.c.id).where(runs.c.state == RunState.PENDING.value).limit(PENDING_CAP)
        ).subquery()
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())
        except SQLAlchemyError as exc:
            self.store_error("scrape")
            log.warning("metrics: could not count pending runs (%s)", type(exc).__name__)
            return 0

    def serve(self, port: int, addr: str) -> bool:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; False (logged) when the
        port cannot be bound: a replica without metrics still fires."""
        if port == 0:
            return False
        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            log.error(
                "metrics: cannot serve on %s:%s (%s); no metrics from this replica", addr, port, exc
            )
            return False
        log.info("metrics: serving Prometheus metrics on http://%s:%s/metrics", addr, port)
        return True

    # -- instrumentation points, one line each at the caller

    def claiming(self) -> AbstractContextManager[None]:
        """Time a claim."""
        return _timed(self.claim_seconds)

    def claimed(self, claim: Claim) -> None:
        """Count the missed and skipped fires a claim recorded."""
        for outcome in ("missed", "skipped"):
            count = claim.recorded.get(outcome, 0)
            if count:
                self.fires.labels(outcome).inc(count)

    def publishing(self) -> AbstractContextManager[None]:
        """Time one batch handed to the broker."""
        return _timed(self.publish_seconds)

    def published_batch(self, batch: Sequence[Dispatch], sent: Sequence[str], at: datetime) -> None:
        """Count what the broker accepted at ``at`` (and the lateness of scheduled fires), and
        a refusal when it did not take the whole batch."""
        accepted = set(sent)
        # Counted per batch, not per message: a burst publishes thousands at once.
        by_trigger = collections.Counter(item.trigger for item in batch if item.run_id in accepted)
        for trigger, count in by_trigger.items():
            self.published.labels(trigger).inc(count)
        scheduled = by_trigger.get(RunTrigger.SCHEDULE.value, 0)
        if scheduled:
            self.fires.labels("published").inc(scheduled)
            for item in batch:
                if item.trigger == RunTrigger.SCHEDULE.value and item.run_id in accepted:
                    self.lateness.observe(max(0.0, (at - item.scheduled_for).total_seconds()))
        if len(accepted) < len(batch):
            self.broker_refusals.inc()

    def renew_failed(self, reason: str) -> None:
        """A renewal was refused (``lost``) or could not be made (``error``)."""
        self.renew_failures.labels(reason).inc()

    def store_error(self, operation: str) -> None:
        """A store error met during ``operation`` (one of :data:`STORE_OPERATIONS`)."""
        self.store_errors.labels(operation).inc()

    # -- the dashboard's copy

    def snapshot(self, at: datetime) -> dict[str, Any]:
        """Every sample of this registry, as JSON the replica row can hold."""
        samples: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created") or math.isnan(sample.value):
                    continue
                samples[sample_key(sample.name, sample.labels)] = sample.value
        return {"at": at.isoformat(), "samples": samples}


def sample_key(name: str, labels: Mapping[str, str]) -> str:
    """``name{a="x",b="y"}``, labels sorted: the key of one sample in a snapshot."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def private() -> SchedulerMetrics:
    """Metrics on a registry of their own that nothing serves: the default of parts built
    without the entry point's (tests, tools)."""
    return SchedulerMetrics(CollectorRegistry())


@dataclass(frozen=True)
class HistogramView:
    """A histogram read back from a snapshot: cumulative counts per upper bound."""

    count: int
    total: float
    # (upper bound, cumulative count), ``math.inf`` last
    cumulative: tuple[tuple[float, int], ...]

    def quantile_bound(self, q: float) -> float | None:
        """The smallest bucket bound at or under which a ``q`` share of samples fall (what
        ``histogram_quantile`` interpolates within); None with no samples."""
        if self.count == 0:
            return None
        wanted = q * self.count
        return next(bound for bound, seen in self.cumulative if seen >= wanted)

    def per_bucket(self) -> list[tuple[float, int]]:
        """(upper bound, samples in that bucket alone)."""
        out: list[tuple[float, int]] = []
        previous = 0
        for bound, seen in self.cumulative:
            out.append((bound, seen - previous))
            previous = seen
        return out


@dataclass(frozen=True)
class Snapshot:
    """A replica's metrics as written at its last heartbeat."""

    at: datetime
    samples: Mapping[str, float]

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> Snapshot | None:
        """The snapshot in a replica row, or None when there is none (metrics off, an older
        replica)."""
        if not data or "samples" not in data:
            return None
        return cls(datetime.fromisoformat(data["at"]), dict(data["samples"]))

    def value(self, name: str, **labels: str) -> float:
        """One sample (0 when absent); ``name`` without the ``sundial_scheduler_`` prefix."""
        return self.samples.get(sample_key(PREFIX + name, labels), 0.0)

    def histogram(self, name: str) -> HistogramView:
        """A histogram's buckets; ``name`` without the prefix and the ``_bucket`` suffix."""
        head = PREFIX + name + '_bucket{le="'
        cumulative = sorted(
            (float(key[len(head) : -2]), int(value))
            for key, value in self.samples.items()
            if key.startswith(head)
        )
        return HistogramView(
            count=int(self.value(name + "_count")),
            total=self.value(name + "_sum"),
            cumulative=tuple(cumulative),
        )


def replica_snapshot(conn: Connection, replica_id: str) -> Snapshot | None:
    """The metrics ``replica_id`` wrote at its last heartbeat, if any."""
    stored = conn.execute(
        select(replicas.c.metrics).where(replicas.c.replica_id == replica_id)
    ).scalar_one_or_none()
    return Snapshot.parse(stored)
