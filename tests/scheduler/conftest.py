"""A live leader for tests with a real broker and worker: the cycle is stepped by the test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine

from scheduler.firing.dispatch import create_publisher, create_publisher_app
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.runloop import FireCycle
from scheduler.runs.tracking import EventTracker
from scheduler.settings import Settings
from scheduler.store.jobstore import SqlJobStore
from scheduler.timing.clock import utcnow
from tests.services import unique_name, wait_for

T = TypeVar("T")
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class LiveLeader:
    """A leader on the real Redis broker whose cycle the test steps."""

    engine: Engine
    settings: Settings
    queue: str
    cycle: FireCycle

    def drive(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """Step the leader's cycle until ``probe`` holds."""

        def step() -> T | None:
            self.cycle()
            return probe()

        return wait_for(step, timeout, what)


@pytest.fixture
def live_leader(engine: Engine, settings_factory: Any, redis_url: str) -> Iterator[LiveLeader]:
    settings: Settings = settings_factory(redis_url=redis_url)
    app = create_publisher_app(settings)
    lease = SqlLease(engine, Replica("r1", "h", 1), ttl_s=600)
    assert lease.acquire()
    outbox = Outbox(engine, create_publisher(app), lease, utcnow, batch_size=100)
    cycle = FireCycle(engine, lease, outbox, SqlJobStore(engine), poll_s=0.25, batch_size=100)
    tracker = EventTracker(app, engine, active=lease.held)
    tracker.start()
    wait_for(tracker.ready.is_set, 10, "event receiver")
    try:
        yield LiveLeader(engine, settings, unique_name("q"), cycle)
    finally:
        tracker.stop()
        outbox.close()
        app.close()


@pytest.fixture
def token(engine: Engine) -> int:
    """The fencing token of a leadership term held for the whole test (store-level tests)."""
    lease = SqlLease(engine, Replica("r1", "h", 1), ttl_s=600, clock=lambda: T0)
    assert lease.acquire() and lease.token is not None
    return lease.token


class Receiver(BaseHTTPRequestHandler):
    """A real HTTP endpoint on loopback that records what it is sent; ``answers`` are
    the statuses of the next requests (then 204)."""

    answers: list[int]
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        status = self.answers.pop(0) if self.answers else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"answers": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts", handler
    finally:
        server.shutdown()
        server.server_close()
