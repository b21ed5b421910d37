"""Reaching the machine's real services, and the skip-or-fail rule when one is missing."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

PG_ADMIN_URL = os.environ.get(
    "SUNDIAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN_URL = os.environ.get("SUNDIAL_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
T = TypeVar("T")

REDIS_TEST_URL = os.environ.get("SUNDIAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# The machine's RabbitMQ, default vhost: tests keep apart by unique queue names.
AMQP_TEST_URL = os.environ.get("SUNDIAL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The fault scenarios' replicas with fire-ahead on (a window in ms), e.g. 500; unset: off.
FAULTS_FIRE_AHEAD_MS = os.environ.get("SUNDIAL_TEST_FIRE_AHEAD_MS")


def services_required() -> bool:
    """CI sets SUNDIAL_TEST_REQUIRE_SERVICES=1: a missing service then fails the run."""
    return os.environ.get("SUNDIAL_TEST_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip locally, fail in CI, with the same clear reason."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A name no other test run uses (databases, Redis keys, queues)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        # A poll interval, not a fixed wait: the loop ends as soon as the condition holds.
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def scrape_metrics(port: int) -> dict[str, float]:
    """Every sample a Prometheus endpoint on 127.0.0.1:``port`` serves, keyed
    ``name{label=value,…}`` (labels sorted; no braces without labels)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
