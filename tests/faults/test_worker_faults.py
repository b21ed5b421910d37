"""A worker is SIGKILLed mid-task (FAULTS.md scenario 12): with ``acks_late`` the messages
stay at the broker, are delivered again to the restarted worker and each run ends once.

The worker's execution ledger holds a killed execution's claim until it lapses (30 s), so
the redelivery runs the task again only once nobody can still be running it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler.store.models import RunState, runs
from scheduler.timing.clock import utcnow
from tests.faults.cluster import Cluster, once
from tests.faults.executions import RealWorker, tally
from tests.faults.history import RunRow, load_runs
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.long]

RUNS = 4
TASK_S = 5.0
VISIBILITY_TIMEOUT_S = 3.0
# The ledger's claim lapse (30 s), the visibility timeout, kombu's 10 s restore cycle.
REDELIVERED_WITHIN_S = 60.0


def test_worker_sigkilled_mid_task_with_acks_late_redelivers_and_each_run_ends_once(
    cluster: Cluster,
) -> None:
    worker = RealWorker(cluster, VISIBILITY_TIMEOUT_S, concurrency=RUNS)
    try:
        first = worker.start()
        start = utcnow()
        at = start + timedelta(seconds=2)
        cluster.add(
            [(f"job-{i}", once(at), worker.spec_overrides(TASK_S)) for i in range(RUNS)], start
        )
        cluster.start_replicas(2)

        def in_state(state: RunState) -> list[RunRow] | None:
            found = [r for r in load_runs(cluster.engine) if r.state is state]
            return found if len(found) == RUNS else None

        # Recorded started (the worker's events reached the leader), so mid-task for sure.
        wait_for(lambda: in_state(RunState.STARTED), 30, f"{RUNS} runs to start")
        killed_at = worker.kill()
        second = worker.start()

        def ended() -> bool:
            return sum(tally(worker.executions()).ended.values()) >= RUNS

        wait_for(ended, REDELIVERED_WITHIN_S, "the redelivered runs to end", interval=0.2)

        wait_for(lambda: in_state(RunState.SUCCEEDED), 15, "every run to be recorded succeeded")
        executions = tally(worker.executions())
        with cluster.engine.connect() as conn:
            rows = conn.execute(
                select(runs.c.id, runs.c.worker, runs.c.started_at, runs.c.finished_at)
            ).all()
    finally:
        worker.stop()

    redelivery_s = [
        round(e.at - killed_at.timestamp(), 1)
        for e in worker.executions()
        if e.event == "start" and e.worker == second.hostname
    ]
    print(
        f"\nworker SIGKILLed with {RUNS} tasks running: each started again "
        f"{redelivery_s} s after the kill, on the restarted worker; "
        f"ends per run {dict(executions.ended)}"
    )
    assert sorted(executions.interrupted()) == sorted(r.id for r in rows)
    assert executions.twice() == []
    for row in rows:
        assert executions.ended[row.id] == 1
        assert executions.workers[row.id] == [first.hostname, second.hostname]
        # The run shows the redelivery: started before the kill, ended by another worker.
        assert row.worker == second.hostname
        assert row.started_at < killed_at < row.finished_at
