"""The machine's PostgreSQL and Redis as the suite uses them: a fresh database per case,
one Redis DB number per run, and the facts about the machine recorded with the results."""

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
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scheduler.store import migrate

PG_ADMIN_URL = os.environ.get(
    "SUNDIAL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("SUNDIAL_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
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

    @property
    def redis_url(self) -> str:
        """The run's Redis DB: lease key, notices and the broker's queue lists."""
        return f"{self.redis_base_url.rstrip('/')}/{self.redis_db}"

    def check(self) -> None:
        """Fail early, with the reason, when a service is unreachable."""
        admin = create_engine(self.pg_admin_url)
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

    @contextmanager
    def database(self, prefix: str, *, sundial_schema: bool = True) -> Iterator[str]:
        """A fresh PostgreSQL database (migrated to head for sundial), dropped afterwards."""
        name = unique_name(f"bench_{prefix}").lower()
        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(self.pg_admin_url).set(database=name)
            rendered = url.render_as_string(hide_password=False)
            if sundial_schema:
                migrate.upgrade(rendered)
            yield rendered
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    def drop_queue(self, queue: str) -> None:
        """Remove a queue's list and kombu's binding keys for it."""
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


def machine_info(services: Services) -> dict[str, Any]:
    """What the numbers were measured on."""
    admin = create_engine(services.pg_admin_url)
    try:
        with admin.connect() as conn:
            pg_version = str(conn.execute(text("SHOW server_version")).scalar())
    finally:
        admin.dispose()
    client = redis.Redis.from_url(services.redis_url)
    try:
        redis_version = str(client.info("server").get("redis_version"))
    finally:
        client.close()
    versions = {}
    for package in ("apscheduler", "celery", "kombu", "redis", "sqlalchemy", "psycopg"):
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
        "redis": redis_version,
        "packages": versions,
        "git": git_revision(),
    }
