"""A message the Redis broker loses between queue and worker (kombu's ``BRPOP`` answer cut
off with its connection: the message is neither queued nor among the unacknowledged) is
found by the leader and published again; its run executes once, and the history says why.

The loss itself cannot be timed from outside, so the scenario leaves the broker in the state
it leaves: the messages of some dispatched runs are taken off their queue before the worker
starts. The others stay queued, run, and are not sent again.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis

from scheduler.store.models import RunState
from scheduler.timing.clock import utcnow
from tests.faults.cluster import Cluster, once
from tests.faults.executions import RealWorker, tally
from tests.faults.history import RunRow, load_runs
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RUNS = 6
LOSE = 3
AFTER_S = 2
# Overtaken, dispatched AFTER_S ago, missing at two sweeps (0.5 s apart), relayed, run.
REPUBLISHED_WITHIN_S = 30.0


def _take_off_queue(client: redis.Redis, queue: str, run_ids: set[str]) -> int:
    """Remove these runs' messages from the queue, as a fetch cut mid-answer does."""
    taken = 0
    for item in client.lrange(queue, 0, -1):
        if json.loads(item)["properties"]["correlation_id"] in run_ids:
            taken += int(client.lrem(queue, 1, item))  # type: ignore[arg-type]
    return taken


def test_runs_whose_message_the_broker_lost_are_published_again_and_run_once(
    cluster: Cluster,
) -> None:
    assert cluster.broker_redis is not None
    broker = cluster.broker_redis.client()
    worker = RealWorker(cluster, visibility_timeout_s=30)
    cluster.procs.env["SUNDIAL_REDELIVER_LOST_AFTER_SECONDS"] = str(AFTER_S)
    # The leader reads the worker's ledger to tell a lost message from a run that executed.
    cluster.procs.env["SUNDIAL_LEDGER_URL"] = worker.start_ledger()
    try:
        start = utcnow()
        cluster.add(
            [
                (f"job-{i}", once(start + timedelta(seconds=2)), worker.spec_overrides(0.1))
                for i in range(RUNS)
            ],
            start,
        )
        cluster.start_replicas(2)

        def all_dispatched() -> list[RunRow] | None:
            found = [r for r in load_runs(cluster.engine) if r.state is RunState.DISPATCHED]
            return found if len(found) == RUNS else None

        dispatched = wait_for(all_dispatched, 30, f"{RUNS} runs dispatched")
        lost = {r.id for r in sorted(dispatched, key=lambda r: r.id)[:LOSE]}
        assert _take_off_queue(broker, worker.queue, lost) == LOSE
        # The worker runs what is left; once it has run some of the queue (its ledger then
        # shows it keeps one), the lost ones are taken for lost and sent again.
        worker.start()

        def succeeded() -> list[RunRow] | None:
            found = [r for r in load_runs(cluster.engine) if r.state is RunState.SUCCEEDED]
            return found if len(found) == RUNS else None

        finished = wait_for(succeeded, REPUBLISHED_WITHIN_S, f"all {RUNS} runs to succeed")
        executions = tally(worker.executions())
    finally:
        worker.stop()
        broker.close()

    assert {r.id: executions.ended[r.id] for r in finished} == {r.id: 1 for r in finished}
    for run in finished:
        if run.id in lost:
            assert run.reason is not None and "neither queued nor delivered" in run.reason
        else:
            assert run.reason is None
    leader_logs = "".join(s.log() for s in cluster.procs.schedulers())
    assert "put back for publishing" in leader_logs
