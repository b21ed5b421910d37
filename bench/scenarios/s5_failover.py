"""S5 wake-up and failover. An idle leader's CPU use; create-to-publish latency of a
1-second delay job created through the API (the change notice wakes the leader); and the
gap without fires after SIGKILL of the leader while a second replica waits (TTL 3 s)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from bench import seed
from bench.consumer import QueueConsumer, epoch_us
from bench.procs import BenchError, cpu_seconds, kill_hard, leader_pid, wait_for, wait_leader
from bench.report import Metric
from bench.scenarios.common import Bench, serving, utc_in
from bench.services import unique_name
from bench.stats import deliveries, percentile
from scheduler.store.db import make_engine
from scheduler.store.models import replicas

NAME = "S5"
TTL_S = 3.0


def wake_up(bench: Bench) -> dict[str, Any]:
    """Idle CPU of a leader with nothing due, then delay-1s jobs created one at a time."""
    repeats = 2 if bench.quick else 5
    idle_s = 1.5 if bench.quick else 10.0
    queue = unique_name("bench_s5")
    case = f"{NAME} wake-up"
    try:
        with serving(bench, "s5", case) as sundial:
            time.sleep(0.5)
            cpu0 = cpu_seconds(sundial.scheduler.pid)
            time.sleep(idle_s)
            cpu1 = cpu_seconds(sundial.scheduler.pid)
            idle_pct = None if cpu0 is None or cpu1 is None else 100 * (cpu1 - cpu0) / idle_s
            create_to_publish: list[float] = []
            lateness: list[float] = []
            with (
                QueueConsumer(bench.redis_url, queue) as consumer,
                httpx.Client(base_url=sundial.base, timeout=10) as client,
            ):
                for i in range(repeats):
                    requested = time.time()
                    delay = {"type": "delay", "seconds": 1}
                    response = client.post(
                        "/v1/schedules",
                        json={"task": "bench.noop", "queue": queue, "trigger": delay},
                    )
                    response.raise_for_status()
                    due = epoch_us(datetime.fromisoformat(response.json()["next_run_at"]))
                    if not consumer.wait_count(i + 1, timeout=10):
                        raise BenchError("a 1-second delay job was not published within 10 s")
                    receipt = consumer.receipts()[i]
                    assert receipt.due_us == due
                    create_to_publish.append(receipt.received - requested)
                    lateness.append(receipt.lateness)
                    time.sleep(0.2)
            out = {
                "idle_cpu_pct": idle_pct,
                "create_to_publish_s": create_to_publish,
                "lateness_s": lateness,
            }
            bench.record(case, out)
            return out
    finally:
        bench.services.drop_queue(queue)


def replica_count(engine: Engine) -> int:
    """Replicas registered in the store."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(replicas)).scalar_one())


def failover(bench: Bench) -> dict[str, Any]:
    """Two replicas (TTL 3 s), one schedule every second; SIGKILL the leader just after a
    fire and time until the next publish, which only the new leader can make."""
    queue = unique_name("bench_s5f")
    case = f"{NAME} failover"
    with bench.services.database("s5f") as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            first = utc_in(1.0)
            seed.intervals(engine, "s5-", 1, first, 1.0, queue, grace_s=60.0)
            env = bench.env(url, lease_ttl_seconds=TTL_S)
            replicas = [procs.sundial("scheduler", env)]
            wait_leader(engine, replicas, timeout=30)
            replicas.append(procs.sundial("scheduler", env))
            with QueueConsumer(bench.redis_url, queue) as consumer:
                wait_for(lambda: replica_count(engine) == 2, 30, "the second replica to register")
                seen = consumer.count
                if not consumer.wait_count(seen + 1, timeout=5):
                    raise BenchError("the leader published nothing")
                time.sleep(0.3)
                old = next(c for c in replicas if c.pid == leader_pid(engine))
                survivor = next(c for c in replicas if c is not old)
                survivor.check_alive()
                before = consumer.count
                killed_at = kill_hard(old)
                wait_for(lambda: consumer.count > before, TTL_S + 10, "a fire after the failover")
                gap = consumer.receipts()[before].received - killed_at
                new_leader = wait_for(
                    lambda: leader_pid(engine) == survivor.pid, 5, "the survivor to lead"
                )
                time.sleep(1.2)  # a fire or two by the new leader, to count duplicates
            receipts = consumer.receipts()
            got = deliveries(receipts, None)
            out = {
                "ttl_s": TTL_S,
                "gap_s": gap,
                "new_leader": bool(new_leader),
                "fires": len(got.first),
                "duplicates": got.duplicates,
                "same_id_republished": got.same_id_repeats,
            }
            bench.record(case, out)
            return out
        finally:
            engine.dispose()
            bench.services.drop_queue(queue)


def run(bench: Bench) -> None:
    """Wake-up latency and idle CPU, then the failover gap."""
    woke = bench.case(f"{NAME} wake-up", lambda: wake_up(bench)) or {}
    failed = bench.case(f"{NAME} failover", lambda: failover(bench)) or {}
    c2p = woke.get("create_to_publish_s") or []
    late = woke.get("lateness_s") or []
    scenario = "S5 wake-up/failover"
    rows: list[tuple[str, str, float | None, float | None]] = [
        ("idle leader CPU", "% of a core", woke.get("idle_cpu_pct"), 1.0),
        ("delay 1 s: create→publish p50", "s", percentile(c2p, 50), None),
        ("delay 1 s: create→publish max", "s", percentile(c2p, 100), None),
        ("delay 1 s: lateness max", "s", percentile(late, 100), 1.0),
        (f"failover gap (TTL {TTL_S:g} s)", "s", failed.get("gap_s"), TTL_S + 2),
        ("failover duplicates", "", failed.get("duplicates"), 0),
    ]
    bench.report.add(
        *(Metric(scenario, m, u, v, None, better="lower", target=t) for m, u, v, t in rows)
    )
