"""The broker is unreachable while fires come due: the outbox holds them, then lets go; and
while a worker consumes: it reconnects, keeps executing and runs every message once."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from jobs.app import create_celery
from scheduler.firing.lost_messages import BrokerInventory
from scheduler.store.models import HEADER_RUN_ID, RunState
from scheduler.timing.clock import utcnow
from tests.faults.cluster import Cluster, mixed_workload
from tests.faults.executions import RECORD_TASK, RealWorker, tally
from tests.faults.history import RunRow
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE_S = 10.0
CONNECTION_LOST = "Connection to broker lost"


# A fire-ahead window longer than the outbox's 1 s broker backoff holds fires for instants
# after the backoff ends: they must still go out behind the fires the outage left pending.
@pytest.mark.parametrize(
    ("cluster", "fire_ahead_ms"),
    [("redis", 0), ("rabbitmq", 0), ("redis", 1500)],
    indirect=["cluster"],
)
def test_broker_outage_keeps_fires_pending_then_publishes_each_once_in_fire_time_order(
    cluster: Cluster, fire_ahead_ms: int
) -> None:
    start = utcnow()
    cluster.procs.env["SUNDIAL_FIRE_AHEAD_MS"] = str(fire_ahead_ms)
    cluster.add(mixed_workload(start, one_offs_for_s=30))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)

    cut_at = utcnow()
    cluster.broker_proxy.cut()
    if cluster.broker_redis is None:
        # RabbitMQ: a batch the broker took whose confirms the cut swallowed stays pending
        # and goes again after it, as a crash between publish and record would have it (at
        # least once, the workers' ledger runs it once; README, "Brokers and stores"). On
        # Redis the publish-once marker closes that window, so there it counts as a fault.
        cluster.crashes.append(cut_at)
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
    # Nothing went out during the outage: every fire of it waits pending, but for the extra
    # fires a coalescing schedule records skipped meanwhile (judge() checks each is explained).
    waiting = [r for r in held if r.state is RunState.PENDING]
    assert waiting and all(r in waiting or _coalesced(r) for r in held), (
        "published to a dead broker"
    )
    assert not [d for d in during.deliveries if d.at > settled], "delivered during the outage"
    # A coalescing schedule whose fires piled up behind a slow claim records the extra ones
    # skipped (judge() checks each is explained); every other fire of the outage went out,
    # each one that waited among them (a held run recorded skipped is not one: counting
    # those too failed a loop run with 72 sent of 73 held, the 73rd coalesced).
    sent = [r for r in outage if r.state is not RunState.SKIPPED]
    assert {r.id for r in waiting} <= {r.id for r in sent}
    assert all(r.state is RunState.DISPATCHED for r in sent)
    assert all(_coalesced(r) for r in outage if r not in sent)
    # judge() also checks each run was delivered once, first copies in fire-time order.
    assert verdict.violations == [], "\n".join(verdict.violations)


def test_a_broker_blip_shorter_than_the_fire_ahead_window_keeps_fire_time_order(
    cluster: Cluster,
) -> None:
    """The broker refuses a publish and is back at once: fires held for instants after the
    1 s backoff go out behind those the refusal left pending, each once, in order."""
    cluster.procs.env["SUNDIAL_FIRE_AHEAD_MS"] = "1500"
    cluster.add(mixed_workload(utcnow(), one_offs_for_s=30))
    (replica,) = cluster.start_replicas(1)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)

    cluster.broker_proxy.cut()
    wait_for(lambda: cluster.log_lines(replica, "broker refused"), 10, "a refused publish", 0.01)
    restored_at = utcnow()
    cluster.broker_proxy.restore()
    # Past the window: the fires held when the broker refused have all come due.
    verdict = cluster.settle(restored_at + timedelta(seconds=3))
    waited = [
        r
        for r in verdict.runs
        if _due(r) <= restored_at and r.dispatched_at is not None and r.dispatched_at > restored_at
    ]
    print(f"\nbroker blip: {len(waited)} fires waited for it; {verdict.summary()}")
    assert waited, "no fire waited for the broker"
    # judge() checks each run was delivered once, first copies in fire-time order.
    assert verdict.violations == [], "\n".join(verdict.violations)


def _coalesced(run: RunRow) -> bool:
    return run.state is RunState.SKIPPED and "coalesced" in (run.reason or "")


def _due(run: RunRow) -> datetime:
    """When a run was to go out: its instant when prepared ahead, else when it was recorded."""
    return run.due_at or run.created_at


# The worker side of a broker cut (celery/celery#10302, jobs/collected_close.py).
CUTS_S = (5.0, 8.0, 12.0)
PUBLISH_EVERY_S = 0.1
TASK_S = 0.2
# Runs still executing when the broker goes: their acks cannot reach it.
RUNNING_AT_CUT = 4
RUNNING_AT_CUT_TASK_S = 2.0
WORKER_VISIBILITY_TIMEOUT_S = 5.0
# Celery's reconnect backoff (2, 4, 6, 8 s: up to 20 s after a 12 s cut) plus a run.
RESUMES_WITHIN_S = 60.0
# The visibility timeout, the 2 s sweep, a backlog of a few hundred 0.2 s runs on 4 threads.
ALL_ENDED_WITHIN_S = 90.0


class _Stream:
    """Publishes ``sundial_test.record`` runs to a worker's queue, straight to the broker
    (not through the proxy): the cut is the worker's alone."""

    def __init__(self, cluster: Cluster, worker: RealWorker) -> None:
        assert cluster.broker_redis is not None
        settings = worker.settings().model_copy(update={"broker_url": cluster.broker_redis.url})
        self._app = create_celery(settings)
        self._worker = worker
        self.sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def send(self, count: int, seconds: float) -> list[str]:
        with self._app.producer_or_acquire() as producer:
            return [self._send(producer, seconds) for _ in range(count)]

    def since(self, at: float) -> list[str]:
        with self._lock:
            return [run for run, sent_at in self.sent.items() if sent_at > at]

    def _send(self, producer: Any, seconds: float) -> str:
        run = str(uuid.uuid4())
        at = time.time()  # before: a cut may swallow the message while send_task returns
        self._app.send_task(
            RECORD_TASK,
            kwargs=self._worker.spec_overrides(seconds)["kwargs"],
            task_id=run,
            queue=self._worker.queue,
            headers={HEADER_RUN_ID: run},
            producer=producer,
        )
        with self._lock:
            self.sent[run] = at
        return run

    def _run(self) -> None:
        with self._app.producer_or_acquire() as producer:
            while not self._stop.wait(PUBLISH_EVERY_S):
                self._send(producer, TASK_S)


