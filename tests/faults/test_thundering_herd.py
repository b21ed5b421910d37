"""A thundering herd on two cores: 1,000 one-offs and 200 crons due in the same second."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

from scheduler.timing.clock import utcnow
from tests.faults.cluster import Cluster, Spec, cron, once
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ONE_OFFS = 1000
CRONS = 200
BOUND_S = 10.0


def test_a_thousand_one_offs_and_two_hundred_crons_due_in_one_second_each_fire_once(
    cluster: Cluster,
) -> None:
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    due = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    specs: list[Spec] = [(f"once-{i:04d}", once(due), {}) for i in range(ONE_OFFS)]
    specs += [(f"cron-{i:03d}", cron(f"{due.second} * * * * *"), {}) for i in range(CRONS)]
    cluster.add(specs)

    total = ONE_OFFS + CRONS
    wait_for(
        lambda: len(cluster.consumer.deliveries()) >= total,
        (due - utcnow()).total_seconds() + 30,
        f"{total} deliveries",
        interval=0.1,
    )
    verdict = cluster.settle(due)
    after = sorted((d.at - due).total_seconds() for d in verdict.deliveries)
    recorded = max((r.created_at - due).total_seconds() for r in verdict.runs)
    current = cluster.leadership.current()
    print(
        f"\nherd of {total}: all recorded {recorded:.2f}s and delivered {after[-1]:.2f}s "
        f"after the due second (median {statistics.median(after):.2f}s, "
        f"p99 {after[int(0.99 * (len(after) - 1))]:.2f}s); {verdict.summary()}"
    )
    assert verdict.violations == []
    assert len(verdict.runs) == total and len(verdict.deliveries) == total
    assert {r.schedule_id for r in verdict.runs} == {sid for sid, _, _ in specs}
    assert current is not None and current.token == term.token, "the lease was lost"
    assert after[-1] <= BOUND_S, f"the herd took {after[-1]:.2f}s"
