"""API test fixtures: a TestClient factory over the parametrized database, a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from api.app import create_app
from scheduler.settings import Settings
from tests.api.support import FakeClock, RecordingNotifier, TestClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def make_client(
    engine: Engine,
    settings_factory: Callable[..., Settings],
    clock: FakeClock,
    notifier: RecordingNotifier,
) -> Iterator[Callable[..., TestClient]]:
    """Factory: a TestClient on the test database; keyword arguments override settings."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(settings_factory(**overrides), engine, notifier=notifier, clock=clock)
        client = TestClient(app)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client of an app without API keys."""
    return make_client()
