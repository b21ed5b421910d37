"""S6 ``sundial dev``. Part one: 5,000 ``sundial.echo`` messages queued on the embedded
broker, then the worker ``sundial dev`` runs is started and drains them (baseline: the same
worker on kombu's file-system transport, the embedded broker before issue 12). Part two, a
user's first experiment: ``sundial dev`` with 300 interval schedules at 1 s for 20 s, and
how many runs are done versus still waiting (baseline: ``sundial dev`` of another source
tree, given with ``--dev-baseline``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import select

from bench.fs_worker import filesystem_config
from bench.procs import BenchError, Child, tree_cpu_seconds, wait_for
from bench.report import Metric
from bench.scenarios.common import Bench, free_port
from bench.services import REPO
from bench.stats import percentile
from scheduler.firing.broker import celery_config, embedded_broker
from scheduler.settings import Settings
from scheduler.store.db import make_engine
from scheduler.store.models import runs
from sundial.dev import child_env, worker_args

NAME = "S6"
ECHO = "sundial.echo"
# The worker `sundial dev` ran before issue 12 (the baseline of part one).
BEFORE_WORKER_ARGS = ("--pool=threads", "--concurrency=4")
PUBLISH_BATCH = 500
SUCCEEDED = "] succeeded in "
# Log lines start with a local time to the millisecond, in either logging format.
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")
WAITING = ("pending", "dispatched", "started", "retrying")


class EventCounter:
    """Task events of a broker, counted in a thread: what run tracking would see."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self.succeeded: list[float] = []
        self.failed = 0
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="bench-s6-events", daemon=True)

    def __enter__(self) -> EventCounter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=5)

    def _run(self) -> None:
        def failed(_event: Mapping[str, Any]) -> None:
            self.failed += 1

        with self._app.connection_for_read() as conn:
            self._receiver = self._app.events.Receiver(
                conn,
                handlers={
                    "task-succeeded": lambda _e: self.succeeded.append(time.monotonic()),
                    "task-failed": failed,
                },
            )
            self._receiver.capture(limit=None, timeout=None, wakeup=False)


def _publish(app: Celery, n: int) -> float:
    """Queue ``n`` echo messages in producer batches; the seconds it took."""
    started = time.monotonic()
    with app.producer_or_acquire() as producer, producer.batch(PUBLISH_BATCH) as batch:
        for i in range(n):
            run_id = str(uuid.uuid4())
            headers = {"sundial_run_id": run_id}
            app.send_task(ECHO, args=[i], task_id=run_id, producer=producer, headers=headers)
            if (i + 1) % PUBLISH_BATCH == 0:
                batch.flush()
        batch.flush()
    return time.monotonic() - started


def drain(bench: Bench, system: str, n: int) -> dict[str, Any]:
    """Queue ``n`` messages, then start the dev worker and time it through the backlog."""
    case = f"{NAME} drain {n} {system}"
    with bench.processes(case) as procs:
        data_dir = procs.log_dir / ".sundial"
        settings = Settings(_env_file=None, data_dir=data_dir)
        broker = embedded_broker(settings) if system == "sundial" else None
        if broker is not None:
            url, _started = broker.ensure_running()
            env = child_env(settings, url, {})  # what `sundial dev` hands its worker
            conf = celery_config(settings.model_copy(update={"broker_url": url}))
            args = ["-m", "sundial", "worker", *worker_args()]
        else:
            env = {"SUNDIAL_DATA_DIR": str(data_dir)}
            conf = celery_config(settings.model_copy(update={"broker_url": "filesystem://"}))
            conf.update(filesystem_config(data_dir))
            args = ["-m", "bench.fs_worker", str(data_dir), *BEFORE_WORKER_ARGS]
        app = Celery(f"bench-s6-{system}", set_as_current=False)
        app.conf.update(conf)
        try:
            with EventCounter(app) as events:
                publish_s = _publish(app, n)
                worker = procs.spawn("worker", args, env)
                timeout = 60 + n / 20
                wait_for(lambda: _done(worker) >= 1, timeout, "the first task", interval=0.1)
                cpu0 = tree_cpu_seconds(worker.pid)
                wait_for(lambda: _done(worker) >= n, timeout, f"{n} tasks", interval=0.1)
                cpu1 = tree_cpu_seconds(worker.pid)
                # The events of the last tasks are a moment behind their log lines.
                with contextlib.suppress(BenchError):
                    wait_for(lambda: len(events.succeeded) >= n, 5, "the last events")
        finally:
            app.close()
            procs.stop_all()
            if broker is not None:
                broker.stop()
    finished = _finish_times(worker)
    drain_s = (finished[-1] - finished[0]).total_seconds()
    result = {
        "n": n,
        "publish_s": publish_s,
        "succeeded": len(finished),
        "drain_s": drain_s,
        "tasks_per_s": (n - 1) / drain_s if drain_s > 0 else None,
        "cpu_ms": None if cpu0 is None or cpu1 is None else 1000 * (cpu1 - cpu0) / max(1, n - 1),
        "events_succeeded": len(events.succeeded),
        "events_failed": events.failed,
    }
    bench.record(case, result)
    return result


