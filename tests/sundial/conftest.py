"""A real ``sundial api`` process per database kind, with a read-write and a read-only key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from scheduler.runs.alerts import AlertKind, raise_alert
from sundial.client import Client
from tests.conftest import DATABASES
from tests.services import free_port, unique_name, wait_for

WRITE_KEY = "rw-" + "s3cret-write"
READ_KEY = "ro-" + "s3cret-read"
# The names the history records for the two keys (SUNDIAL_API_KEYS NAME=KEY entries).
WRITER, READER = "ci-writer", "auditor"


@dataclass(frozen=True)
class LiveApi:
    """A running API: its URL, keys and the database it serves."""

    url: str
    kind: str
    database_url: str

    def raise_alert(self, schedule_id: str, kind: AlertKind, message: str) -> None:
        """Raise an alert in the store, as the leader would (this API runs no leader)."""
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                raise_alert(
                    conn,
                    schedule_id=schedule_id,
                    kind=kind,
                    subject="fire-1",
                    message=message,
                    now=datetime.now(UTC),
                )
        finally:
            engine.dispose()

    def client(self, key: str | None = WRITE_KEY) -> Client:
        """A client with ``key`` (None: no key at all)."""
        return Client(self.url, key or "")

    def env(self, key: str | None = WRITE_KEY) -> dict[str, str]:
        """Environment of a client command pointed at this API."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")}
        env["SUNDIAL_API_URL"] = self.url
        if key is not None:
            env["SUNDIAL_API_KEY"] = key
        return env


@pytest.fixture(scope="session", params=DATABASES)
def live_api(
    request: pytest.FixtureRequest,
    new_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    """``sundial api`` in a subprocess on a free port, on a fresh database of each kind."""
    database_url = new_database_url(request.param)
    workdir = tmp_path_factory.mktemp("live-api")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")}
    env.update(
        SUNDIAL_DATABASE_URL=database_url,
        SUNDIAL_API_KEYS=f"{WRITER}={WRITE_KEY},{READER}={READ_KEY}:read",
        SUNDIAL_DATA_DIR=str(workdir / "data"),
        PYTHONUNBUFFERED="1",
    )
    log_path = workdir / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sundial", "api", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"sundial api exited:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, 60, "sundial api to be ready", interval=0.1)
        yield LiveApi(url, request.param, database_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    assert WRITE_KEY not in log_text and READ_KEY not in log_text, "an API key reached the log"


@pytest.fixture
def name() -> Callable[[str], str]:
    """Factory of ids no other test on the shared live database uses."""
    return unique_name


@pytest.fixture
def tmp_files(tmp_path: Path) -> Callable[[str, str], Path]:
    """Factory: write a file under the test's temporary directory."""

    def write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
