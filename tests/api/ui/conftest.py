"""Dashboard fixtures: clients of apps with and without API keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.support import TestClient
from tests.api.ui.support import KEYS, WRITE_KEY, login


@pytest.fixture
def keyed(make_client: Callable[..., TestClient]) -> TestClient:
    """A client of an app with a write key and a read-only key, not logged in to the
    dashboard; its REST calls (``/v1``) carry the write key, which the dashboard ignores."""
    client = make_client(api_keys=KEYS)
    client.headers["X-API-Key"] = WRITE_KEY
    return client


@pytest.fixture
def writer(keyed: TestClient) -> TestClient:
    """A client logged in with the write key."""
    assert login(keyed, WRITE_KEY).status_code == 303
    return keyed
