"""S7 ingestion: how fast delayed jobs get in — single creates from 16 clients, batch
creates, and 100,000 delayed jobs due within a minute created through the batch endpoint
and then fired — beside Celery's own ``apply_async(countdown=…)`` from one process."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery

from bench.consumer import EPOCH, QueueConsumer, epoch_us
from bench.http import Http
from bench.report import Metric
from bench.scenarios.common import Bench, serving
from bench.scenarios.s1_burst import Burst, summarize_burst
from bench.scenarios.s4_api import CONCURRENCY, Load, hammer
from bench.services import unique_name
from bench.stats import percentile

NAME = "S7"
BATCH = 1000
BATCH_CLIENTS = 4
TASK = "bench.noop"
# Delayed jobs of the firing case are due spread evenly over this many seconds.
WINDOW_S = 60.0
# The baseline publishes for at most this long.
BASELINE_S = 60.0


@dataclass(frozen=True)
class Fired:
    """The firing case: created through the batch endpoint, then popped off the broker."""

    create: Load
    burst: Burst

    def as_json(self) -> dict[str, Any]:
        return {"create": self.create.as_json(), "fire": self.burst.as_json()}


@dataclass(frozen=True)
class Ingest:
    """What sundial did in S7."""

    single: Load
    batch: Load
    fired: Fired | None


def delay_body(queue: str, i: int, seconds: float) -> dict[str, Any]:
    """A delayed job as a client sends it."""
    return {
        "task": TASK,
        "kwargs": {"n": i},
        "trigger": {"type": "delay", "seconds": seconds},
        "queue": queue,
        "misfire_grace_seconds": 3600,
    }


def ingest(bench: Bench, n_single: int, n_batches: int, n_fired: int) -> Ingest:
    """Start API and leader; single creates, batch creates, then the firing case."""
    queue, fire_queue = unique_name("bench_s7"), unique_name("bench_s7f")
    case = f"{NAME} sundial"
    try:
        with serving(bench, "s7", case) as sundial:
            base, watch = sundial.base, sundial.watch()

            def single(c: Http, i: int) -> tuple[int, bytes]:
                return c.request("POST", "/v1/schedules", delay_body(queue, i, 3600))

            def batch(c: Http, i: int) -> tuple[int, bytes]:
                entries = [delay_body(queue, i * BATCH + j, 3600) for j in range(BATCH)]
                return c.request("POST", "/v1/schedules:batch", {"schedules": entries})

            hammer(base, 50, single, {201}, {})  # warm up connections and caches
            with bench.profiled(sundial.api.pid, f"{NAME} single creates", leader=False):
                one = hammer(base, n_single, single, {201}, watch)
            with bench.profiled(sundial.api.pid, f"{NAME} batch creates", leader=False):
                many = hammer(base, n_batches, batch, {201}, watch, clients=BATCH_CLIENTS)
            fired = fire_window(bench, base, fire_queue, n_fired, watch) if n_fired else None
            sundial.scheduler.check_alive()
            bench.record(
                case,
                {
                    "single": one.as_json(),
                    "batch": many.as_json(),
                    "fired": fired.as_json() if fired else None,
                },
            )
            return Ingest(one, many, fired)
    finally:
        bench.services.drop_queue(queue)
        bench.services.drop_queue(fire_queue)


def fire_window(bench: Bench, base: str, queue: str, n: int, watch: dict[str, int]) -> Fired:
    """``n`` delayed jobs, the i-th due ``WINDOW_S * i / n`` seconds after its request,
    created in batches from BATCH_CLIENTS clients while the leader fires the first ones."""
    expected: set[tuple[str, int]] = set()
    lock = threading.Lock()

    def batch(c: Http, k: int) -> tuple[int, bytes]:
        entries = [
            delay_body(queue, i, WINDOW_S * i / n) for i in range(k * BATCH, (k + 1) * BATCH)
        ]
        status, raw = c.request("POST", "/v1/schedules:batch", {"schedules": entries})
        if status == 201:
            items = json.loads(raw)["items"]
            keys = {(it["id"], epoch_us(datetime.fromisoformat(it["next_run_at"]))) for it in items}
            with lock:
                expected.update(keys)
        return status, raw

    with QueueConsumer(bench.redis_url, queue) as consumer:
        create = hammer(base, n // BATCH, batch, {201}, watch, clients=BATCH_CLIENTS)
        # The last job is due at most WINDOW_S after the last request; what has not
        # arrived 60 s after that counts as dropped.
        consumer.wait_count(n, timeout=WINDOW_S + 60)
        consumer.wait_quiet(0.3, timeout=3)
        receipts = consumer.receipts()
    first_due = min((due for _, due in expected), default=epoch_us(datetime.now(UTC)))
    return Fired(
        create, summarize_burst(receipts, expected, EPOCH + timedelta(microseconds=first_due))
    )


def celery_countdown(bench: Bench, n: int) -> Load:
    """The baseline: Celery's own ``apply_async(countdown=…)`` from this one process, to
    the same Redis, the same delays and body as the firing case (no worker: Celery holds
    a countdown in the worker, so a message's arrival at the broker is its ingestion).
    It stops after BASELINE_S seconds if the ``n`` are not out by then: the rate is
    what it published over the time it took."""
    queue = unique_name("bench_s7c")
    app = Celery("bench_s7", broker=bench.redis_url, set_as_current=False)

    @app.task(name=TASK)  # type: ignore[untyped-decorator]
    def noop(**_kwargs: Any) -> None:
        """Never runs here: only published."""

    try:
        with app.connection_for_write() as conn:
            producer = app.amqp.Producer(conn)  # one connection, as a web process keeps
            noop.apply_async(kwargs={"n": -1}, countdown=1, queue=queue, producer=producer)
            took: list[float] = []
            started = time.perf_counter()
            for i in range(n):
                if i and time.perf_counter() - started > BASELINE_S:
                    n = i
                    break
                t0 = time.perf_counter()
                noop.apply_async(
                    kwargs={"n": i}, countdown=WINDOW_S * i / n, queue=queue, producer=producer
                )
                took.append(time.perf_counter() - t0)
            wall = time.perf_counter() - started
        load = Load(n, 0, n / wall, percentile(took, 50), percentile(took, 99), {})
        bench.record(f"{NAME} celery apply_async", load.as_json())
        return load
    finally:
        bench.services.drop_queue(queue)


def run(bench: Bench) -> None:
    """S7: 5,000 single creates, 50 batches of 1,000, 100,000 delayed jobs fired
    (``--quick``: 300, 3, 2,000 over the same minute)."""
    n_single, n_batches, n_fired = (300, 3, 2_000) if bench.quick else (5_000, 50, 100_000)
    ours = bench.case(f"{NAME} sundial", lambda: ingest(bench, n_single, n_batches, n_fired))
    base = (
        bench.case(f"{NAME} celery apply_async", lambda: celery_countdown(bench, n_fired))
        if bench.baseline
        else None
    )
    scenario = f"S7 ingestion {n_fired:,}"
    base_rate = base.per_s if base else None
    single = ours.single if ours else None
    batch = ours.batch if ours else None
    fired = ours.fired if ours else None

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000

    burst = fired.burst if fired else None

    def api_cpu_us(load: Load | None, per_request: int) -> float | None:
        """The API process's CPU per schedule: less at the mercy of a shared machine than
        the rates (and, with PostgreSQL's share, what bounds them on two cores)."""
        pct = load.cpu_pct.get("api") if load else None
        if load is None or pct is None or load.per_s <= 0:
            return None
        return pct / 100 / (load.per_s * per_request) * 1e6

    bench.report.add(
        Metric(scenario, f"single create /s ({CONCURRENCY} clients)", "",
               single.per_s if single else None, base_rate, "higher", 1_000),
        Metric(scenario, "single create p99", "ms", ms(single.p99_s if single else None),
               None, "lower"),
        Metric(scenario, "single create errors", "", single.errors if single else None,
               None, "lower", 0),
        Metric(scenario, "single create: API CPU per create", "µs", api_cpu_us(single, 1),
               None, "lower"),
        Metric(scenario, f"batch schedules/s ({BATCH_CLIENTS} x {BATCH:,})", "",
               batch.per_s * BATCH if batch else None, base_rate, "higher", 20_000),
        Metric(scenario, "batch request p99", "ms", ms(batch.p99_s if batch else None),
               None, "lower"),
        Metric(scenario, "batch errors", "", batch.errors if batch else None, None, "lower", 0),
        Metric(scenario, "batch: API CPU per schedule", "µs", api_cpu_us(batch, BATCH),
               None, "lower"),
        Metric(scenario, "due in 1 min: created/s", "",
               fired.create.per_s * BATCH if fired else None, base_rate, "higher"),
        Metric(scenario, "due in 1 min: published", "", burst.published if burst else None,
               None, "higher", n_fired),
        Metric(scenario, "due in 1 min: lateness p50", "s", burst.p50_s if burst else None,
               None, "lower"),
        Metric(scenario, "due in 1 min: lateness p99", "s", burst.p99_s if burst else None,
               None, "lower"),
        Metric(scenario, "due in 1 min: lateness max", "s", burst.max_s if burst else None,
               None, "lower"),
        Metric(scenario, "due in 1 min: duplicates", "", burst.duplicates if burst else None,
               None, "lower", 0),
        Metric(scenario, "due in 1 min: drops", "", burst.drops if burst else None,
               None, "lower", 0),
    )  # fmt: skip
