"""S8 retention: a stream of one-offs, created and fired every second for many minutes
under a short one-off retention. The tables' rows and on-disk sizes (heap, indexes and
TOAST: ``pg_total_relation_size``) must level off once the first one-offs age out, not grow
with the number ever created."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from bench import seed
from bench.consumer import Consumer, QueueConsumer
from bench.procs import sleep_until, wait_for, wait_leader
from bench.report import Metric
from bench.scenarios.common import Bench, utc_in
from bench.services import unique_name
from scheduler.store.db import make_engine

NAME = "S8"
MB = 2**20
TABLES = ("schedules", "runs", "changes", "alerts", "idempotency_keys")
log = logging.getLogger("bench")

_SETTLE = text(
    "UPDATE runs SET state = 'succeeded', started_at = now(), finished_at = now()"
    " WHERE id = ANY(CAST(:ids AS text[])) AND state IN ('pending', 'dispatched')"
)


@dataclass(frozen=True)
class Plan:
    """How big one stream is."""

    rate: int  # one-offs created (and due) per second
    duration_s: int
    retention_s: float
    housekeeping_s: float
    sample_s: float


def settler(engine: Engine) -> Callable[[list[bytes]], None]:
    """Stands in for the workers and the leader's event tracker: records each popped run
    ``succeeded``, one UPDATE per batch, so the stream's fires settle at the rate they are
    published and retention has something to prune."""

    def settle(batch: list[bytes]) -> None:
        ids = [json.loads(raw)["headers"]["id"] for raw in batch]
        with engine.begin() as conn:
            conn.execute(_SETTLE, {"ids": ids})

    return settle


@dataclass
class Stream:
    """What one stream left behind, sampled as it ran."""

    plan: Plan
    created: int = 0
    fired: int = 0
    lag: int = 0  # created but not yet fired and settled when the stream ended
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.__dict__,
            "created": self.created,
            "fired": self.fired,
            "lag_at_end": self.lag,
            "samples": self.samples,
        }


def measure_tables(engine: Engine) -> dict[str, Any]:
    """Rows and ``pg_total_relation_size`` of each table, and the database's size."""
    rows: dict[str, int] = {}
    sizes: dict[str, int] = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows[table] = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            sizes[table] = int(
                conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            )
        size = text("SELECT pg_database_size(current_database())")
        database = int(conn.execute(size).scalar_one())
    return {"rows": rows, "bytes": sizes, "database_bytes": database}


def stream(bench: Bench, plan: Plan) -> Stream:
    """Create ``rate`` one-offs due a second later, every second for ``duration_s``, with
    a leader pruning finished ones ``retention_s`` after they settled; sample the tables."""
    queue = unique_name("bench_s8")
    case = f"{NAME} {plan.rate}/s sundial"
    out = Stream(plan)
    settings = {
        "one_off_retention_days": plan.retention_s / 86400,
        "housekeeping_interval_seconds": plan.housekeeping_s,
    }
    with bench.services.database("s8") as url, bench.processes(case) as procs:
        engine = make_engine(url)
        try:
            sched = procs.sundial("scheduler", bench.env(url, **settings))
            wait_leader(engine, [sched], timeout=30)
            with QueueConsumer(bench.redis_url, queue, settler(engine)) as settled:
                start = time.time()
                next_sample = start
                wave = 0
                while time.time() < start + plan.duration_s:
                    sched.check_alive()
                    prefix = f"s8-{wave:06d}-"
                    seed.one_offs(engine, prefix, plan.rate, utc_in(1.0), queue, None, False)
                    seed.notify(bench.redis_url)
                    out.created += plan.rate
                    wave += 1
                    if time.time() >= next_sample:
                        vacuum(engine)
                        out.samples.append(_sample(engine, start, out.created, settled.count))
                        next_sample += plan.sample_s
                    sleep_until(start + wave)
                # The tail: every one-off fired and settled, then one retention and two
                # rounds later the last of them pruned too.
                out.lag = out.created - settled.count
                wait_for(lambda: _all_settled(engine, settled), 600, "every fire to settle", 0.5)
                out.fired = settled.count
                vacuum(engine)
                out.samples.append(_sample(engine, start, out.created, settled.count))
                sleep_until(time.time() + plan.retention_s + 2 * plan.housekeeping_s)
                sched.check_alive()
                vacuum(engine)
                out.samples.append(_sample(engine, start, out.created, settled.count))
            bench.record(case, out.as_json())
            return out
        finally:
            engine.dispose()
            bench.services.drop_queue(queue)


