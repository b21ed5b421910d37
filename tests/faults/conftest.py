"""Fixtures of the fault-injection suite: a whole cluster per test, logs on failure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster, build_cluster


def pytest_configure(config: pytest.Config) -> None:
    # Also belongs in pyproject's markers list; registered here so the suite runs either way.
    config.addinivalue_line(
        "markers", "faults: fault-injection scenarios on real processes (slow, minutes)"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, new_database_url: Callable[[str], str]
) -> Iterator[Cluster]:
    """Fresh services for one scenario; every process is stopped afterwards. The store is
    PostgreSQL and the broker a private Redis unless the test parametrizes ``cluster``
    indirectly: ``mariadb`` for the store, ``rabbitmq`` for the broker."""
    kind = getattr(request, "param", "postgresql")
    broker = "rabbitmq" if kind == "rabbitmq" else "redis"
    store = "mariadb" if kind == "mariadb" else "postgresql"
    if broker == "rabbitmq":
        request.getfixturevalue("amqp_url")  # skips (or fails in CI) without RabbitMQ
    with build_cluster(tmp_path, new_database_url(store), broker) as made:
        try:
            yield made
        finally:
            if _failed(request):
                sys.stderr.write(f"{made.procs.tails()}\n")
