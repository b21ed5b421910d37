"""No password or API key in any log line or error body, end to end.

The real `sundial migrate`, `api`, `scheduler` and `worker` processes run against
PostgreSQL as a role of their own whose password needs percent-encoding in the URL (trust
authentication lets any password in, but the URL carries it all the same), a private Redis
with `requirepass` (lease, notices, broker and result backend) and API keys. The test drives
a schedule to a succeeded run, makes requests that fail (401, 403, 404, 415, 422 with
bodies Python's json module accepts but the standard does not), starts processes on bad
configurations, then greps every byte the processes wrote and every response body for the
secrets.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.faults.processes import ProcessGroup, RedisServer, Service
from tests.services import PG_ADMIN_URL, free_port, service_missing, unique_name, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


@dataclass
class World:
    """The secrets, the environment carrying them, and everything said back."""

    folder: Path
    env: dict[str, str]
    secrets: dict[str, str]
    said: list[str] = field(default_factory=list)  # response bodies, in order
    groups: list[ProcessGroup] = field(default_factory=list)

    def start(self, command: list[str], name: str, **overrides: str) -> Service:
        group = ProcessGroup(self.folder, {**self.env, **overrides})
        self.groups.append(group)
        return group.start(command, name)


@pytest.fixture
def postgres_role() -> Iterator[tuple[str, str]]:
    """A database owned by a role of its own with a password: (URL, password)."""
    role, database = unique_name("sundial_secret_role"), unique_name("sundial_secret_db")
    password = f"Pg%/:@?#{secrets.token_hex(8)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
            conn.execute(text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
    except Exception as exc:  # any driver error means "no usable server"
        admin.dispose()
        service_missing(f"PostgreSQL at {PG_ADMIN_URL} unreachable: {exc}")
    url = f"postgresql+psycopg://{role}:{quote(password, safe='')}@127.0.0.1:5432/{database}"
    try:
        yield url, password
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture
def world(tmp_path: Path, postgres_role: tuple[str, str]) -> Iterator[World]:
    database_url, pg_password = postgres_role
    redis_server = RedisServer(tmp_path, "redis")
    redis_server.start()
    redis_password = secrets.token_hex(12)
    redis_server.command("CONFIG", "SET", "requirepass", redis_password)
    redis_url = f"redis://:{redis_password}@127.0.0.1:{redis_server.port}"
    write_key, read_key = f"wk-{secrets.token_hex(12)}", f"rk-{secrets.token_hex(12)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")}
    env |= {
        "SUNDIAL_DATABASE_URL": database_url,
        "SUNDIAL_SCHEDULER_METRICS_PORT": "0",  # many replicas on one machine
        "SUNDIAL_REDIS_URL": f"{redis_url}/0",
        "SUNDIAL_RESULT_BACKEND": f"{redis_url}/1",
        "SUNDIAL_API_KEYS": f"{write_key},{read_key}:read",
        "SUNDIAL_LEASE_TTL_SECONDS": "3",
        "SUNDIAL_DATA_DIR": str(tmp_path / "data"),
    }
    found = World(
        tmp_path,
        env,
        {
            "PostgreSQL password": pg_password,
            "PostgreSQL password, URL-encoded": quote(pg_password, safe=""),
            "Redis password": redis_password,
            "write key": write_key,
            "read key": read_key,
        },
    )
    try:
        yield found
    finally:
        for group in found.groups:
            group.stop_all()
        redis_server.kill()


def _exercise_the_api(world: World, base: str) -> None:
    write = {"X-API-Key": world.secrets["write key"]}
    read = {"Authorization": f"Bearer {world.secrets['read key']}"}
    near_miss = {"X-API-Key": world.secrets["write key"][:-1]}
    as_json = {**write, "content-type": "application/json"}
    with httpx.Client(base_url=base, timeout=10) as http:

        def ask(method: str, url: str, **kwargs: Any) -> httpx.Response:
            response = http.request(method, url, **kwargs)
            world.said.append(response.text)
            return response

        echo = {"task": "sundial.echo", "trigger": {"type": "delay", "seconds": 1}}
        created = ask("POST", "/v1/schedules", headers=write, json=echo)
        assert created.status_code == 201, created.text
        schedule = f"/v1/schedules/{created.json()['id']}"

        def succeeded() -> bool:
            items = ask("GET", f"{schedule}/runs", headers=read).json()["items"]
            return bool(items) and items[0]["state"] == "succeeded"

        wait_for(succeeded, 60, "the echo run to succeed", interval=0.2)
        statuses = {
            "no key": ask("GET", "/v1/schedules").status_code,
            "a near miss": ask("GET", "/v1/schedules", headers=near_miss).status_code,
            "read key writing": ask("POST", f"{schedule}/pause", headers=read).status_code,
            "unknown id": ask("GET", "/v1/schedules/no-such", headers=read).status_code,
            "bad query": ask("GET", "/v1/schedules?limit=0", headers=read).status_code,
            "not JSON": ask(
                "POST",
                "/v1/schedules",
                headers={**write, "content-type": "text/plain"},
                content=b"x",
            ).status_code,
        }
        assert statuses == {
            "no key": 401,
            "a near miss": 401,
            "read key writing": 403,
            "unknown id": 404,
            "bad query": 422,
            "not JSON": 415,
        }
        # Bodies Python's json module accepts but the standard does not: 422, not a 500.
        for body in (
            b'{"task": "t", "trigger": {"type": "interval", "seconds": NaN}}',
            b'{"task": "t", "task": "u", "trigger": {"type": "interval", "seconds": 60}}',
            b'{"task": "\\ud800", "trigger": {"type": "interval", "seconds": 60}}',
            b'{"task": "caf\xe9", "trigger": {"type": "interval", "seconds": 60}}',
            b'{"task": "t", "args": [1e400], "trigger": {"type": "interval", "seconds": 60}}',
            b'{"task": "t", "description": "\\u0000", "trigger": {"type": "delay", "seconds": 1}}',
        ):
            response = ask("POST", "/v1/schedules", headers=as_json, content=body)
            assert response.status_code == 422, response.text
        ready = ask("GET", "/readyz")
        assert ready.json()["checks"]["redis"] == "ok", ready.text
        ask("GET", "/metrics")


def _reports_refused_password(service: Service) -> bool:
    return "invalid username-password pair" in service.log()


def _start_bad_configurations(world: World) -> list[Service]:
    """Processes on settings that are wrong: two exit, two retry; none may echo a value."""
    bad_key, wrong_password = f"bk-{secrets.token_hex(12)}", secrets.token_hex(12)
    world.secrets |= {"malformed key": bad_key, "wrong Redis password": wrong_password}
    redis_host = world.env["SUNDIAL_REDIS_URL"].rpartition("@")[2]
    wrong_redis = f"redis://:{wrong_password}@{redis_host}"
    unreachable = world.env["SUNDIAL_DATABASE_URL"].replace(":5432/", f":{free_port()}/")
    keys = f"ok-key,{bad_key}:admin"
    return [
        world.start(["api", "--port", str(free_port())], "malformed-keys", SUNDIAL_API_KEYS=keys),
        world.start(["migrate"], "unreachable-database", SUNDIAL_DATABASE_URL=unreachable),
        world.start(["scheduler"], "wrong-redis-scheduler", SUNDIAL_REDIS_URL=wrong_redis),
        world.start(["worker", "--pool=solo"], "wrong-redis-worker", SUNDIAL_REDIS_URL=wrong_redis),
    ]


def _await_bad_configurations(services: list[Service]) -> None:
    malformed_keys, unreachable_database, *wrong_redis = services
    for service in (malformed_keys, unreachable_database):
        assert service.proc.wait(timeout=60) != 0, service.log()
    assert "SUNDIAL_API_KEYS" in malformed_keys.log()
    for service in wrong_redis:
        wait_for(
            functools.partial(_reports_refused_password, service),
            60,
            f"{service.name} to report the refused password",
            interval=0.2,
        )


def test_no_secret_reaches_a_log_line_or_an_error_body(world: World) -> None:
    migrate = world.start(["migrate"], "migrate")
    assert migrate.proc.wait(timeout=120) == 0, migrate.log()
    port = free_port()
    services = [
        migrate,
        # With its access log: the line per request is where a URL with a key would show.
        world.start(["api", "--port", str(port)], "api", SUNDIAL_API_ACCESS_LOG="true"),
        world.start(["scheduler"], "scheduler"),
        world.start(["worker", "--pool=solo"], "worker"),
        *_start_bad_configurations(world),
    ]
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(f"{base}/healthz"), 60, "the API to answer")

    _exercise_the_api(world, base)
    _await_bad_configurations(services[4:])
    for group in world.groups:
        group.stop_all()

    logs = {service.name: service.log() for service in services}
    leaks = [
        f"{what} in {where}"
        for what, secret in world.secrets.items()
        for where, said in [*logs.items(), *(("a response body", b) for b in world.said)]
        if secret in said
    ]
    assert leaks == []
    # The lines that used to carry the secrets are there, with the secrets hidden.
    assert ":***@127.0.0.1:5432/" in logs["migrate"]
    assert "redis://:**@127.0.0.1" in logs["worker"]
    assert '"GET /v1/schedules HTTP/1.1" 401' in logs["api"]
    assert "Traceback" not in logs["api"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
