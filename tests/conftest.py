"""Fixtures shared by every test: real databases (SQLite, PostgreSQL, MariaDB), Redis,
settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from sqlalchemy import Engine, create_engine, delete, insert, text
from sqlalchemy.engine import make_url

from scheduler.firing.embedded_broker import STATE_FILE, EmbeddedBroker
from scheduler.settings import Settings
from scheduler.store import migrate
from scheduler.store.db import make_engine
from scheduler.store.models import LEADER_ROW, leader, metadata
from tests.services import (
    AMQP_TEST_URL,
    MYSQL_ADMIN_URL,
    PG_ADMIN_URL,
    REDIS_TEST_URL,
    service_missing,
    unique_name,
)

# Every store: the store, claim, lease and migration tests and the core API tests run on
# each. Tests of the layers above the store (most API tests, the CLI against a live API)
# run on SQLite and PostgreSQL only, to keep the gate inside its time.
DATABASES = ["sqlite", "postgresql", "mariadb"]
LAYER_DATABASES = ["sqlite", "postgresql"]
# The server each kind of test database lives on, and its name for the missing-service rule.
_SERVERS = {"postgresql": (PG_ADMIN_URL, "PostgreSQL"), "mariadb": (MYSQL_ADMIN_URL, "MariaDB")}


def create_server_database(kind: str) -> str:
    admin_url, server = _SERVERS[kind]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = unique_name("sundial_test")
    # A plain server default charset: the schema must set utf8mb4 and its collation itself.
    quoted = admin.dialect.identifier_preparer.quote(name)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    except Exception as exc:  # any driver error means "no usable server"
        service_missing(f"{server} at {admin_url} unreachable: {exc}")
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_server_database(url: str) -> None:
    """Drop a test database, disconnecting whatever still uses it."""
    parsed = make_url(url)
    name = parsed.database
    kind = "postgresql" if parsed.get_backend_name() == "postgresql" else "mariadb"
    admin = create_engine(_SERVERS[kind][0], isolation_level="AUTOCOMMIT")
    statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    if kind == "mariadb":
        # MariaDB has no FORCE: the drop waits on metadata locks of open transactions,
        # and every engine of the test is disposed by then.
        statement = f"DROP DATABASE IF EXISTS `{name}`"
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


@pytest.fixture(scope="session")
def new_database_url(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, migrated database of the given kind, dropped at the end."""
    made: list[str] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sundial.db'}"
        else:
            url = create_server_database(kind)
            made.append(url)
        migrate.upgrade(url)
        return url

    yield make
    for url in made:
        drop_server_database(url)


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    """One migrated database per kind per session; tests over it are parametrized."""
    return new_database_url(request.param)


def reset_database(engine: Engine) -> None:
    """Empty every table and restore the leader row, keeping the fencing counter growing."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is not leader:
                conn.execute(delete(table))
        conn.execute(
            leader.update()
            .where(leader.c.name == LEADER_ROW)
            .values(holder=None, hostname=None, pid=None, since=None, lease_expires_at=None)
        )
        if conn.execute(leader.select()).first() is None:
            conn.execute(insert(leader).values(name=LEADER_ROW, fencing_token=0))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the session's migrated database, emptied after each test."""
    eng = make_engine(database_url)
    try:
        yield eng
    finally:
        reset_database(eng)
        eng.dispose()


@pytest.fixture(autouse=True)
def _stop_embedded_brokers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop any embedded broker a test (or a process it ran) started in its tmp_path, rather
    than leave it to stop itself once idle."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")
    yield
    for state in tmp_path.rglob(STATE_FILE):
        EmbeddedBroker(state.parent).stop()


@pytest.fixture
def settings_factory(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: Settings on the test database, with overrides as keyword arguments."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, "data_dir": tmp_path / "data"}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database; tests namespace their keys with :func:`unique_name`."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_TEST_URL} unreachable: {exc}")
    finally:
        client.close()
    yield REDIS_TEST_URL


@pytest.fixture
def amqp_url() -> str:
    """The machine's RabbitMQ; tests use queues of their own (:func:`unique_name`) and
    delete them with :func:`delete_amqp_queues`."""
    try:
        with Connection(AMQP_TEST_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # any kombu/py-amqp error means "no usable server"
        service_missing(f"RabbitMQ at {AMQP_TEST_URL} unreachable: {exc}")
    return AMQP_TEST_URL


def delete_amqp_queues(url: str, *names: str) -> None:
    """Delete a test's queues (and what they still hold) from the shared RabbitMQ."""
    with Connection(url, connect_timeout=2) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            finally:
                channel.close()
