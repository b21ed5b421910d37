"""S1 burst: N one-offs due at the same instant. How long until the last is published,
fires per second, lateness, duplicates and drops — sundial and the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench import seed
from bench.baseline import READY, seed_one_offs
from bench.consumer import QueueConsumer, Receipt
from bench.procs import CpuWatch, Processes, sleep_until, wait_for, wait_leader
from bench.report import Metric
from bench.scenarios.common import Bench, check_ready_before, run_states, utc_in
from bench.services import unique_name
from bench.stats import deliveries, percentile, rate
from scheduler.store.db import make_engine

NAME = "S1"


@dataclass(frozen=True)
class Burst:
    """What one system did with one burst."""

    n: int
    published: int
    duplicates: int
    drops: int
    last_s: float | None  # due → last distinct fire popped
    fires_per_s: float | None
    p50_s: float | None
    p99_s: float | None
    max_s: float | None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize_burst(
    receipts: list[Receipt], expected: set[tuple[str, int]], due: datetime
) -> Burst:
    """Figures of a burst from what the consumer popped."""
    got = deliveries(receipts, expected)
    late = got.lateness()
    last = max((r.received for r in got.first), default=None)
    last_s = None if last is None else last - due.timestamp()
    return Burst(
        n=len(expected),
        published=len(got.first),
        duplicates=got.duplicates,
        drops=len(expected) - len(got.first),
        last_s=last_s,
        fires_per_s=None if last_s is None else rate(len(got.first), last_s),
        p50_s=percentile(late, 50),
        p99_s=percentile(late, 99),
        max_s=percentile(late, 100),
    )


def _timeout_s(n: int) -> float:
    """How long a burst may take before the rest counts as dropped: 300 fires/s at worst
    (the baseline manages about 420 here, so its 100,000 finish inside this)."""
    return 20 + n / 300


def burst_sundial(bench: Bench, n: int) -> Burst:
    """Start a leader, bulk-load N one-offs due shortly, notify it, and pop them all."""
    queue = unique_name("bench_s1")
    case = f"{NAME} {n} sundial"
    with bench.services.database("s1") as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            sched = procs.sundial("scheduler", bench.env(url))
            wait_leader(engine, [sched], timeout=30)
            with (
                QueueConsumer(bench.redis_url, queue) as consumer,
                bench.profiled(sched.pid, case),
            ):
                due = utc_in(1.0 + n / 20_000)
                expected = seed.one_offs(engine, "s1-", n, due, queue, grace_s=60.0)
                seed.notify(bench.redis_url)
                check_ready_before(time.time(), due, "the bulk load")
                watch = CpuWatch(sched.pid)
                sleep_until(due.timestamp())
                watch.start()
                consumer.wait_count(n, timeout=due.timestamp() - time.time() + _timeout_s(n))
                cpu = watch.stop()
                consumer.wait_quiet(0.3, timeout=3)  # late duplicates, if any
                sched.check_alive()
            burst = summarize_burst(consumer.receipts(), expected.keys, due)
            bench.record(case, {**burst.as_json(), "runs": run_states(engine), "cpu_pct": cpu})
            return burst
        finally:
            engine.dispose()
            bench.services.drop_queue(queue)


def start_baseline(bench: Bench, procs: Processes, url: str) -> None:
    """The tutorial scheduler process, waited on until it printed that it started."""
    child = procs.spawn(
        "baseline",
        ["-m", "bench.baseline", "--database-url", url, "--broker-url", bench.redis_url],
        {},
    )

    def ready() -> bool:
        child.check_alive()
        return READY in child.log_path.read_text(errors="replace")

    wait_for(ready, 30, "the baseline scheduler to start", interval=0.05)


def burst_baseline(bench: Bench, n: int) -> Burst:
    """The same burst through APScheduler + stock SQLAlchemyJobStore + send_task."""
    queue = unique_name("bench_s1b")
    case = f"{NAME} {n} baseline"
    with (
        bench.services.database("s1b", sundial_schema=False) as url,
        bench.processes(case) as procs,
    ):
        try:
            due = utc_in(2.5 + n / 10_000)
            seed_one_offs(url, "s1-", n, due, queue)
            with QueueConsumer(bench.redis_url, queue) as consumer:
                start_baseline(bench, procs, url)
                check_ready_before(time.time(), due, "the baseline scheduler")
                consumer.wait_count(n, timeout=due.timestamp() - time.time() + _timeout_s(n))
                consumer.wait_quiet(0.3, timeout=3)
            expected = seed.one_off_fires("s1-", n, due)
            burst = summarize_burst(consumer.receipts(), expected.keys, due)
            bench.record(case, burst.as_json())
            return burst
        finally:
            bench.services.drop_queue(queue)


def run(bench: Bench) -> None:
    """S1 at 10,000 and 100,000 (``--quick``: 500)."""
    for n in [500] if bench.quick else [10_000, 100_000]:
        ours = bench.case(f"{NAME} {n} sundial", lambda n=n: burst_sundial(bench, n))  # type: ignore[misc]
        base = (
            bench.case(f"{NAME} {n} baseline", lambda n=n: burst_baseline(bench, n))  # type: ignore[misc]
            if bench.baseline
            else None
        )
        scenario = f"S1 burst {n:,}"

        def fig(attr: str, ours: Burst | None = ours, base: Burst | None = base) -> tuple[Any, Any]:
            return (getattr(ours, attr) if ours else None, getattr(base, attr) if base else None)

        headline = n == 10_000
        bench.report.add(
            Metric(scenario, "published", "", *fig("published"), better="higher", target=n),
            Metric(
                scenario,
                "time to last publish",
                "s",
                *fig("last_s"),
                better="lower",
                target=15.0 if n == 100_000 else None,
            ),
            Metric(
                scenario,
                "fires/s",
                "",
                *fig("fires_per_s"),
                better="higher",
                target=10_000 if headline else None,
                target_ratio=10 if headline else None,
            ),
            Metric(scenario, "lateness p50", "s", *fig("p50_s"), better="lower"),
            Metric(
                scenario,
                "lateness p99",
                "s",
                *fig("p99_s"),
                better="lower",
                target=2.0 if headline else None,
            ),
            Metric(scenario, "lateness max", "s", *fig("max_s"), better="lower"),
            Metric(scenario, "duplicates", "", *fig("duplicates"), better="lower", target=0),
            Metric(scenario, "drops", "", *fig("drops"), better="lower", target=0),
        )