@dataclass(frozen=True)
class _Outcome:
    lost: set[str]


class _Settled:
    """Probe: every run the stream sent has ended, or never started and its message is
    neither queued nor unacknowledged at the broker, at two looks in a row (a message
    between the two places shows at the second)."""

    def __init__(self, stream: _Stream, worker: RealWorker, broker: BrokerInventory) -> None:
        self._stream = stream
        self._worker = worker
        self._broker = broker
        self._gone: set[str] | None = None

    def __call__(self) -> _Outcome | None:
        executions = tally(self._worker.executions())
        waiting = [run for run in self._stream.sent if run not in executions.ended]
        held = self._broker.held((run, self._worker.queue) for run in waiting)
        gone = None
        if held is not None and not held.intersection(waiting):
            gone = {run for run in waiting if run not in executions.started}
            if len(gone) < len(waiting):
                gone = None  # a run started and not yet ended: still running
        seen, self._gone = self._gone, gone
        return _Outcome(gone) if gone is not None and gone == seen else None


# Three cuts with their recoveries take ~70 s: in the `long` set, beside the worker SIGKILL.
@pytest.mark.long
def test_worker_keeps_executing_through_broker_cuts_and_runs_each_published_run_once(
    cluster: Cluster,
) -> None:
    assert cluster.broker_redis is not None
    worker = RealWorker(cluster, WORKER_VISIBILITY_TIMEOUT_S)
    stream = _Stream(cluster, worker)
    broker = BrokerInventory(cluster.broker_redis.client())
    resumed_s: list[float] = []
    cuts: list[float] = []
    try:
        proc = worker.start()
        stream.start()
        for cut_s in CUTS_S:
            # Some runs are mid-task when the broker goes; more wait in the worker's buffer.
            slow = set(stream.send(RUNNING_AT_CUT, RUNNING_AT_CUT_TASK_S))

            def running(slow: set[str] = slow) -> bool:
                return slow <= set(tally(worker.executions()).started)

            wait_for(running, 30, "the slow runs to start")
            losses = proc.log().count(CONNECTION_LOST)
            cluster.broker_proxy.cut()
            cuts.append(time.time())

            def noticed(losses: int = losses) -> bool:
                return proc.log().count(CONNECTION_LOST) > losses

            wait_for(noticed, 10, "the worker to notice the cut")
            threading.Event().wait(cut_s)  # the fault's length, not a wait for a condition
            restored = time.time()
            cluster.broker_proxy.restore()

            def resumed(restored: float = restored) -> bool:
                ended = tally(worker.executions()).ended
                return any(run in ended for run in stream.since(restored))

            wait_for(resumed, RESUMES_WITHIN_S, "the worker to execute a run sent after the cut")
            resumed_s.append(round(time.time() - restored, 1))
        stream.stop()
        lost = wait_for(
            _Settled(stream, worker, broker),
            ALL_ENDED_WITHIN_S,
            "every published run to end or be lost by the broker",
            interval=0.5,
        ).lost
        assert proc.poll() is None, "the worker exited"
        log = proc.log()
    finally:
        stream.stop()
        worker.stop()
        broker.close()

    executions = tally(worker.executions())
    dropped = log.count("duplicate dropped")
    print(
        f"\n{len(CUTS_S)} broker cuts of {CUTS_S} s: the worker executed runs sent after "
        f"each within {resumed_s} s of its end; {len(stream.sent)} runs published, "
        f"{sum(executions.ended.values())} executions ended, {dropped} redelivered copies "
        f"dropped by the ledger, {log.count('not acknowledged')} acks lost with a connection, "
        f"{len(lost)} lost by the broker in a cut (sent at "
        f"{sorted(round(stream.sent[r] - cuts[0], 1) for r in lost)} s from the first)"
    )
    assert "Unrecoverable error" not in log
    assert executions.twice() == []
    # A message whose BRPOP answer a cut swallowed is gone from the broker (kombu files it
    # among the unacked only after the answer): the worker has one fetch in flight, so each
    # cut loses one at most, of a run sent before it. With no leader here nothing sends it
    # again; test_lost_messages.py shows a leader does. Every other run ended, once.
    lost_sent = sorted((stream.sent[run] for run in lost), reverse=True)
    assert len(lost) <= len(cuts), lost
    assert all(sent < cut for sent, cut in zip(lost_sent, reversed(cuts), strict=False)), (
        lost_sent,
        cuts,
    )
    assert sorted(executions.ended) == sorted(set(stream.sent) - lost)
    # The runs mid-task at a cut could not ack: the broker delivered them again, and the
    # ledger dropped the copies rather than running them twice.
    assert dropped >= RUNNING_AT_CUT