def _done(worker: Child) -> int:
    """Tasks the worker logged as succeeded (its log is what a user watches)."""
    worker.check_alive()
    log = worker.log_path.read_text(errors="replace")
    if "] raised unexpected" in log:
        raise BenchError(f"an echo task failed; see {worker.log_path}")
    return log.count(SUCCEEDED)


def _finish_times(worker: Child) -> list[datetime]:
    """When each task succeeded, from the worker log's millisecond timestamps."""
    times = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        stamp = STAMP.search(line)
        if SUCCEEDED in line and stamp:
            times.append(datetime.strptime(stamp.group(0), "%Y-%m-%d %H:%M:%S,%f"))  # noqa: DTZ007
    return sorted(times)


def keeps_up(bench: Bench, system: str, source: Path, k: int, window_s: float) -> dict[str, Any]:
    """``sundial dev`` from ``source`` with ``k`` interval schedules at 1 s for ``window_s``."""
    case = f"{NAME} dev {k} {system}"
    with bench.processes(case) as procs:
        port = free_port()
        # Its own directory: ./sundial.db and ./.sundial, as a user's first run.
        env = {"PYTHONPATH": os.pathsep.join([str(source), str(REPO)])}
        dev = procs.spawn("dev", ["-m", "sundial", "dev", "--port", str(port)], env)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:

            def ready() -> bool:
                dev.check_alive()
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready, 90, "sundial dev to be ready", interval=0.2)
            for i in range(k):
                try:
                    response = client.put(
                        f"/v1/schedules/s6-{i}",
                        json={
                            "task": ECHO,
                            "kwargs": {"i": i},
                            "trigger": {"type": "interval", "seconds": 1},
                        },
                    )
                except httpx.TransportError:
                    _check_dev(dev)
                    raise
                response.raise_for_status()
        start = datetime.now(UTC)
        engine = make_engine(f"sqlite:///{procs.log_dir / 'sundial.db'}")
        try:
            snapshots = {}
            for at in (window_s / 2, window_s):
                _sleep_watching(start + timedelta(seconds=at), dev)
                snapshots[at] = _states(engine)
            lateness = _dispatch_lateness(engine, start)
        finally:
            engine.dispose()
        dev.popen.send_signal(signal.SIGINT)
        exit_code = dev.popen.wait(timeout=60)
        procs.stop_all()
    half, end = snapshots[window_s / 2], snapshots[window_s]
    result = {
        "k": k,
        "window_s": window_s,
        "states_half": half,
        "states_end": end,
        "waiting_half": sum(half.get(s, 0) for s in WAITING),
        "waiting_end": sum(end.get(s, 0) for s in WAITING),
        "succeeded_end": end.get("succeeded", 0),
        "succeeded_per_s": (end.get("succeeded", 0) - half.get("succeeded", 0)) / (window_s / 2),
        "dispatch_p50_s": percentile(lateness, 50),
        "dispatch_p99_s": percentile(lateness, 99),
        "ctrl_c_exit_code": exit_code,
    }
    bench.record(case, result)
    return result


