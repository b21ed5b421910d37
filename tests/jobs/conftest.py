"""Fixtures for the jobs tests: a local HTTP receiver and a publishing Celery app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery import Celery

from jobs.app import create_celery
from scheduler.settings import Settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Jobs never touch the job store: one unmigrated SQLite URL, so tests run once."""
    return f"sqlite:///{tmp_path / 'unused.db'}"


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP server on 127.0.0.1 answering every request with one fixed response."""

    port: int
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the receiver."""
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def http_receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory: start a receiver answering ``status`` with ``body``; stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int = 200, body: bytes = b"ok") -> Receiver:
        receiver = Receiver(port=0)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append(
                    Received(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=self.rfile.read(length),
                    )
                )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        receiver.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def celery_client() -> Iterator[Callable[[Settings], Celery]]:
    """Factory: a publishing Celery app (the scheduler's side), closed after the test."""
    apps: list[Celery] = []

    def make(settings: Settings) -> Celery:
        app = create_celery(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
