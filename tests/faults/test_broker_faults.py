"""The broker is unreachable while fires come due: the outbox holds them, then lets go."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from scheduler.store.models import RunState
from scheduler.timing.clock import utcnow
from tests.faults.cluster import Cluster, mixed_workload
from tests.faults.history import RunRow

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE_S = 10.0


@pytest.mark.parametrize("cluster", ["redis", "rabbitmq"], indirect=True)
def test_broker_outage_keeps_fires_pending_then_publishes_each_once_in_fire_time_order(
    cluster: Cluster,
) -> None:
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=30))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)

    cut_at = utcnow()
    cluster.broker_proxy.cut()
    threading.Event().wait(OUTAGE_S)
    during = cluster.judge(utcnow())
    restored_at = utcnow()
    cluster.broker_proxy.restore()
    verdict = cluster.settle(restored_at)
    published_s = (utcnow() - restored_at).total_seconds()
    cluster.wait_fires_since(utcnow(), 10)

    settled = cut_at + timedelta(seconds=1)  # a publish in flight at the cut may still land
    held = [r for r in during.runs if r.created_at > settled and _due(r) <= restored_at]
    # Fires of the outage: recorded during it and due by its end (a fire prepared ahead of
    # an instant after the broker returned is not one of them).
    outage = [
        r for r in verdict.runs if settled < r.created_at <= restored_at and _due(r) <= restored_at
    ]
    waits = [
        (r.dispatched_at - r.created_at).total_seconds()
        for r in outage
        if r.dispatched_at is not None
    ]
    refusals = sum(len(cluster.log_lines(s, "broker refused")) for s in cluster.procs.schedulers())
    print(
        f"\nbroker down {OUTAGE_S:.0f}s: {len(held)} fires held pending; all published "
        f"{published_s:.2f}s after it returned (oldest waited {max(waits):.2f}s); "
        f"{refusals} refused publish attempts logged; {verdict.summary()}"
    )
    assert held and all(r.state is RunState.PENDING for r in held), "published to a dead broker"
    assert not [d for d in during.deliveries if d.at > settled], "delivered during the outage"
    assert len(outage) >= len(held) and all(r.state is RunState.DISPATCHED for r in outage)
    # judge() also checks each run was delivered once, first copies in fire-time order.
    assert verdict.violations == [], "\n".join(verdict.violations)


def _due(run: RunRow) -> datetime:
    """When a run was to go out: its instant when prepared ahead, else when it was recorded."""
    return run.due_at or run.created_at