def _check_dev(dev: Child) -> None:
    """Fail with why `sundial dev` stopped: it stops when any of its processes dies."""
    wait_for(lambda: not dev.alive(), 15, "sundial dev to exit")
    log = dev.log_path.read_text(errors="replace").splitlines()
    fatal = [line for line in log if "CRITICAL" in line or "exited with" in line]
    raise BenchError(f"sundial dev stopped: {' / '.join(fatal) or log[-1:]}")


def _sleep_watching(until: datetime, dev: Child) -> None:
    while (left := (until - datetime.now(UTC)).total_seconds()) > 0:
        if not dev.alive():
            _check_dev(dev)
        time.sleep(min(0.25, left))


def _states(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.state)).scalars().all()
    counts: dict[str, int] = {}
    for state in rows:
        counts[str(state)] = counts.get(str(state), 0) + 1
    return counts


def _dispatch_lateness(engine: Any, since: datetime) -> list[float]:
    query = select(runs.c.scheduled_for, runs.c.dispatched_at).where(
        runs.c.scheduled_for >= since, runs.c.dispatched_at.is_not(None)
    )
    with engine.connect() as conn:
        return [(d - s).total_seconds() for s, d in conn.execute(query)]


def _fig(key: str, ours: dict[str, Any] | None, base: dict[str, Any] | None) -> tuple[Any, Any]:
    return (ours[key] if ours else None, base[key] if base else None)


def run(bench: Bench) -> None:
    """Part one at 5,000 messages, part two at 300 schedules for 20 s (quick: 300 / 30, 4 s)."""
    n = 300 if bench.quick else 5_000
    ours = bench.case(f"{NAME} drain {n} sundial", lambda: drain(bench, "sundial", n))
    base = None
    if bench.baseline:
        base = bench.case(f"{NAME} drain {n} baseline", lambda: drain(bench, "baseline", n))
    scenario = f"S6 dev drain {n:,}"
    bench.report.add(
        Metric(scenario, "tasks succeeded", "", *_fig("succeeded", ours, base), "higher", n),
        Metric(
            scenario,
            "worker tasks/s",
            "",
            *_fig("tasks_per_s", ours, base),
            better="higher",
            target=None if bench.quick else 1_000,
        ),
        Metric(scenario, "worker CPU", "ms/task", *_fig("cpu_ms", ours, base), "lower"),
        Metric(scenario, f"publish {n:,}", "s", *_fig("publish_s", ours, base), "lower"),
        Metric(scenario, "task events seen", "", *_fig("events_succeeded", ours, base), "higher"),
    )

    k, window_s = (30, 4.0) if bench.quick else (300, 20.0)
    mine = bench.case(
        f"{NAME} dev {k} sundial", lambda: keeps_up(bench, "sundial", REPO, k, window_s)
    )
    theirs = None
    if bench.dev_baseline is not None:
        tree = bench.dev_baseline
        theirs = bench.case(
            f"{NAME} dev {k} baseline", lambda: keeps_up(bench, "baseline", tree, k, window_s)
        )
    scenario = f"S6 dev {k} x 1 s, {window_s:g} s"
    rows = [
        ("runs succeeded", "", "succeeded_end", "higher", None),
        ("runs waiting at half time", "", "waiting_half", "lower", None),
        ("runs waiting at the end", "", "waiting_end", "lower", None),
        ("succeeded/s (2nd half)", "", "succeeded_per_s", "higher", None),
        ("dispatch lateness p99", "s", "dispatch_p99_s", "lower", None),
        ("Ctrl-C exit code", "", "ctrl_c_exit_code", "lower", 0),
    ]
    for metric, unit, key, better, target in rows:
        bench.report.add(
            Metric(scenario, metric, unit, *_fig(key, mine, theirs), better, target)  # type: ignore[arg-type]
        )
