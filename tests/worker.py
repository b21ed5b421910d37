"""Running a real sundial Celery worker process for tests.

Usage::

    with running_worker(settings, queues="q_1234") as worker:
        ...  # publish to "q_1234"; worker.hostname is "<name>@<host>" as runs report it

The worker is ``jobs.app.run_worker`` in a child Python process, configured only through
``SUNDIAL_*`` variables built from ``settings``, so it sees exactly what a deployed worker
configured by environment would. Extra ``celery worker`` options go in ``argv`` (for
example ``["--include", "tests.jobs.probe_tasks"]`` to load test-only tasks; modules are
importable from the repository root, the child's working directory).

``running_app_worker(module, env)`` runs the Celery ``app`` of any module instead (a
third-party app that is not sundial's), configured only by ``env``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from scheduler.settings import Settings
from tests.services import unique_name, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_CHARS = 4000

# The child marks readiness from Celery's worker_ready signal: it is sent once the
# consumer is set up and about to consume, which is the moment a test may rely on.
_BOOT = """
import sys
from pathlib import Path

from celery.signals import worker_ready

from jobs.app import run_worker
from scheduler.settings import Settings

ready_file = Path(sys.argv[1])


def _mark_ready(**_kwargs):
    ready_file.write_text("ready")


worker_ready.connect(_mark_ready, weak=False)
run_worker(Settings(_env_file=None), sys.argv[2:])
"""
# The same for any Celery app: the module named by argv[2] defines ``app``.
_APP_BOOT = """
import importlib
import sys
from pathlib import Path

from celery.signals import worker_ready

ready_file = Path(sys.argv[1])


def _mark_ready(**_kwargs):
    ready_file.write_text("ready")


worker_ready.connect(_mark_ready, weak=False)
app = importlib.import_module(sys.argv[2]).app
app.worker_main(["worker", "--loglevel=INFO", *sys.argv[3:]])
"""


class WorkerProcess(subprocess.Popen[bytes]):
    """A worker child process, with its Celery node name and its log file."""

    hostname: str
    log_path: Path
    # Kept when the worker stops, because its temporary folder goes with it.
    saved_log: str | None = None

    def log(self) -> str:
        """Everything the worker wrote to stdout and stderr (also after it stopped)."""
        if self.saved_log is not None:
            return self.saved_log
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        """The end of the log, for failure messages."""
        return self.log()[-LOG_TAIL_CHARS:]


def settings_env(settings: Settings) -> dict[str, str]:
    """``SUNDIAL_*`` variables that rebuild ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = f"SUNDIAL_{name.upper()}"
        if isinstance(value, list):
            env[key] = ",".join(str(item) for item in value)
        elif isinstance(value, Path):
            env[key] = str(value.resolve())
        elif isinstance(value, dict):
            env[key] = json.dumps(value)
        else:
            env[key] = str(value)
    return env


def _child_env(settings: Mapping[str, str], extra_env: Mapping[str, str] | None) -> dict[str, str]:
    # Inherited SUNDIAL_* settings would leak the developer's config into the worker.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SUNDIAL_") or key.startswith("SUNDIAL_TEST_")
    }
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    return env


@contextlib.contextmanager
def running_worker(
    settings: Settings,
    queues: str = "celery",
    extra_env: Mapping[str, str] | None = None,
    *,
    argv: Sequence[str] = (),
    pool: str = "threads",
    concurrency: int = 2,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[WorkerProcess]:
    """Start a real worker process consuming ``queues`` (comma-separated) and yield it.

    Returns once the worker is ready to consume; fails with the worker's log if it
    exits or is not ready within ``start_timeout_s``. On exit it is sent SIGTERM (Celery's
    warm shutdown, which lets running tasks finish) and killed after ``STOP_TIMEOUT_S``.
    ``extra_env`` is laid over the environment last (fault hooks, overrides).
    """
    env = _child_env(settings_env(settings), extra_env)
    options = _options(queues, pool, concurrency, argv)
    with _running(["-c", _BOOT], options, env, start_timeout_s) as proc:
        yield proc


@contextlib.contextmanager
def running_app_worker(
    module: str,
    env: Mapping[str, str],
    queues: str = "celery",
    *,
    argv: Sequence[str] = (),
    pool: str = "threads",
    concurrency: int = 2,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[WorkerProcess]:
    """Like :func:`running_worker`, for the Celery ``app`` of any importable ``module``
    (a third-party app: nothing of sundial's configuration), configured by ``env``."""
    options = _options(queues, pool, concurrency, argv)
    with _running(["-c", _APP_BOOT], options, _child_env({}, env), start_timeout_s, module) as proc:
        yield proc


def _options(queues: str, pool: str, concurrency: int, argv: Sequence[str]) -> list[str]:
    return [
        "--queues",
        queues,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        # Mingle waits a second for replies from other nodes; tests have none to sync.
        "--without-mingle",
        *argv,
    ]


@contextlib.contextmanager
def _running(
    boot: list[str],
    options: list[str],
    env: dict[str, str],
    start_timeout_s: float,
    *leading: str,
) -> Iterator[WorkerProcess]:
    with tempfile.TemporaryDirectory(prefix="sundial-worker-") as tmp:
        folder = Path(tmp)
        ready_file = folder / "ready"
        log_path = folder / "worker.log"
        hostname = f"{unique_name('sundial-test')}@{socket.gethostname()}"
        args = [
            sys.executable,
            *boot,
            str(ready_file),
            *leading,
            "--hostname",
            hostname,
            *options,
        ]
        with log_path.open("wb") as log:
            proc = WorkerProcess(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.hostname = hostname
        proc.log_path = log_path
        try:
            _wait_ready(proc, ready_file, start_timeout_s)
        except BaseException:
            _stop(proc)
            raise
        try:
            yield proc
        except Exception:
            # The worker's side of a failing test is usually the interesting half.
            _stop(proc)
            sys.stderr.write(f"--- log of worker {hostname} ---\n{proc.log_tail()}\n")
            raise
        finally:
            _stop(proc)


def _wait_ready(proc: WorkerProcess, ready_file: Path, timeout: float) -> None:
    try:
        wait_for(
            lambda: ready_file.exists() or proc.poll() is not None,
            timeout,
            f"worker {proc.hostname} to be ready",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{proc.log_tail()}") from None
    if proc.poll() is not None:
        raise AssertionError(
            f"worker {proc.hostname} exited with {proc.returncode} before it was ready\n"
            f"--- worker log ---\n{proc.log_tail()}"
        )


def _stop(proc: WorkerProcess) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.saved_log is None:
        proc.saved_log = proc.log()
