"""A leader killed inside the fire path's critical window (FAULTS.md scenario 3).

Killed after the broker accepted a batch and before the runs were recorded ``dispatched``,
the leader leaves them pending; the next term relays them. On a Redis broker every publish
leaves a marker in the same atomic step as the message, so the relay recognises them and
records them instead of sending them again: nothing is delivered twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.timing.clock import utcnow
from tests.faults.cluster import TTL_S, Cluster, interval
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SCHEDULES = 100


def test_leader_killed_between_publish_and_record_has_nothing_delivered_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    trigger = tmp_path / "kill-before-mark"
    fired = trigger.with_name(trigger.name + ".fired")
    cluster.add([(f"tick-{i:03d}", interval(1), {"coalesce": False}) for i in range(SCHEDULES)])
    cluster.start_replicas(2, hook=("kill-before-mark", str(trigger)))
    term = cluster.leadership.wait_term(after=0, timeout=10)
    # Steady firing: past the first claim, which also catches up the start-up's backlog.
    first = cluster.wait_fires_under(term.token, SCHEDULES).count
    cluster.wait_fires_under(term.token, first + 2 * SCHEDULES)

    trigger.touch()  # the leader kills itself at its next fire instant, after the publish
    assert term.pid is not None
    victim = cluster.procs.by_pid(term.pid)
    wait_for(lambda: fired.exists() and not victim.alive(), 10, "the leader to kill itself")
    in_flight = [line for line in fired.read_text().splitlines() if line]
    new = cluster.leadership.wait_term(after=term.token, timeout=TTL_S + 10)
    cluster.wait_fires_under(new.token, 2 * SCHEDULES)

    # No crash is excused: the checker reports any run delivered twice as a violation.
    verdict = cluster.settle(utcnow() - timedelta(seconds=1), crashes=[])
    delivered = Counter(d.run_id for d in verdict.deliveries)
    twice = sorted(run_id for run_id, n in delivered.items() if n > 1)
    relayed = sum(
        len(cluster.log_lines(s, "already at the broker")) for s in cluster.procs.schedulers()
    )
    print(
        f"\nSIGKILL between publish and record, {SCHEDULES} schedules at 1 s, TTL {TTL_S:g} s: "
        f"{len(in_flight)} runs published and unrecorded at the kill, "
        f"{sum(delivered[r] for r in in_flight)} deliveries of them, "
        f"{len(twice)} runs delivered more than once; {verdict.summary()}"
    )
    assert in_flight  # a fire instant's batch (two, if the leader ran late)
    assert all(delivered[run_id] == 1 for run_id in in_flight)
    assert twice == []
    assert relayed, "the new leader did not recognise the runs at the broker"
    assert verdict.violations == [], "\n".join(verdict.violations[:20])
