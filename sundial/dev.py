"""``sundial dev``: the whole service on one machine with no servers, for trying it out."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from scheduler.firing.broker import EMBEDDED_TRANSPORT_OPTIONS, embedded_broker
from scheduler.settings import Settings
from scheduler.stop_signals import StopSignals
from scheduler.store import migrate

log = logging.getLogger("sundial.dev")

STOP_TIMEOUT_S = 10.0


def worker_args() -> tuple[str, ...]:
    """The worker `sundial dev` runs (bench S6 measures exactly this one).

    Celery's prefork pool, a process per core (2 to 4): one process with a thread pool is
    bound by its GIL at ~800 echo tasks/s however many cores there are.
    """
    return ("--pool=prefork", f"--concurrency={max(2, min(4, os.cpu_count() or 2))}")


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


def child_env(
    settings: Settings, embedded_url: str | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """The environment of `sundial dev`'s children, given its own.

    With the embedded broker, they get its Valkey as their Redis: the production lease,
    change notices, fast publish path and execution ledger, with no server to install.
    """
    env = dict(environ)
    env.setdefault("SUNDIAL_DATA_DIR", str(settings.data_dir))
    if embedded_url is not None:
        env["SUNDIAL_REDIS_URL"] = embedded_url
        env.setdefault("SUNDIAL_BROKER_TRANSPORT_OPTIONS", json.dumps(EMBEDDED_TRANSPORT_OPTIONS))
    return env


def run_dev(settings: Settings, port: int) -> None:
    """Migrate, then run API, scheduler and worker until Ctrl-C or one of them exits."""
    migrate.upgrade(settings.database_url)
    broker = embedded_broker(settings) if settings.embedded_broker else None
    url, started_broker = broker.ensure_running() if broker is not None else (None, False)
    if broker is not None:
        log.info("dev: embedded broker at %s (files in %s)", url, broker.folder)
    env = child_env(settings, url, os.environ)
    children = [
        _spawn(["worker", *worker_args()], env),
        _spawn(["scheduler"], env),
        _spawn(["api", "--port", str(port)], env),
    ]
    log.info("dev: API on http://127.0.0.1:%s (docs at /docs); Ctrl-C stops everything", port)
    stopping = threading.Event()
    # Held through the stop too: a second Ctrl-C must not cut it short.
    with StopSignals(lambda _signum: stopping.set()):
        try:
            while not stopping.is_set() and all(child.poll() is None for child in children):
                stopping.wait(0.5)
        finally:
            for child in children:
                if child.poll() is not None and not stopping.is_set():
                    log.error(
                        "dev: pid %s exited with %s; stopping the rest",
                        child.pid,
                        child.returncode,
                    )
            _stop(children)
            if broker is not None and started_broker:
                broker.stop()
