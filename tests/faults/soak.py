"""The chaos soak (FAULTS.md scenario 24): random faults for N minutes, then the whole history.

    .venv/bin/python -m tests.faults.soak --minutes 30

Three ``sundial scheduler`` replicas and a real ``sundial`` Celery worker run ~500 mixed
schedules (intervals, crons, one-offs; coalescing and not). Every 20-60 s one fault, drawn
at random, hits them:

* ``leader-sigkill`` — the leader is SIGKILLed and a replacement replica started;
* ``leader-sigstop`` — the leader is frozen for 2 x TTL, then resumed;
* ``lease-redis-restart`` — the lease Redis is killed and started again, empty;
* ``postgres-cut`` — every replica connection to PostgreSQL is reset and refused, 5-15 s;
* ``broker-cut`` — the same for the broker, 5-15 s;
* ``worker-sigkill`` — the worker is SIGKILLed mid-task and started again (its tasks
  acknowledge late, so their messages are delivered again).

Everything it cuts or kills is its own: private ``redis-server``\\ s, its own TCP proxies in
front of PostgreSQL and the broker, a database of its own. When the time is up it stops
injecting, waits for the history to settle and checks it with :func:`history.judge`
(every fire recorded once and delivered once, no write under a stale fencing token,
skipped and missed fires explained, fire-time order) and the worker's execution record
(every run sent to it ran to its end exactly once). It prints the figures and exits 1 on
any violation. Not part of the test suite: it takes as long as it is told to.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from scheduler.firing.lost_messages import REASON as LOST_REASON
from scheduler.store import migrate
from scheduler.store.models import RunState
from scheduler.timing.clock import monotonic, utcnow
from tests.conftest import create_server_database, drop_server_database
from tests.faults.cluster import TTL_S, Cluster, Spec, build_cluster, cron, interval, once
from tests.faults.executions import ExecutionTally, RealWorker, tally
from tests.faults.history import NOT_RUN, PUBLISHED, BrokerConsumer, Verdict
from tests.services import wait_for

REPLICAS = 3
VISIBILITY_TIMEOUT_S = 10.0
TASK_SECONDS = 0.2
SETTLE_S = 180.0
INTERVALS_S = (2, 3, 5, 7, 10, 15, 20)
CRONS = ("*/5 * * * * *", "*/10 * * * * *", "*/15 * * * * *", "*/30 * * * * *", "0 * * * * *")


def workload(now: datetime, minutes: float, rng: random.Random, worker: RealWorker) -> list[Spec]:
    """~400 schedules for the broker consumer and ~100 for the real worker."""
    span_s = minutes * 60
    specs: list[Spec] = []
    specs += [
        (f"iv-{i}", interval(rng.choice(INTERVALS_S)), {"coalesce": False}) for i in range(60)
    ]
    specs += [(f"iv-coalesced-{i}", interval(rng.choice((3, 5, 10))), {}) for i in range(20)]
    specs += [(f"cron-{i}", cron(rng.choice(CRONS)), {"coalesce": False}) for i in range(60)]
    specs += [
        (f"once-{i}", once(now + timedelta(seconds=rng.uniform(5, span_s))), {}) for i in range(260)
    ]
    to_worker = worker.spec_overrides(TASK_SECONDS)
    specs += [
        (f"w-iv-{i}", interval(rng.choice((5, 10, 15))), {"coalesce": False} | to_worker)
        for i in range(40)
    ]
    specs += [
        (f"w-cron-{i}", cron(rng.choice(CRONS[:3])), {"coalesce": False} | to_worker)
        for i in range(20)
    ]
    specs += [
        (f"w-once-{i}", once(now + timedelta(seconds=rng.uniform(5, span_s))), to_worker)
        for i in range(40)
    ]
    return specs


class Chaos:
    """Draws and injects the faults, and keeps three replicas and a worker running."""

    def __init__(self, cluster: Cluster, worker: RealWorker, rng: random.Random) -> None:
        self.cluster = cluster
        self.worker = worker
        self.rng = rng
        self.injected: Counter[str] = Counter()
        self.events: list[str] = []
        self.killed: set[int] = set()
        self.kinds: dict[str, Callable[[], None]] = {
            "leader-sigkill": self.leader_sigkill,
            "leader-sigstop": self.leader_sigstop,
            "lease-redis-restart": self.lease_redis_restart,
            "postgres-cut": self.postgres_cut,
            "broker-cut": self.broker_cut,
            "worker-sigkill": self.worker_sigkill,
        }

    def inject(self) -> None:
        """One random fault, then wait until a leader leads again."""
        kind = self.rng.choice(sorted(self.kinds))
        self.note(f"{kind}")
        self.kinds[kind]()
        self.injected[kind] += 1
        self.cluster.leadership.wait_term(after=0, timeout=60, what="a leader after " + kind)

    def note(self, text: str) -> None:
        line = f"{utcnow().isoformat(timespec='milliseconds')} {text}"
        self.events.append(line)
        print(line, flush=True)

    def _pause(self, seconds: float) -> None:
        threading.Event().wait(seconds)

    def leader_sigkill(self) -> None:
        term = self.cluster.leadership.wait_term(after=0, timeout=60)
        assert term.pid is not None
        self.killed.add(term.pid)
        self.cluster.crash(self.cluster.procs.by_pid(term.pid))
        self.cluster.wait_ready(self.cluster.procs.start_scheduler())
        self.cluster.leadership.wait_term(after=term.token, timeout=60)

    def leader_sigstop(self) -> None:
        term = self.cluster.leadership.wait_term(after=0, timeout=60)
        assert term.pid is not None
        victim = self.cluster.procs.by_pid(term.pid)
        self.cluster.crash(victim, signal.SIGSTOP)
        self._pause(2 * TTL_S)
        victim.signal(signal.SIGCONT)

    def lease_redis_restart(self) -> None:
        self.cluster.lease_redis.kill()
        self.cluster.lease_redis.start()

    def postgres_cut(self) -> None:
        self.cluster.pg_proxy.cut()
        self._pause(self.rng.uniform(5, 15))
        self.cluster.pg_proxy.restore()

    def broker_cut(self) -> None:
        self.cluster.broker_proxy.cut()
        self._pause(self.rng.uniform(5, 15))
        self.cluster.broker_proxy.restore()

    def worker_sigkill(self) -> None:
        self.worker.kill()
        self.worker.start()

    def dead_processes(self) -> list[str]:
        """Replicas, and the worker, that exited without being killed by the soak."""
        return [
            f"{s.name} (pid {s.pid}) exited {s.proc.poll()}"
            for s in self.cluster.procs.schedulers()
            if not s.alive() and s.pid not in self.killed
        ] + self.dead_worker()

    def dead_worker(self) -> list[str]:
        """The worker, when it exited on its own (a SIGKILL by the soak restarts it)."""
        proc = self.worker.proc
        if proc is None or proc.poll() is None:
            return []
        return [f"worker {proc.hostname} (pid {proc.pid}) exited {proc.returncode}"]


def check_worker(
    executions: ExecutionTally, verdict: Verdict, until: datetime
) -> tuple[list[str], list[str]]:
    """(incomplete, violations) of the runs sent to the real worker."""
    sent = {r.id: r for r in verdict.runs if r.schedule_id.startswith("w-")}
    incomplete, violations = [], []
    violations += [
        f"run {run_id} ran to its end {executions.ended[run_id]} times on "
        f"{executions.workers[run_id]}"
        for run_id in executions.twice()
    ]
    violations += [
        f"executed {run_id} has no run record"
        for run_id in executions.started
        if run_id not in sent
    ]
    for r in sent.values():
        if r.scheduled_for > until:
            continue
        if r.state in NOT_RUN and executions.started[r.id]:
            violations.append(f"{r.state.value} run {r.id} was executed")
        elif (r.state in PUBLISHED or r.state is RunState.PENDING) and not executions.ended[r.id]:
            incomplete.append(f"run {r.id} ({r.schedule_id} @ {r.scheduled_for}) not executed yet")
    return incomplete, violations


def soak(minutes: float, seed: int, folder: Path, database_url: str) -> dict[str, Any]:
    """Run the soak; return its figures (``violations`` empty when the history holds)."""
    rng = random.Random(seed)
    with build_cluster(folder, database_url) as cluster:
        worker = RealWorker(cluster, VISIBILITY_TIMEOUT_S)
        chaos = Chaos(cluster, worker, rng)
        try:
            worker.start()
            start = utcnow()
            specs = workload(start, minutes, rng, worker)
            cluster.add(specs, start)
            # The leader reads the worker's ledger to tell a lost message from a run that
            # executed with its events lost.
            cluster.procs.env["SUNDIAL_LEDGER_URL"] = worker.start_ledger()
            cluster.start_replicas(REPLICAS)
            chaos.note(f"{len(specs)} schedules, {REPLICAS} replicas and a worker running")
            ends = monotonic() + minutes * 60
            while (left := ends - monotonic()) > 0:
                threading.Event().wait(min(left, rng.uniform(20, 60)))
                if monotonic() < ends:
                    chaos.inject()
            until = utcnow() - timedelta(seconds=1)
            chaos.note("faults stopped; waiting for the history to settle")
            verdict = _settle(cluster, worker, until)
            chaos.note("settled")
            return _figures(cluster, chaos, worker, verdict, start, until)
        finally:
            worker.stop()
            # Kept beside the replicas' logs, for a look at a run the worker never executed.
            for n, text in enumerate(worker.logs, start=1):
                (folder / f"worker-{n}.log").write_text(text)


def _judge(cluster: Cluster, worker: RealWorker, until: datetime) -> Verdict:
    # The worker's record is read before the runs: a run is recorded before it is published,
    # so every execution read has its run in the load that follows. (Read the other way
    # round, runs fired in between showed as "executed ... has no run record".)
    executions = tally(worker.executions())
    verdict = cluster.judge(until)
    incomplete, violations = check_worker(executions, verdict, until)
    verdict.incomplete += incomplete
    verdict.violations += violations
    return verdict


def _settle(cluster: Cluster, worker: RealWorker, until: datetime) -> Verdict:
    def settled() -> Verdict | None:
        verdict = _judge(cluster, worker, until)
        return None if verdict.incomplete else verdict

    try:
        return wait_for(settled, SETTLE_S, "the history to settle", interval=1.0)
    except AssertionError:
        return _judge(cluster, worker, until)


def _figures(
    cluster: Cluster,
    chaos: Chaos,
    worker: RealWorker,
    verdict: Verdict,
    start: datetime,
    until: datetime,
) -> dict[str, Any]:
    runs = [r for r in verdict.runs if r.scheduled_for <= until]
    delivered = Counter(d.run_id for d in verdict.deliveries)
    executions = tally(worker.executions())
    tokens = {r.fencing_token for r in runs if r.fencing_token is not None}
    violations = verdict.violations + chaos.dead_processes()
    undelivered = [
        r
        for r in runs
        if r.state in PUBLISHED and not r.schedule_id.startswith("w-") and not delivered[r.id]
    ]
    by_minute = Counter((r.dispatched_at or r.created_at).strftime("%H:%M") for r in undelivered)
    broker = cluster.broker_redis
    assert broker is not None, "the soak runs on a private Redis broker"
    return {
        "minutes": round((until - start).total_seconds() / 60, 1),
        "schedules": len({r.schedule_id for r in verdict.runs}),
        "faults": dict(sorted(chaos.injected.items())),
        "faults_total": sum(chaos.injected.values()),
        "terms": len(cluster.leadership.terms()),
        "terms_that_fired": len(tokens),
        "fires": len(runs),
        "fires_by_state": dict(Counter(r.state.value for r in runs)),
        "deliveries_to_consumer": len(verdict.deliveries),
        "runs_delivered_twice": sum(1 for n in delivered.values() if n > 1),
        "redelivered_across_a_crash": len(verdict.redelivered),
        "worker_executions_ended": sum(executions.ended.values()),
        "worker_runs_interrupted_and_rerun": len(executions.interrupted()),
        "duplicate_executions": len(executions.twice()),
        # Runs whose message the broker lost on its way to the worker, found and sent again.
        "lost_by_the_broker_and_sent_again": sorted(
            f"{r.schedule_id} @ {r.scheduled_for}"
            for r in runs
            if r.reason is not None and r.reason.startswith(LOST_REASON)
        ),
        "unexplained_misses": len(verdict.incomplete),
        "violations": violations,
        "undelivered_by_minute_published": dict(sorted(by_minute.items())),
        "undelivered_sample": [
            f"{r.schedule_id} @ {r.scheduled_for} token {r.fencing_token} "
            f"recorded {r.created_at} dispatched {r.dispatched_at}"
            for r in undelivered[:20]
        ],
        "consumer_alive": isinstance(cluster.consumer, BrokerConsumer) and cluster.consumer.alive(),
        "last_delivery": str(max((d.at for d in verdict.deliveries), default=None)),
        "left_in_the_queue": int(broker.client().llen(cluster.queue)),
        # The checker's queue above; the worker's own, and what it took but never acked.
        "left_in_the_worker_queue": int(broker.client().llen(worker.queue)),
        "unacked_at_the_broker": int(broker.client().hlen("unacked")),
        "broker_keys": sorted(str(k) for k in broker.client().keys("*"))[:30],
        "incomplete": verdict.incomplete[:50],
        "events": chaos.events,
        "folder": str(cluster.folder),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the soak, print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    folder = Path(tempfile.mkdtemp(prefix="sundial-soak-"))
    print(f"soak: {args.minutes:g} min, seed {seed}, logs in {folder}", flush=True)
    database_url = create_server_database("postgresql")
    clean = False
    try:
        migrate.upgrade(database_url)
        figures = soak(args.minutes, seed, folder, database_url) | {"seed": seed}
        clean = not (figures["violations"] or figures["unexplained_misses"])
    finally:
        if clean:
            drop_server_database(database_url)
        else:  # kept for a look at what went wrong
            print(f"soak: database kept: {make_url(database_url).database}", flush=True)
    text = json.dumps(figures, indent=2, default=str)
    if args.report is not None:
        args.report.write_text(text)
    print(text)
    return 1 if figures["violations"] or figures["unexplained_misses"] else 0


if __name__ == "__main__":
    sys.exit(main())
