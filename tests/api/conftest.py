"""API test fixtures: a TestClient factory over the parametrized database, a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from api.app import create_app
from scheduler.settings import Settings
from tests.api.support import FakeClock, RecordingNotifier, TestClient
from tests.conftest import DATABASES, LAYER_DATABASES

# The API tests that exercise the store through the API (create, edit, actions, runs,
# listing, backfill, apply, history, counters, readiness) run on every store; add a module
# here when it does too.
_EVERY_STORE = {
    "test_create",
    "test_put_patch",
    "test_actions",
    "test_runs",
    "test_list",
    "test_backfill",
    "test_apply",
    "test_history",
    "test_counters",
    "test_health",
}


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    """One migrated database per kind per session (see ``pytest_generate_tests``)."""
    return new_database_url(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Not where a module brings its own database_url or a test parametrizes it itself.
    if "database_url" not in metafunc.fixturenames or hasattr(metafunc.module, "database_url"):
        return
    marks = metafunc.definition.iter_markers("parametrize")
    if any(mark.args and mark.args[0] == "database_url" for mark in marks):
        return
    core = metafunc.module.__name__.rpartition(".")[2] in _EVERY_STORE
    kinds = DATABASES if core else LAYER_DATABASES
    metafunc.parametrize("database_url", kinds, indirect=True, scope="session")


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
