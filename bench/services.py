"""The machine's PostgreSQL (or MariaDB) and Redis as the suite uses them: a fresh
database per case, one Redis DB number per run, and the facts about the machine recorded
with the results."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
from kombu.connection import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scheduler.store import migrate

PG_ADMIN_URL = os.environ.get(
    "SUNDIAL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN_URL = os.environ.get("SUNDIAL_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
# `--store`: where sundial's own databases live. The baseline stays on PostgreSQL.
STORES = {"postgresql": PG_ADMIN_URL, "mariadb": MYSQL_ADMIN_URL}
REDIS_BASE_URL = os.environ.get("SUNDIAL_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
AMQP_URL = os.environ.get("SUNDIAL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = ("redis", "rabbitmq")
REPO = Path(__file__).resolve().parent.parent


def unique_name(prefix: str) -> str:
    """A name no other run uses: databases and queues."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Services:
    """Where this run's databases and Redis live."""

    pg_admin_url: str = PG_ADMIN_URL
    redis_base_url: str = REDIS_BASE_URL
    redis_db: int = 10
    # Where the messages go: the run's Redis DB, or RabbitMQ (the lease and notices stay
    # on Redis either way, as in a deployment with both).
    broker: str = "redis"
    amqp_url: str = AMQP_URL
    store: str = "postgresql"

    @property
    def store_admin_url(self) -> str:
        """The server sundial's databases are created on."""
        return STORES[self.store]

    @property
    def redis_url(self) -> str:
        """The run's Redis DB: lease key, notices and (on Redis) the broker's queue lists."""
        return f"{self.redis_base_url.rstrip('/')}/{self.redis_db}"

    @property
    def broker_url(self) -> str:
        """The broker sundial and the baseline publish to."""
        return self.amqp_url if self.broker == "rabbitmq" else self.redis_url

    def check(self) -> None:
        """Fail early, with the reason, when a service is unreachable."""
        for url in {self.pg_admin_url, self.store_admin_url}:
            admin = create_engine(url)
            try:
                with admin.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                admin.dispose()
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
        try:
            client.ping()
            # A lease key left by an earlier, killed run would hold leadership for a TTL.
            client.delete("sundial:leader")
        finally:
            client.close()
        if self.broker == "rabbitmq":
            with Connection(self.amqp_url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)

    @contextmanager
    def database(self, prefix: str, *, sundial_schema: bool = True) -> Iterator[str]:
        """A fresh database (migrated to head for sundial), dropped afterwards: on the
        ``store`` server for sundial, on PostgreSQL for the baseline."""
        name = unique_name(f"bench_{prefix}").lower()
        admin_url = self.store_admin_url if sundial_schema else self.pg_admin_url
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        quoted = admin.dialect.identifier_preparer.quote(name)
        force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {quoted}"))
            url = make_url(admin_url).set(database=name)
            rendered = url.render_as_string(hide_password=False)
            if sundial_schema:
                migrate.upgrade(rendered)
            yield rendered
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
            admin.dispose()

    def drop_queue(self, queue: str) -> None:
        """Remove a queue's list and kombu's binding keys for it (on RabbitMQ, the queue)."""
        if self.broker == "rabbitmq":
            with Connection(self.amqp_url, connect_timeout=2) as conn:
                conn.default_channel.queue_delete(queue)
            return
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        finally:
            client.close()


def _cpu_model() -> str:
    try:
        text_ = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text_, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _ram_gib() -> float | None:
    try:
        text_ = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s*(\d+) kB", text_, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def git_revision() -> str:
    """The code under test: ``SUNDIAL_BENCH_REVISION`` (for a snapshot without ``.git``),
    else the short commit, ``+dirty`` when tracked files differ from it."""
    if os.environ.get("SUNDIAL_BENCH_REVISION"):
        return os.environ["SUNDIAL_BENCH_REVISION"]
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def _server_version(admin_url: str, query: str) -> str:
    """What ``query`` answers on the database server at ``admin_url``: its version."""
    admin = create_engine(admin_url)
    try:
        with admin.connect() as conn:
            return str(conn.execute(text(query)).scalar())
    finally:
        admin.dispose()


def machine_info(services: Services) -> dict[str, Any]:
    """What the numbers were measured on."""
    pg_version = _server_version(services.pg_admin_url, "SHOW server_version")
    store_version = pg_version
    if services.store != "postgresql":
        store_version = _server_version(services.store_admin_url, "SELECT VERSION()")
    client = redis.Redis.from_url(services.redis_url)
    try:
        redis_version = str(client.info("server").get("redis_version"))
    finally:
        client.close()
    versions = {}
    for package in (
        "apscheduler",
        "celery",
        "kombu",
        "amqp",
        "redis",
        "sqlalchemy",
        "psycopg",
        "pymysql",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "store": f"{services.store} {store_version}",
        "redis": redis_version,
        "broker": services.broker,
        "packages": versions,
        "git": git_revision(),
    }
