"""S2 sustained: K interval schedules at 1 s, phases spread evenly over the second, for a
window of D seconds. Achieved fires/s against K/s, lateness, and misses (fires of the
window never published, or recorded ``missed``) — sundial and the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from bench import seed
from bench.baseline import seed_intervals
from bench.consumer import QueueConsumer, Receipt
from bench.procs import Child, CpuWatch, wait_leader
from bench.report import Better, Metric
from bench.scenarios.common import Bench, check_ready_before, run_states, sleep_watching, utc_in
from bench.scenarios.s1_burst import start_baseline
from bench.services import unique_name
from bench.stats import deliveries, percentile
from scheduler.store.db import make_engine
from scheduler.store.models import RunState, runs

NAME = "S2"
PERIOD_S = 1.0


@dataclass(frozen=True)
class Sustained:
    """What one system did with K schedules over the window."""

    k: int
    duration_s: float
    expected: int
    published: int  # distinct fires of the window popped by the end of the drain
    fires_per_s: float  # messages popped during the window, per second
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    misses: int  # expected fires never popped
    recorded_missed: int | None  # runs the store recorded as missed (sundial only)
    duplicates: int
    cpu_pct: float | None  # the scheduler process's CPU over the window (100 = one core)
    pg_cpu_pct: float | None  # all PostgreSQL processes together, likewise
    redis_cpu_pct: float | None
    runs: dict[str, int] | None = None  # the window's runs by state in the store (sundial)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize_window(
    receipts: list[Receipt],
    expected: seed.Fires,
    k: int,
    start: datetime,
    duration_s: float,
    recorded_missed: int | None = None,
    cpu: dict[str, float | None] | None = None,
) -> Sustained:
    """Figures of a sustained window from what the consumer popped."""
    got = deliveries(receipts, expected.keys)
    late = got.lateness()
    t0 = start.timestamp()
    in_window = sum(1 for r in receipts if t0 <= r.received < t0 + duration_s)
    return Sustained(
        k=k,
        duration_s=duration_s,
        expected=len(expected),
        published=len(got.first),
        fires_per_s=in_window / duration_s,
        p50_s=percentile(late, 50),
        p99_s=percentile(late, 99),
        max_s=percentile(late, 100),
        misses=len(expected) - len(got.first),
        recorded_missed=recorded_missed,
        duplicates=got.duplicates,
        cpu_pct=(cpu or {}).get("scheduler"),
        pg_cpu_pct=(cpu or {}).get("postgres"),
        redis_cpu_pct=(cpu or {}).get("redis-server"),
    )


def durations(bench: Bench) -> tuple[float, float]:
    """(window, drain) seconds."""
    return (5.0, 1.0) if bench.quick else (60.0, 3.0)


def recorded_missed(engine: Engine, start: datetime, end: datetime) -> int:
    """Runs of the window the store recorded as missed."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    runs.c.state == RunState.MISSED.value,
                    runs.c.scheduled_for >= start,
                    runs.c.scheduled_for < end,
                )
            ).scalar_one()
        )


def measure_sundial(
    bench: Bench,
    engine: Engine,
    sched: Child,
    queue: str,
    prefix: str,
    k: int,
    duration: float | None = None,
) -> Sustained:
    """Load K interval schedules into a running leader's store and watch one window."""
    window, drain = durations(bench)
    duration = window if duration is None else duration
    with QueueConsumer(bench.redis_url, queue) as consumer:
        start = utc_in(1.5 + k / 20_000)
        seed.intervals(engine, prefix, k, start, PERIOD_S, queue, grace_s=60.0)
        seed.notify(bench.redis_url)
        check_ready_before(time.time(), start, "the bulk load")
        sleep_watching(start.timestamp(), [sched])
        watch = CpuWatch(sched.pid)
        with bench.profiled(sched.pid, f"{NAME} {k} sundial"):
            watch.start()
            sleep_watching(start.timestamp() + duration, [sched])
            cpu = watch.stop()
        sleep_watching(start.timestamp() + duration + drain, [sched])
    end = start + timedelta(seconds=duration)
    expected = seed.interval_fires(prefix, k, start, PERIOD_S, start, end)
    result = summarize_window(
        consumer.receipts(), expected, k, start, duration, recorded_missed(engine, start, end), cpu
    )
    return replace(result, runs=run_states(engine, start, end))


