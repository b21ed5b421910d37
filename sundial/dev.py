"""``sundial dev``: the whole service on one machine with no servers, for trying it out."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from scheduler import migrate
from scheduler.broker import embedded_broker
from scheduler.settings import Settings

log = logging.getLogger("sundial.dev")

STOP_TIMEOUT_S = 10.0
# The worker `sundial dev` runs (bench S6 measures exactly this one).
WORKER_ARGS = ("--pool=threads", "--concurrency=4")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Each child in its own process group: we forward Ctrl-C ourselves, in order.
    return subprocess.Popen(
        [sys.executable, "-m", "sundial", *args], env=env, start_new_session=True
    )


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("dev: pid %s did not stop in time; killing it", child.pid)
            child.kill()
            child.wait()


def run_dev(settings: Settings, port: int) -> None:
    """Migrate, then run API, scheduler and worker until Ctrl-C or one of them exits."""
    migrate.upgrade(settings.database_url)
    env = dict(os.environ)
    env.setdefault("SUNDIAL_DATA_DIR", str(settings.data_dir))
    broker = embedded_broker(settings) if settings.embedded_broker else None
    started_broker = False
    if broker is not None:
        # The children get the embedded Valkey as their Redis: the production lease, change
        # notices, fast publish path and execution ledger, with no server to install.
        url, started_broker = broker.ensure_running()
        env["SUNDIAL_REDIS_URL"] = url
        log.info("dev: embedded broker at %s (files in %s)", url, broker.folder)
    children = [
        _spawn(["worker", *WORKER_ARGS], env),
        _spawn(["scheduler"], env),
        _spawn(["api", "--port", str(port)], env),
    ]
    log.info("dev: API on http://127.0.0.1:%s (docs at /docs); Ctrl-C stops everything", port)
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping.is_set() and all(child.poll() is None for child in children):
            stopping.wait(0.5)
    finally:
        for child in children:
            if child.poll() is not None and not stopping.is_set():
                log.error(
                    "dev: pid %s exited with %s; stopping the rest", child.pid, child.returncode
                )
        _stop(children)
        if broker is not None and started_broker:
            broker.stop()
