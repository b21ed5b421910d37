"""A real sundial Celery worker inside a fault cluster, and the record of what it executed.

The worker consumes a queue of its own through the cluster's broker proxy (so a broker cut
reaches it too) and keeps its execution ledger in a Redis of its own, which no fault
touches. Schedules sent to it run ``sundial_test.record``, which acknowledges late and
appends the start and end of every execution to a file: a record with no unique
constraint, so a run executed twice shows twice.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scheduler.settings import Settings
from scheduler.timing.clock import utcnow
from tests.faults.cluster import START_TIMEOUT_S, Cluster
from tests.faults.processes import RedisServer
from tests.services import unique_name
from tests.worker import WorkerProcess, running_worker

RECORD_TASK = "sundial_test.record"


@dataclass(frozen=True)
class Execution:
    """One line of the worker's record."""

    run_id: str
    worker: str
    event: str  # "start" or "end"
    at: float


class RealWorker:
    """One worker process at a time: start, SIGKILL, start again; its record outlives it."""

    def __init__(
        self,
        cluster: Cluster,
        visibility_timeout_s: float,
        concurrency: int = 4,
    ) -> None:
        self.queue = unique_name("worker")
        self.record = cluster.folder / f"{self.queue}.jsonl"
        self.record.touch()
        self._ledger_redis = RedisServer(cluster.folder, f"{self.queue}-ledger")
        self._cluster = cluster
        self._visibility_s = visibility_timeout_s
        self._concurrency = concurrency
        self._stack = contextlib.ExitStack()
        self.proc: WorkerProcess | None = None
        self.hostnames: list[str] = []
        self.logs: list[str] = []

    def start_ledger(self) -> str:
        """Start its execution ledger's Redis if need be; its URL, for the replicas to read."""
        if self._ledger_redis.proc is None:
            self._ledger_redis.start()
        return self._ledger_redis.url

    def settings(self) -> Settings:
        """The worker's configuration: the cluster's proxied broker, its own ledger Redis."""
        return Settings(
            _env_file=None,
            database_url=self._cluster.proxied_db_url,
            redis_url=self._ledger_redis.url,
            broker_url=f"redis://127.0.0.1:{self._cluster.broker_proxy.port}/0",
            # Sweeps for expired unacked messages every 2 s come with sundial's worker
            # (jobs.app.REDIS_RESTORE_OPTIONS).
            broker_transport_options={"visibility_timeout": self._visibility_s},
        )

    def spec_overrides(self, seconds: float) -> dict[str, Any]:
        """Schedule fields that send a schedule's fires to this worker."""
        return {
            "task": RECORD_TASK,
            "kwargs": {"ledger": str(self.record), "seconds": seconds},
            "queue": self.queue,
        }

    def start(self) -> WorkerProcess:
        """Start a worker (the ledger Redis too, the first time) and wait until it consumes."""
        self.start_ledger()
        self.proc = self._stack.enter_context(
            running_worker(
                self.settings(),
                self.queue,
                argv=["--include", "tests.jobs.probe_tasks"],
                concurrency=self._concurrency,
                start_timeout_s=START_TIMEOUT_S,
            )
        )
        self.hostnames.append(self.proc.hostname)
        return self.proc

    def kill(self) -> datetime:
        """SIGKILL the worker mid-whatever; its unacknowledged messages stay at the broker."""
        assert self.proc is not None
        at = utcnow()
        self.proc.kill()
        self.proc.wait()
        self._close()
        return at

    def stop(self) -> None:
        """Stop the worker (SIGTERM, warm) and its ledger Redis."""
        self._close()
        self._ledger_redis.kill()

    def _close(self) -> None:
        self._stack.close()
        if self.proc is not None:
            self.logs.append(self.proc.log())
        self.proc = None
        self._stack = contextlib.ExitStack()

    def executions(self) -> list[Execution]:
        """Every line recorded so far, in file order."""
        out = []
        for line in self.record.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                out.append(Execution(entry["run"], entry["worker"], entry["event"], entry["at"]))
        return out


@dataclass(frozen=True)
class ExecutionTally:
    """Per run id: how many executions started and how many ran to their end."""

    started: Counter[str]
    ended: Counter[str]
    workers: dict[str, list[str]]

    def twice(self) -> list[str]:
        """Runs whose body ran to its end more than once: duplicate executions."""
        return sorted(run_id for run_id, n in self.ended.items() if n > 1)

    def interrupted(self) -> list[str]:
        """Runs with an execution that never ended (its worker was killed) and another
        that did: delivered again and run to its end."""
        return sorted(r for r, n in self.started.items() if n > self.ended[r] >= 1)


def tally(executions: list[Execution]) -> ExecutionTally:
    """Count the record's starts and ends per run."""
    started: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    workers: dict[str, list[str]] = defaultdict(list)
    for e in executions:
        if e.event == "start":
            started[e.run_id] += 1
            workers[e.run_id].append(e.worker)
        else:
            ended[e.run_id] += 1
    return ExecutionTally(started, ended, dict(workers))