def sustained_sundial(bench: Bench, k: int) -> Sustained:
    """S2 on a fresh store with one leader."""
    queue = unique_name("bench_s2")
    case = f"{NAME} {k} sundial"
    with bench.services.database("s2") as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            sched = procs.sundial("scheduler", bench.env(url))
            wait_leader(engine, [sched], timeout=30)
            result = measure_sundial(bench, engine, sched, queue, "s2-", k)
            bench.record(case, result.as_json())
            return result
        finally:
            engine.dispose()
            bench.services.drop_queue(queue)


def sustained_baseline(bench: Bench, k: int) -> Sustained:
    """The same K interval jobs through the tutorial pattern."""
    queue = unique_name("bench_s2b")
    case = f"{NAME} {k} baseline"
    duration, drain = durations(bench)
    with (
        bench.services.database("s2b", sundial_schema=False) as url,
        bench.processes(case) as procs,
    ):
        try:
            start = utc_in(2.5 + k / 4_000)
            seed_intervals(url, "s2-", k, start, PERIOD_S, queue)
            with QueueConsumer(bench.redis_url, queue) as consumer:
                start_baseline(bench, procs, url)
                check_ready_before(time.time(), start, "the baseline scheduler")
                child = procs.children[-1]
                sleep_watching(start.timestamp(), [child])
                watch = CpuWatch(child.pid)
                watch.start()
                sleep_watching(start.timestamp() + duration, [child])
                cpu = watch.stop()
                sleep_watching(start.timestamp() + duration + drain, [child])
            end = start + timedelta(seconds=duration)
            expected = seed.interval_fires("s2-", k, start, PERIOD_S, start, end)
            result = summarize_window(consumer.receipts(), expected, k, start, duration, None, cpu)
            bench.record(case, result.as_json())
            return result
        finally:
            bench.services.drop_queue(queue)


def metrics(
    scenario: str, ours: Sustained | None, base: Sustained | None, k: int, headline: bool
) -> list[Metric]:
    """The table rows of one K."""

    def fig(attr: str) -> tuple[Any, Any]:
        return (getattr(ours, attr) if ours else None, getattr(base, attr) if base else None)

    p99_target = 0.25 if headline else None
    rows: list[tuple[str, str, str, Better, float | None]] = [
        ("fires/s", f"target {k:,}", "fires_per_s", "higher", 0.99 * k),
        ("lateness p50", "s", "p50_s", "lower", None),
        ("lateness p99", "s", "p99_s", "lower", p99_target),
        ("misses", "", "misses", "lower", 0),
        ("scheduler CPU", "% of a core", "cpu_pct", "lower", None),
        ("PostgreSQL CPU", "% of a core", "pg_cpu_pct", "lower", None),
    ]
    return [Metric(scenario, m, u, *fig(a), better=b, target=t) for m, u, a, b, t in rows]


def run(bench: Bench) -> None:
    """S2 at K = 1,000, 5,000 and 10,000 for 60 s (``--quick``: K = 200 for 5 s)."""
    for k in [200] if bench.quick else [1_000, 5_000, 10_000]:
        ours = bench.case(f"{NAME} {k} sundial", lambda k=k: sustained_sundial(bench, k))  # type: ignore[misc]
        base = (
            bench.case(f"{NAME} {k} baseline", lambda k=k: sustained_baseline(bench, k))  # type: ignore[misc]
            if bench.baseline
            else None
        )
        bench.report.add(*metrics(f"S2 sustained {k:,}/s", ours, base, k, headline=k == 5_000))
