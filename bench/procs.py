"""Child processes of a benchmark case: spawned with a clean ``SUNDIAL_*`` environment,
logged to files, watched for CPU and memory, and always killed on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from sqlalchemy import Engine, select

from bench.services import REPO
from scheduler.store.models import LEADER_ROW, leader

T = TypeVar("T")
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """A case could not be measured (a process died, a wait timed out)."""


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``probe`` until it returns something truthy; :class:`BenchError` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def sleep_until(instant: float) -> None:
    """Sleep until wall-clock ``instant`` (epoch seconds)."""
    remaining = instant - time.time()
    if remaining > 0:
        time.sleep(remaining)


@dataclass
class Child:
    """One process we started."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        """Raise with the end of its log when the process has died."""
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")


@dataclass
class Processes:
    """Spawns children into ``log_dir``; :meth:`stop_all` ends every one still running."""

    log_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> Child:
        """Start ``python args...`` with our env on top of the parent's, minus SUNDIAL_*."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")}
        base["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        base["PYTHONUNBUFFERED"] = "1"
        base.update(env)
        base.update(self.extra_env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}-{len(self.children)}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            [sys.executable, *args],
            env=base,
            cwd=self.log_dir,  # no stray .env is read from the caller's directory
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, popen, log_path, time.time(), log_file)
        self.children.append(child)
        return child

    def sundial(self, command: str, env: Mapping[str, str], *extra: str) -> Child:
        """``sundial scheduler`` or ``sundial api --port P``."""
        return self.spawn(command, ["-m", "sundial", command, *extra], env)

    def stop(self, child: Child, sig: int = signal.SIGTERM) -> None:
        """Signal and reap one child, killing it if it does not stop in time."""
        if child.alive():
            try:
                child.popen.send_signal(sig)
                child.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait(timeout=STOP_TIMEOUT_S)
        child.log_file.close()

    def stop_all(self) -> None:
        """Stop every child still running (last started first)."""
        for child in reversed(self.children):
            try:
                self.stop(child)
            except Exception:  # a stuck child must not keep the others alive
                child.popen.kill()
        self.children.clear()


@contextmanager
def processes(log_dir: Path, extra_env: Mapping[str, str]) -> Iterator[Processes]:
    """A :class:`Processes` whose children are stopped however the block ends."""
    procs = Processes(log_dir, extra_env)
    try:
        yield procs
    finally:
        procs.stop_all()


def sundial_env(
    database_url: str, redis_url: str, broker_url: str | None = None, **settings: object
) -> dict[str, str]:
    """``SUNDIAL_*`` variables for a replica or the API of one case (the broker is the
    Redis unless ``broker_url`` says otherwise)."""
    env = {
        "SUNDIAL_DATABASE_URL": database_url,
        "SUNDIAL_SCHEDULER_METRICS_PORT": "0",  # many replicas on one machine
        "SUNDIAL_REDIS_URL": redis_url,
        "SUNDIAL_BROKER_URL": broker_url or redis_url,
    }
    for key, value in settings.items():
        env[f"SUNDIAL_{key.upper()}"] = str(value)
    return env


def leader_pid(engine: Engine) -> int | None:
    """The pid recorded by the current lease holder, if any."""
    with engine.connect() as conn:
        row = conn.execute(
            select(leader.c.holder, leader.c.pid).where(leader.c.name == LEADER_ROW)
        ).first()
    if row is None or row.holder is None:
        return None
    return int(row.pid)


def wait_leader(engine: Engine, children: list[Child], timeout: float) -> int:
    """Wait until one of ``children`` holds the lease; its pid."""
    pids = {c.pid for c in children}

    def probe() -> int | None:
        for child in children:
            child.check_alive()
        pid = leader_pid(engine)
        return pid if pid in pids else None

    return wait_for(probe, timeout, "a scheduler replica to take the lease")


def rss_bytes(pid: int) -> int | None:
    """Resident set size from ``/proc/PID/status`` (VmRSS), None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass(frozen=True)
class ProcStat:
    """What ``/proc/PID/stat`` says of one process."""

    pid: int
    ppid: int
    comm: str
    cpu_s: float  # user + system


def _proc_stat(pid: int | str) -> ProcStat | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcStat(
        pid=int(pid),
        ppid=int(fields[1]),
        comm=stat[stat.index("(") + 1 : stat.rindex(")")],
        cpu_s=(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
    )


def _all_procs() -> list[ProcStat]:
    found = (_proc_stat(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())
    return [p for p in found if p is not None]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used by ``pid`` (``/proc/PID/stat``), None once gone."""
    stat = _proc_stat(pid)
    return None if stat is None else stat.cpu_s


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and every process below it (a prefork worker's children do
    the work), None once ``pid`` is gone."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    children: dict[int, list[ProcStat]] = {}
    for proc in _all_procs():
        children.setdefault(proc.ppid, []).append(proc)
    below = list(children.get(pid, []))
    while below:
        child = below.pop()
        own += child.cpu_s
        below.extend(children.get(child.pid, []))
    return own


def load_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of one side of a load case: this process alone (the clients are its
    threads; its tree would add the servers it started), any other process with its tree."""
    return cpu_seconds(pid) if pid == os.getpid() else tree_cpu_seconds(pid)


SERVERS = ("postgres", "redis-server")


def servers_cpu_seconds(names: tuple[str, ...] = SERVERS) -> dict[str, float]:
    """CPU seconds used so far by every process of each named server (``comm``), e.g. all
    PostgreSQL backends together; backends that exit meanwhile drop out of the sum."""
    totals = dict.fromkeys(names, 0.0)
    for proc in _all_procs():
        if proc.comm in totals:
            totals[proc.comm] += proc.cpu_s
    return totals


class CpuWatch:
    """CPU used by the leader and by the servers between :meth:`start` and :meth:`stop`,
    as % of one core over that wall time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = 0.0
        self._pid0: float | None = None
        self._servers0: dict[str, float] = {}
        self.pct: dict[str, float | None] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._pid0 = cpu_seconds(self.pid)
        self._servers0 = servers_cpu_seconds()

    def stop(self) -> dict[str, float | None]:
        wall = max(1e-9, time.monotonic() - self._t0)
        now = cpu_seconds(self.pid)
        self.pct = {
            "scheduler": None
            if now is None or self._pid0 is None
            else 100 * (now - self._pid0) / wall
        }
        for name, used in servers_cpu_seconds().items():
            self.pct[name] = 100 * (used - self._servers0.get(name, 0.0)) / wall
        return self.pct


class Sampler:
    """Samples a process's RSS from a thread until stopped; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid = pid
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.peak_rss = 0
        self.last_rss = 0

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        """Take one reading now."""
        rss = rss_bytes(self.pid)
        if rss is not None:
            self.last_rss = rss
            self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)


def kill_hard(child: Child) -> float:
    """SIGKILL, like a crashed host; returns the instant of the kill."""
    at = time.time()
    os.kill(child.pid, signal.SIGKILL)
    child.popen.wait(timeout=STOP_TIMEOUT_S)
    return at