def vacuum(engine: Engine) -> None:
    """What autovacuum does on a default server: make deleted rows' space reusable. This
    machine's shared PostgreSQL runs with ``autovacuum = off``; without this the tables would
    grow with every row ever deleted whatever sundial does."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) " + ", ".join(TABLES)))


def _all_settled(engine: Engine, settled: Consumer) -> bool:
    if settled.error is not None:
        raise settled.error
    with engine.connect() as conn:
        return not conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM schedules WHERE state = 'active')"
                " OR EXISTS (SELECT 1 FROM runs WHERE state IN ('pending', 'dispatched'))"
            )
        ).scalar_one()


def _sample(engine: Engine, start: float, created: int, fired: int) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "elapsed_s": round(time.time() - start, 1),
        "created": created,
        "fired": fired,
    }
    sample.update(measure_tables(engine))
    log.info(
        "bench: S8 %6.0fs created %d fired %d schedules %d runs %d changes %d, %.1f MB",
        sample["elapsed_s"],
        created,
        fired,
        sample["rows"]["schedules"],
        sample["rows"]["runs"],
        sample["rows"]["changes"],
        sample["database_bytes"] / MB,
    )
    return sample


def _size_mb(sample: dict[str, Any]) -> float:
    return float(sum(sample["bytes"].values())) / MB


def metrics(out: Stream | None, plan: Plan) -> list[Metric]:
    """Headline rows: what went through, and the tables at one third of the stream (well
    past the first prunes) against the end of it."""
    scenario = f"S8 retention {plan.rate:,}/s for {plan.duration_s}s"
    samples = out.samples[:-2] if out else []  # the stream's own samples, not the tail
    third = samples[len(samples) // 3] if samples else None
    end = samples[-1] if samples else None
    drained = out.samples[-1] if out else None

    def rows(sample: dict[str, Any] | None, table: str) -> float | None:
        return None if sample is None else float(sample["rows"][table])

    growth = None
    if third is not None and end is not None and _size_mb(third) > 0:
        growth = _size_mb(end) / _size_mb(third)
    figures: list[tuple[str, str, float | None, float | None]] = [
        ("one-offs created", "", None if out is None else float(out.created), None),
        ("one-offs fired and settled", "", None if out is None else float(out.fired), None),
        ("not yet fired when the stream ended", "", None if out is None else float(out.lag), None),
        ("schedules rows at 1/3", "", rows(third, "schedules"), None),
        ("schedules rows at end", "", rows(end, "schedules"), None),
        ("runs rows at end", "", rows(end, "runs"), None),
        ("changes rows at end", "", rows(end, "changes"), None),
        ("tables' size at 1/3", "MB", None if third is None else _size_mb(third), None),
        ("tables' size at end", "MB", None if end is None else _size_mb(end), None),
        ("size end ÷ size at 1/3", "", growth, 1.25),
        ("schedules rows after the tail", "", rows(drained, "schedules"), None),
    ]
    return [
        Metric(scenario, name, unit, value, None, better="lower", target=target)
        for name, unit, value, target in figures
    ]


def run(bench: Bench) -> None:
    """S8: 1,120 one-offs a second for 15 minutes (1,008,000), 60 s retention
    (``--quick``: 200/s for 20 s, 5 s retention); ``SUNDIAL_BENCH_S8_RATE``, ``_SECONDS``
    and ``_RETENTION_SECONDS`` change the full run's."""
    if bench.quick:
        plan = Plan(rate=200, duration_s=20, retention_s=5, housekeeping_s=1, sample_s=2)
    else:
        plan = Plan(
            rate=int(os.environ.get("SUNDIAL_BENCH_S8_RATE", "1120")),
            duration_s=int(os.environ.get("SUNDIAL_BENCH_S8_SECONDS", "900")),
            retention_s=float(os.environ.get("SUNDIAL_BENCH_S8_RETENTION_SECONDS", "60")),
            housekeeping_s=10,
            sample_s=30,
        )
    out = bench.case(f"{NAME} {plan.rate}/s sundial", lambda: stream(bench, plan))
    bench.report.add(*metrics(out, plan))
