"""What every scenario gets: the run's services, options, report, and helpers to start
sundial's processes for one case and to wait on them."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, func, select

from bench.consumer import AmqpConsumer, Consumer, QueueConsumer
from bench.procs import BenchError, Child, Processes, processes, sundial_env, wait_for, wait_leader
from bench.profile import LOOP_FRAME, Profiler, summarize
from bench.report import Report
from bench.services import Services
from scheduler.store.db import make_engine
from scheduler.store.models import runs
from scheduler.store.reads import in_window

T = TypeVar("T")
log = logging.getLogger("bench")


@dataclass
class Bench:
    """The run: services, options and the report every case adds to."""

    services: Services
    report: Report
    out_dir: Path
    quick: bool = False
    baseline: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    profile: bool = False
    # S6: a source tree whose `sundial dev` is the baseline of the dev-mode experiment.
    dev_baseline: Path | None = None

    @property
    def redis_url(self) -> str:
        return self.services.redis_url

    @property
    def broker_url(self) -> str:
        return self.services.broker_url

    @property
    def label(self) -> str:
        """Appended to scenario names: which broker the figures are for, when not Redis."""
        return " (RabbitMQ)" if self.services.broker == "rabbitmq" else ""

    def consumer(self, queue: str) -> Consumer:
        """The fast consumer of ``queue`` on this run's broker."""
        if self.services.broker == "rabbitmq":
            return AmqpConsumer(self.broker_url, queue)
        return QueueConsumer(self.redis_url, queue)

    def load_lead_s(self, rows: int, base_s: float) -> float:
        """Seconds ahead of now to put the first fire of ``rows`` bulk-loaded schedules, so
        the load is done first: PostgreSQL loads ~20,000 rows/s here, MariaDB ~2,000."""
        rate = 20_000 if self.services.store == "postgresql" else 2_000
        return base_s + rows / rate

    @contextmanager
    def processes(self, case: str) -> Iterator[Processes]:
        """Children of one case, logged under ``logs/<case>/``, stopped at the end."""
        slug = "".join(c if c.isalnum() else "-" for c in case.lower()).strip("-")
        with processes(self.out_dir / "logs" / slug, self.extra_env) as procs:
            yield procs

    def env(self, database_url: str, **settings: object) -> dict[str, str]:
        """``SUNDIAL_*`` for a process of this run (``--set`` overrides come on top)."""
        return sundial_env(database_url, self.redis_url, self.broker_url, **settings)

    def case(self, name: str, measure: Callable[[], T]) -> T | None:
        """Run one case; a failure is recorded in the report instead of ending the run."""
        log.info("bench: %s …", name)
        started = time.monotonic()
        try:
            result = measure()
        except Exception as exc:  # one broken case must not hide the others' figures
            self.report.errors[name] = f"{type(exc).__name__}: {exc}"
            log.error("bench: %s failed:\n%s", name, traceback.format_exc())
            return None
        log.info("bench: %s done in %.1fs", name, time.monotonic() - started)
        return result

    @contextmanager
    def profiled(self, pid: int, case: str, *, leader: bool = True) -> Iterator[None]:
        """With ``--profile``, py-spy ``pid`` for the block and record its hot spots: the
        leader's loop thread in wall time (waits included), or (``leader=False``, the API)
        every thread's CPU samples."""
        if not self.profile:
            yield
            return
        slug = "".join(c if c.isalnum() else "-" for c in case.lower()).strip("-")
        out = self.out_dir / f"profile-{slug}.txt"
        profiler = Profiler(pid, out, idle=leader)
        try:
            yield
        finally:
            profiler.stop()
        if out.exists():
            frame = LOOP_FRAME if leader else None
            self.record(f"{case} profile", summarize(out, frame=frame))

    def record(self, name: str, data: dict[str, Any]) -> None:
        """Keep a case's detailed figures in the JSON."""
        self.report.cases[name] = data


def utc_in(seconds: float) -> datetime:
    """Now plus ``seconds``, aware UTC, to the millisecond."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(bench: Bench, procs: Processes, database_url: str) -> tuple[Child, str]:
    """``sundial api`` on a free port; waits until ``/readyz`` answers 200."""
    port = free_port()
    child = procs.sundial("api", bench.env(database_url), "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        child.check_alive()
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 30, "the API to be ready", interval=0.1)
    return child, base


@dataclass(frozen=True)
class Serving:
    """``sundial scheduler``, leading, and ``sundial api`` over one case's store."""

    scheduler: Child
    api: Child
    base: str  # the API's URL

    def watch(self) -> dict[str, int]:
        """The processes whose CPU a load case reports: API, scheduler, and the clients (this
        process)."""
        return {"api": self.api.pid, "scheduler": self.scheduler.pid, "clients": os.getpid()}


@contextmanager
def serving(bench: Bench, database: str, case: str) -> Iterator[Serving]:
    """A fresh ``database``, a scheduler and an API over it for ``case``; the block runs once
    the API is ready and the scheduler leads, and both are stopped after it."""
    with bench.services.database(database) as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            sched = procs.sundial("scheduler", bench.env(url))
            api, base = start_api(bench, procs, url)
            wait_leader(engine, [sched], timeout=30)
            yield Serving(sched, api, base)
        finally:
            engine.dispose()


def run_states(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Runs by state (of fires in ``[since, until)`` when given)."""
    query = select(runs.c.state, func.count()).group_by(runs.c.state)
    query = in_window(query, runs.c.scheduled_for, since, until)
    with engine.connect() as conn:
        return {str(state): int(n) for state, n in conn.execute(query)}


def sleep_watching(until: float, children: list[Child]) -> None:
    """Sleep until epoch ``until``, failing early if a child dies."""
    while (left := until - time.time()) > 0:
        for child in children:
            child.check_alive()
        time.sleep(min(0.25, left))


def check_ready_before(ready_at: float, due: datetime, what: str) -> None:
    """A case whose setup ran past its due time would measure the setup: refuse it."""
    if ready_at > due.timestamp():
        raise BenchError(f"{what} was ready {ready_at - due.timestamp():.2f}s after the due time")
