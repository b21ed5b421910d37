"""S4 API: schedule writes per second and their latency with concurrent clients — POST
(server-chosen id), PUT creating new ids, PUT replacing existing ones — and list latency.
The leader runs alongside, as in production, and hears a change notice per write."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.http import Http
from bench.procs import load_cpu_seconds
from bench.report import Metric
from bench.scenarios.common import Bench, serving
from bench.services import unique_name
from bench.stats import percentile

NAME = "S4"
CONCURRENCY = 16

Request = Callable[[Http, int], tuple[int, bytes]]


@dataclass(frozen=True)
class Load:
    """One operation hammered by CONCURRENCY clients."""

    requests: int
    errors: int
    per_s: float
    p50_s: float | None
    p99_s: float | None
    cpu_pct: dict[str, float | None]  # per process over the load, 100 = one core

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def hammer(
    base: str,
    count: int,
    request: Request,
    expect: set[int],
    watch: dict[str, int],
    clients: int = CONCURRENCY,
) -> Load:
    """Send ``count`` requests from ``clients`` threads, each with its own connection;
    note the CPU the ``watch`` processes (name → pid) used meanwhile."""
    took: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_index = iter(range(count))

    def client_loop() -> None:
        nonlocal errors
        with Http(base) as client:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    ok = request(client, i)[0] in expect
                except OSError:
                    ok = False
                elapsed = time.perf_counter() - t0
                with lock:
                    took.append(elapsed)
                    errors += not ok

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    cpu0 = {name: load_cpu_seconds(pid) for name, pid in watch.items()}
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - started
    cpu: dict[str, float | None] = {}
    for name, pid in watch.items():
        before, after = cpu0[name], load_cpu_seconds(pid)
        cpu[name] = None if before is None or after is None else 100 * (after - before) / wall
    return Load(count, errors, count / wall, percentile(took, 50), percentile(took, 99), cpu)


def body(queue: str, i: int) -> dict[str, Any]:
    """A schedule as a client would send it; never due during the run."""
    return {
        "task": "bench.noop",
        "kwargs": {"n": i},
        "trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
        "queue": queue,
        "labels": {"bench": "s4"},
    }


def api_load(bench: Bench) -> dict[str, Load]:
    """Start API and leader, then POST, PUT-create, PUT-replace and list."""
    n = 300 if bench.quick else 5_000
    queue = unique_name("bench_s4")
    case = f"{NAME} sundial"
    with serving(bench, "s4", case) as sundial:
        base, watch = sundial.base, sundial.watch()
        path, ids = "/v1/schedules", uuid.uuid4().hex[:6]

        def post(c: Http, i: int) -> tuple[int, bytes]:
            return c.request("POST", path, body(queue, i))

        def put_new(c: Http, i: int) -> tuple[int, bytes]:
            return c.request("PUT", f"{path}/{ids}-{i}", body(queue, i))

        def put_again(c: Http, i: int) -> tuple[int, bytes]:
            return c.request("PUT", f"{path}/{ids}-{i}", body(queue, -i))

        def list_page(c: Http, _i: int) -> tuple[int, bytes]:
            return c.request("GET", f"{path}?limit=100")

        hammer(base, 50, post, {201}, {})  # warm up connections and caches
        ops: dict[str, tuple[int, Request, int]] = {
            "post": (n, post, 201),
            "put_create": (n, put_new, 201),
            "put_replace": (n, put_again, 200),
            "list": (max(100, n // 10), list_page, 200),
        }
        out = {op: hammer(base, k, req, {ok}, watch) for op, (k, req, ok) in ops.items()}
        sundial.scheduler.check_alive()
        bench.record(case, {k: v.as_json() for k, v in out.items()})
        return out


def run(bench: Bench) -> None:
    """S4 with 16 concurrent clients (5,000 writes of each kind; ``--quick``: 300)."""
    out = bench.case(f"{NAME} sundial", lambda: api_load(bench)) or {}
    scenario = f"S4 API, {CONCURRENCY} clients"

    def fig(op: str, attr: str, scale: float = 1.0) -> float | None:
        load = out.get(op)
        value = getattr(load, attr) if load else None
        return None if value is None else value * scale

    for op, label in (
        ("post", "POST"),
        ("put_create", "PUT create"),
        ("put_replace", "PUT replace"),
    ):
        target = 1_000 if op == "post" else None
        bench.report.add(
            Metric(scenario, f"{label} /s", "", fig(op, "per_s"), None, "higher", target),
            Metric(scenario, f"{label} p99", "ms", fig(op, "p99_s", 1000), None, "lower"),
            Metric(scenario, f"{label} errors", "", fig(op, "errors"), None, "lower", 0),
        )
    bench.report.add(
        Metric(scenario, "list /s", "", fig("list", "per_s"), None, "higher"),
        Metric(scenario, "list p99", "ms", fig("list", "p99_s", 1000), None, "lower"),
    )
