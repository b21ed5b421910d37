"""The scheduler's metrics on a registry of the test's own, fed by the real cycle, outbox
and lease keeper over the store (SQLite and PostgreSQL), stepped directly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import OperationalError

from scheduler.firing.bulk import insert_runs, new_run
from scheduler.firing.claim import Dispatch
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.runloop import FireCycle, LeaseKeeper
from scheduler.metrics import SchedulerMetrics, Snapshot
from scheduler.store.jobstore import SqlJobStore
from scheduler.store.models import RunTrigger, replicas
from tests.clocks import T0, FakeClock
from tests.factories import add_schedule, runs_of

EVERY_10S = {"type": "interval", "seconds": 10}


class Broker:
    """Accepts every message, or refuses all while ``down``."""

    def __init__(self) -> None:
        self.down = False

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        return [] if self.down else [d.run_id for d in dispatches]

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        pass

    def discard(self, run_ids: Sequence[str]) -> None:
        pass

    def recorded(self, run_ids: Sequence[str]) -> None:
        pass

    def revoke(self, run_ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


class Leader:
    """One replica's fire path with metrics on the test's registry."""

    def __init__(self, engine: Engine) -> None:
        self.clock = FakeClock()
        self.broker = Broker()
        self.registry = CollectorRegistry()
        self.metrics = SchedulerMetrics(self.registry)
        self.lease = SqlLease(engine, Replica("r1", "h", 1), ttl_s=600, clock=self.clock)
        outbox = Outbox(
            engine, self.broker, self.lease, self.clock, batch_size=10, metrics=self.metrics
        )
        self.cycle = FireCycle(
            engine,
            self.lease,
            outbox,
            SqlJobStore(engine),
            poll_s=0.25,
            batch_size=10,
            clock=self.clock,
            metrics=self.metrics,
        )
        self.metrics.watch(self.lease, engine)
        self.engine = engine

    def fire_one(self) -> None:
        """Lead, and publish the first fire of schedule ``s`` (every 10 s from T0) 0.4 s late."""
        assert self.lease.acquire()
        add_schedule(self.engine, "s", EVERY_10S, T0)
        self.clock.now = T0 + timedelta(seconds=10.4)
        self.cycle()

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value("sundial_scheduler_" + name, labels)
        assert found is not None, f"no sample {name} {labels}"
        return found


@pytest.fixture
def node(engine: Engine) -> Leader:
    return Leader(engine)


def test_a_follower_reports_no_leadership_and_no_term(node: Leader) -> None:
    assert node.value("leader") == 0
    assert node.value("fencing_term") == 0
    assert node.value("outbox_pending_runs") == 0


def test_published_fires_count_with_their_lateness_and_the_term_is_exported(node: Leader) -> None:
    node.fire_one()

    assert node.value("leader") == 1
    assert node.value("fencing_term") == node.lease.token and node.lease.token
    assert node.value("fires_total", outcome="published") == 1
    assert node.value("runs_published_total", trigger="schedule") == 1
    assert node.value("runs_published_total", trigger="manual") == 0
    assert node.value("fire_lateness_seconds_count") == 1
    assert node.value("fire_lateness_seconds_sum") == pytest.approx(0.4)
    assert node.value("fire_lateness_seconds_bucket", le="0.25") == 0
    assert node.value("fire_lateness_seconds_bucket", le="0.5") == 1
    assert node.value("claim_duration_seconds_count") >= 1
    assert node.value("publish_duration_seconds_count") == 1
    assert node.value("broker_refusals_total") == 0


def test_missed_and_skipped_fires_are_counted_by_outcome(engine: Engine, node: Leader) -> None:
    assert node.lease.acquire()
    add_schedule(engine, "strict", EVERY_10S, T0, coalesce=False, misfire_grace_seconds=1)
    add_schedule(engine, "merged", EVERY_10S, T0, coalesce=True)
    node.clock.now = T0 + timedelta(seconds=30.5)  # fires at 10, 20 and 30 are due

    node.cycle()

    states = [r["state"] for r in runs_of(engine, "strict") + runs_of(engine, "merged")]
    assert node.value("fires_total", outcome="missed") == states.count("missed") == 2
    assert node.value("fires_total", outcome="skipped") == states.count("skipped") == 2
    assert node.value("fires_total", outcome="published") == 2
    assert node.value("fire_lateness_seconds_count") == 2


def test_a_refusing_broker_is_counted_and_the_runs_wait_in_the_outbox(
    engine: Engine, node: Leader
) -> None:
    assert node.lease.acquire()
    add_schedule(engine, "s", EVERY_10S, T0, coalesce=False)
    node.broker.down = True
    node.clock.now = T0 + timedelta(seconds=20)

    node.cycle()

    assert node.value("broker_refusals_total") >= 1
    assert node.value("fires_total", outcome="published") == 0
    assert node.value("outbox_pending_runs") == 2

    node.broker.down = False
    node.clock.now = T0 + timedelta(seconds=22)
    node.cycle()

    assert node.value("outbox_pending_runs") == 0
    assert node.value("fires_total", outcome="published") == 2
    # Relayed late: the fires of 10 s and 20 s waited 12 s and 2 s for the broker.
    assert node.value("fire_lateness_seconds_bucket", le="1.0") == 0
    assert node.value("fire_lateness_seconds_bucket", le="10.0") == 1
    assert node.value("fire_lateness_seconds_bucket", le="30.0") == 2


def test_a_manual_run_counts_as_published_but_not_as_a_late_fire(
    engine: Engine, node: Leader
) -> None:
    assert node.lease.acquire()
    add_schedule(engine, "s", {"type": "date", "run_at": (T0 + timedelta(days=1)).isoformat()}, T0)
    with engine.begin() as conn:
        insert_runs(
            conn,
            [
                new_run(
                    run_id="manual-1",
                    schedule_id="s",
                    scheduled_for=T0 - timedelta(hours=1),
                    task="sundial.echo",
                    trigger=RunTrigger.MANUAL,
                    now=T0,
                    schedule_version=1,
                )
            ],
        )

    node.cycle()

    assert node.value("runs_published_total", trigger="manual") == 1
    assert node.value("fires_total", outcome="published") == 0
    assert node.value("fire_lateness_seconds_count") == 0


def test_a_store_error_in_the_cycle_is_counted(
    node: Leader, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert node.lease.acquire()

    def broken(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(SqlJobStore, "claim_due", broken)
    node.cycle()

    assert node.value("store_errors_total", operation="cycle") == 1
    assert node.value("store_errors_total", operation="mark") == 0


class FlakyLease:
    """A lease whose renewals are refused, or raise."""

    def __init__(self) -> None:
        self.token: int | None = 7
        self.raises = False

    def acquire(self) -> bool:
        return False

    def renew(self) -> bool:
        if self.raises:
            raise ConnectionError("redis unreachable")
        return False

    def release(self) -> None:
        pass

    def held(self) -> bool:
        return True


def test_failed_renewals_are_counted_by_reason(engine: Engine) -> None:
    metrics = SchedulerMetrics(CollectorRegistry())
    lease = FlakyLease()
    keeper = LeaseKeeper(lease, engine, Replica("r1", "h", 1), 3, lambda: None, metrics=metrics)

    keeper.step()
    lease.raises = True
    keeper.step()
    keeper.step()

    get = metrics.registry.get_sample_value
    assert get("sundial_scheduler_lease_renew_failures_total", {"reason": "lost"}) == 1
    assert get("sundial_scheduler_lease_renew_failures_total", {"reason": "error"}) == 2


def test_the_heartbeat_writes_a_snapshot_the_dashboard_reads_back(
    engine: Engine, node: Leader
) -> None:
    node.fire_one()
    replica = Replica("r1", "h", 1)
    with engine.begin() as conn:
        conn.execute(
            insert(replicas).values(
                replica_id="r1", hostname="h", pid=1, started_at=T0, last_seen_at=T0
            )
        )
    keeper = LeaseKeeper(
        node.lease, engine, replica, 600, lambda: None, clock=node.clock, metrics=node.metrics
    )

    keeper.step()

    with engine.connect() as conn:
        stored = conn.execute(select(replicas.c.metrics)).scalar_one()
    snapshot = Snapshot.parse(stored)
    assert snapshot is not None and snapshot.at == node.clock.now
    assert snapshot.value("leader") == 1
    assert snapshot.value("fencing_term") == node.lease.token
    assert snapshot.value("fires_total", outcome="published") == 1
    lateness = snapshot.histogram("fire_lateness_seconds")
    assert lateness.count == 1 and lateness.total == pytest.approx(0.4)
    assert lateness.quantile_bound(0.99) == 0.5
    assert dict(lateness.per_bucket())[0.5] == 1
    assert sum(n for _, n in lateness.per_bucket()) == 1


def test_no_snapshot_reads_as_none() -> None:
    assert Snapshot.parse(None) is None
    assert Snapshot.parse({}) is None
