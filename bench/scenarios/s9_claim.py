"""S9 claim ceiling: what one claimer costs per fire, and so how many fires a second one
leader can record before it publishes any. Interval schedules at 1 s spread over the second;
the claim of each second's fires is stepped with an injected ``now`` (no waiting, no
publishing), one batch after the other, as the leader's loop does. Per fire: the loop
thread's CPU, the CPU of the PostgreSQL backend that served it (read from ``/proc``: the
server must run on this machine), and the wall time of the two in turn."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from bench import seed
from bench.procs import cpu_seconds
from bench.report import Metric
from bench.scenarios.common import Bench, utc_in
from bench.services import unique_name
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.store.db import make_engine
from scheduler.store.jobstore import SqlJobStore

NAME = "S9"
BATCH = 1_000  # the claim batch size's default (SUNDIAL_CLAIM_BATCH_SIZE)


def backend_cpu_s(engine: Engine) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends of this engine's database; None
    where they cannot be read (another server, another machine)."""
    if engine.dialect.name != "postgresql":
        return None
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    with engine.connect() as conn:
        pids = conn.execute(query).scalars().all()
    total = 0.0
    for pid in pids:
        used = cpu_seconds(pid)
        if used is None:
            return None
        total += used
    return total


def claim_seconds(store: SqlJobStore, token: int, start: datetime, seconds: int) -> int:
    """Claim every fire of ``seconds`` one-second steps after ``start``; the fires claimed."""
    fires = 0
    for step in range(1, seconds + 1):
        now = start + timedelta(seconds=step)
        while True:
            claimed = len(store.claim_due(now, token, BATCH).dispatches)
            fires += claimed
            if claimed < BATCH:
                break
    return fires


def ceiling(bench: Bench, k: int, seconds: int) -> dict[str, Any]:
    """Claim ``seconds`` seconds of ``k`` schedules' fires, measured after one second of
    warm-up (which also takes the fires missed while the store was loaded)."""
    with bench.services.database("s9") as url:
        engine = make_engine(url, pool_size=1)
        try:
            first = utc_in(-60)
            seed.intervals(engine, "s9-", k, first, 1.0, unique_name("bench_s9"), grace_s=None)
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            lease = SqlLease(engine, Replica("bench-s9", "bench", os.getpid()), ttl_s=3600)
            if not lease.acquire() or lease.token is None:
                raise RuntimeError("could not take the lease of a fresh database")
            store = SqlJobStore(engine)
            start = utc_in(0)
            claim_seconds(store, lease.token, start - timedelta(seconds=1), 1)
            pg_before = backend_cpu_s(engine)
            cpu_before, wall_before = time.thread_time(), time.perf_counter()
            fires = claim_seconds(store, lease.token, start, seconds)
            cpu = time.thread_time() - cpu_before
            wall = time.perf_counter() - wall_before
            pg_after = backend_cpu_s(engine)
        finally:
            engine.dispose()
    if fires != k * seconds:
        raise RuntimeError(f"claimed {fires} fires, expected {k * seconds}")
    pg = None if pg_before is None or pg_after is None else pg_after - pg_before
    return {
        "fires": fires,
        "fires_per_s": fires / wall,
        "wall_us": wall / fires * 1e6,
        "loop_cpu_us": cpu / fires * 1e6,
        "pg_cpu_us": None if pg is None else pg / fires * 1e6,
    }


def run(bench: Bench) -> None:
    """S9: 10,000 schedules, 10 seconds of fires (``--quick``: 500, 2 s)."""
    k, seconds = (500, 2) if bench.quick else (10_000, 10)
    scenario = f"{NAME} claim {k:,} spread"
    out = bench.case(scenario, lambda: ceiling(bench, k, seconds))
    if out is None:
        return
    bench.record(scenario, out)

    def us(metric: str, key: str, note: str) -> Metric:
        return Metric(scenario, metric, "µs", out[key], None, better="lower", note=note)

    bench.report.add(
        Metric(
            scenario,
            "fires claimed/s, one claimer",
            "",
            out["fires_per_s"],
            None,
            better="higher",
            note="recorded, none published: the ceiling of one claimer",
        ),
        us("wall per fire", "wall_us", "the loop and PostgreSQL in turn"),
        us("loop CPU per fire", "loop_cpu_us", "the leader's loop thread"),
        us("PostgreSQL CPU per fire", "pg_cpu_us", "its backend, from /proc"),
    )
