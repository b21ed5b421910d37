"""S3 scale: a store of 1,000,000 schedules (almost all far in the future). Leader start-up
time and memory, the API's list (first and a deep cursor page) and get latencies, and S2
at K = 1,000 on top of it all."""

from __future__ import annotations

import random
import time
from typing import Any

from api.pagination import encode_cursor
from bench import seed
from bench.consumer import QueueConsumer
from bench.http import Http
from bench.procs import Sampler, wait_leader
from bench.report import Better, Metric
from bench.scenarios import s2_sustained
from bench.scenarios.common import Bench, start_api, utc_in
from bench.services import unique_name
from bench.stats import percentile
from scheduler.store.db import make_engine

NAME = "S3"
MB = 2**20


def latencies(client: Http, paths: list[str]) -> dict[str, float | None]:
    """p50/p99 in seconds of GETting ``paths`` one after another (each must be 200)."""
    took: list[float] = []
    for path in paths:
        t0 = time.perf_counter()
        status, body = client.request("GET", path)
        took.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return {"p50_s": percentile(took, 50), "p99_s": percentile(took, 99), "n": len(took)}


def scale(bench: Bench, n: int) -> dict[str, Any]:
    """Load n schedules, start API and leader, measure, then run S2 on top."""
    queue = unique_name("bench_s3")
    k = 200 if bench.quick else 1_000
    requests = 30 if bench.quick else 300
    case = f"{NAME} {n} sundial"
    out: dict[str, Any] = {"n": n}
    with bench.services.database("s3") as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            t0 = time.monotonic()
            seed.far_future(engine, "s3-", n - 1, utc_in(0), queue)
            # One schedule already due: its publish marks the end of the leader's first cycle.
            probe = seed.one_offs(engine, "s3-probe-", 1, utc_in(-1), queue, grace_s=None)
            out["load_s"] = time.monotonic() - t0
            with QueueConsumer(bench.redis_url, queue) as consumer:
                sched = procs.sundial("scheduler", bench.env(url))
                with Sampler(sched.pid) as sampler:
                    wait_leader(engine, [sched], timeout=60)
                    out["leader_s"] = time.time() - sched.started_at
                    if not consumer.wait_count(1, timeout=60):
                        raise RuntimeError("the already-due schedule was not published")
                    first = consumer.receipts()[0]
                    assert first.key in probe.keys
                    out["first_publish_s"] = first.received - sched.started_at
                    time.sleep(0.5)
                    sampler.sample()
                    out["rss_started_mb"] = sampler.last_rss / MB
                    _api, base = start_api(bench, procs, url)
                    ids = [seed.schedule_id("s3-i", i) for i in range(0, n // 2, 7)]
                    deep = encode_cursor(seed.schedule_id("s3-i", (n // 2) * 9 // 10))
                    rng = random.Random(5)
                    with Http(base) as client:
                        latencies(client, ["/v1/schedules?limit=100"] * 10)  # warm up
                        out["list_first"] = latencies(
                            client, ["/v1/schedules?limit=100"] * requests
                        )
                        out["list_deep"] = latencies(
                            client, [f"/v1/schedules?limit=100&cursor={deep}"] * requests
                        )
                        out["get"] = latencies(
                            client, [f"/v1/schedules/{rng.choice(ids)}" for _ in range(requests)]
                        )
                    on_top = s2_sustained.measure_sundial(
                        bench, engine, sched, f"{queue}_k", "s3-k-", k, 3.0 if bench.quick else 60.0
                    )
                    out["s2_on_top"] = on_top.as_json()
                    out["rss_peak_mb"] = sampler.peak_rss / MB
            bench.record(case, out)
            return out
        finally:
            engine.dispose()
            bench.services.drop_queue(queue)
            bench.services.drop_queue(f"{queue}_k")


def run(bench: Bench) -> None:
    """S3 at 1,000,000 stored schedules (``--quick``: 20,000)."""
    n = 20_000 if bench.quick else 1_000_000
    scenario = f"S3 scale {n:,}"
    out = bench.case(f"{NAME} {n} sundial", lambda: scale(bench, n)) or {}

    def get(*path: str) -> Any:
        value: Any = out
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    on_top = get("s2_on_top") or {}
    k = on_top.get("k", 200 if bench.quick else 1_000)
    ms = 1000.0

    def in_ms(value: float | None) -> float | None:
        return None if value is None else value * ms

    on = f"S2 {k:,}/s on top:"
    rows: list[tuple[str, str, float | None, Better, float | None]] = [
        ("leader start-up", "s", get("leader_s"), "lower", 5.0),
        ("first cycle published", "s", get("first_publish_s"), "lower", None),
        ("leader RSS after start", "MB", get("rss_started_mb"), "lower", None),
        ("leader RSS peak", "MB", get("rss_peak_mb"), "lower", 300),
        ("list first page p50", "ms", in_ms(get("list_first", "p50_s")), "lower", None),
        ("list first page p99", "ms", in_ms(get("list_first", "p99_s")), "lower", 50),
        ("list deep page p50", "ms", in_ms(get("list_deep", "p50_s")), "lower", None),
        ("list deep page p99", "ms", in_ms(get("list_deep", "p99_s")), "lower", 50),
        ("get p50", "ms", in_ms(get("get", "p50_s")), "lower", None),
        ("get p99", "ms", in_ms(get("get", "p99_s")), "lower", 50),
        (f"{on} fires/s", "", on_top.get("fires_per_s"), "higher", 0.99 * k),
        (f"{on} lateness p99", "s", on_top.get("p99_s"), "lower", 0.25),
        (f"{on} misses", "", on_top.get("misses"), "lower", 0),
    ]
    bench.report.add(
        *(Metric(scenario, m, u, v, None, better=b, target=t) for m, u, v, b, t in rows)
    )
