"""The real processes of a fault test and the faults done to them.

* :class:`RedisServer` — a ``redis-server`` of the test's own on a free port, so it can be
  flushed, killed, restarted, paused or frozen without touching the machine's shared Redis.
* :class:`TcpProxy` — a forwarder the test can :meth:`~TcpProxy.cut` (every connection
  reset, new ones refused) and :meth:`~TcpProxy.restore`: PostgreSQL or broker outages
  without stopping a shared server.
* :class:`ProcessGroup` — ``sundial scheduler`` and ``sundial api`` subprocesses, each
  logging to a file whose tail is printed when a test fails.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.services import free_port, service_missing, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 4000
STOP_TIMEOUT_S = 15.0


class RedisServer:
    """A private ``redis-server`` that persists nothing (a restart comes back empty)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.folder = folder
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it answers PING."""
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--dir", str(self.folder)]
        try:
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except FileNotFoundError:
            service_missing("redis-server is not installed")
        wait_for(self._answers, 10, f"redis-server {self.name} on port {self.port}")

    def _answers(self) -> bool:
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self, timeout: float = 5.0) -> redis.Redis:
        """A new client; the caller closes it."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def command(self, *args: str) -> object:
        """Run one command on a short-lived connection."""
        client = self.client()
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server is gone, with every key it held."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def _reset(sock: socket.socket) -> None:
    """Close with RST, waking any thread blocked reading it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; :meth:`cut` makes the service unreachable."""

    def __init__(self, target_port: int, name: str, target_host: str = "127.0.0.1") -> None:
        self.name = name
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{name}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                refuse = self._cut
            if refuse:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), name=f"proxy-{self.name}", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Neither protocol half-closes: when one direction ends, the connection has.
            for sock in (src, dst):
                with self._lock:
                    self._open.discard(sock)
                _reset(sock)

    def cut(self) -> None:
        """Reset every connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._cut = True
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Cut everything and stop listening."""
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)


@dataclass
class Service:
    """One ``sundial`` subprocess and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while it has not exited."""
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send a signal (SIGKILL, SIGSTOP, SIGCONT, SIGTERM ...)."""
        self.proc.send_signal(signum)

    def log(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        """The end of its log, for failure messages."""
        return self.log()[-LOG_TAIL_CHARS:]


class ProcessGroup:
    """The ``sundial`` subprocesses of one test, all started with the same environment."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.folder = folder
        self.env = dict(env)
        self.services: list[Service] = []

    def start(
        self,
        command: list[str],
        name: str,
        hook: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Service:
        """Start ``sundial <command>`` from the repository root; ``hook`` (a hook name and
        its trigger file) runs it under :mod:`tests.faults.hooks`; ``env`` is laid over the
        group's environment."""
        log_path = self.folder / f"{name}.log"
        runner = ["tests.faults.hooks", *hook] if hook else ["sundial"]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", *runner, *command],
                cwd=REPO_ROOT,
                env=self.env | dict(env or {}),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, proc, log_path)
        self.services.append(service)
        return service

    def start_scheduler(
        self, hook: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> Service:
        """One more ``sundial scheduler`` replica, under a fault hook if given."""
        count = sum(1 for s in self.services if s.name.startswith("scheduler"))
        return self.start(["scheduler"], f"scheduler-{count + 1}", hook, env)

    def schedulers(self) -> list[Service]:
        """Every replica started, dead or alive."""
        return [s for s in self.services if s.name.startswith("scheduler")]

    def by_pid(self, pid: int) -> Service:
        """The service with this process id."""
        (found,) = [s for s in self.services if s.pid == pid]
        return found

    def stop_all(self) -> None:
        """SIGTERM everything still running (thawing the frozen first); SIGKILL stragglers."""
        for service in self.services:
            if service.alive():
                service.signal(signal.SIGCONT)
                service.signal(signal.SIGTERM)
        for service in self.services:
            try:
                service.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()

    def tails(self) -> str:
        """Every log's tail, labelled, for a failing test's output."""
        return "\n".join(
            f"--- {s.name} (pid {s.pid}, exit {s.proc.poll()}) ---\n{s.tail()}"
            for s in self.services
        )
