"""Two real ``sundial scheduler`` processes on PostgreSQL and a private Redis, each scraped
on its own metrics port: the leader reports its term and what it fires, the follower that
it does not lead; the leader's heartbeat leaves the same figures in its replica row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from scheduler.leadership.notices import CHANNEL
from scheduler.metrics import Snapshot
from scheduler.store import migrate
from scheduler.store.db import make_engine
from scheduler.store.models import replicas
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule
from tests.faults.processes import RedisServer
from tests.services import free_port, scrape_metrics, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def scrape(self) -> dict[str, float]:
        """Every sample on its metrics port, keyed ``name{label=value,…}``."""
        if self.proc.poll() is not None:
            raise AssertionError(f"scheduler exited:\n{self.log.read_text()[-3000:]}")
        return scrape_metrics(self.port)

    def answers(self) -> dict[str, float] | None:
        try:
            return self.scrape()
        except httpx.TransportError:
            return None


@pytest.fixture
def world(
    tmp_path: Path, new_database_url: Callable[[str], str]
) -> Iterator[tuple[Engine, RedisServer, dict[str, str]]]:
    url = new_database_url("postgresql")
    migrate.upgrade(url)
    engine = make_engine(url)
    server = RedisServer(tmp_path, "redis")
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")} | {
        "SUNDIAL_DATABASE_URL": url,
        "SUNDIAL_REDIS_URL": server.url,
        "SUNDIAL_DATA_DIR": str(tmp_path / "data"),
        "SUNDIAL_LEASE_TTL_SECONDS": "3",
        "SUNDIAL_SCHEDULER_METRICS_ADDR": "127.0.0.1",
    }
    try:
        yield engine, server, env
    finally:
        server.kill()
        engine.dispose()


def _start(tmp_path: Path, env: dict[str, str], name: str) -> Replica:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sundial", "scheduler"],
            cwd=tmp_path,
            env=env | {"SUNDIAL_SCHEDULER_METRICS_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Replica(proc, port, log)


def test_the_leader_and_a_follower_report_their_own_metrics(
    tmp_path: Path, world: tuple[Engine, RedisServer, dict[str, str]]
) -> None:
    engine, server, env = world
    # Both start together (a process takes seconds to start on a busy machine); whichever
    # takes the lease is "first".
    started = [_start(tmp_path, env, "a"), _start(tmp_path, env, "b")]
    try:

        def roles() -> tuple[Replica, Replica] | None:
            figures = [replica.answers() for replica in started]
            if any(f is None for f in figures):
                return None
            leads = [f["sundial_scheduler_leader"] for f in figures if f is not None]
            if sorted(leads) != [0, 1]:
                return None
            return (started[0], started[1]) if leads[0] == 1 else (started[1], started[0])

        first, second = wait_for(roles, 60, "both replicas to serve metrics, one leading")
        follower = second.scrape()
        assert follower["sundial_scheduler_leader"] == 0
        assert follower["sundial_scheduler_fencing_term"] == 0

        now = utcnow()
        for i in range(3):
            add_schedule(engine, f"every1-{i}", {"type": "interval", "seconds": 1}, now)
        server.command("PUBLISH", CHANNEL, "*")

        published = "sundial_scheduler_fires_total{outcome=published}"

        def at_least(count: float) -> dict[str, float] | None:
            figures = first.scrape()
            return figures if figures[published] >= count else None

        leader = wait_for(lambda: at_least(6), 20, "the leader to publish six fires")
        assert leader["sundial_scheduler_leader"] == 1
        assert leader["sundial_scheduler_fencing_term"] > 0
        assert leader["sundial_scheduler_fire_lateness_seconds_count"] >= 6
        assert leader["sundial_scheduler_runs_published_total{trigger=schedule}"] >= 6
        assert leader["sundial_scheduler_claim_duration_seconds_count"] > 0
        assert leader["sundial_scheduler_publish_duration_seconds_count"] > 0
        # Nothing consumes the queue: the broker holds the messages, the outbox is empty.
        assert leader["sundial_scheduler_broker_refusals_total"] == 0
        later = wait_for(
            lambda: at_least(leader[published] + 1), 10, "the published counter to keep increasing"
        )
        assert (
            later["sundial_scheduler_fire_lateness_seconds_count"]
            > leader["sundial_scheduler_fire_lateness_seconds_count"]
        )
        follower = second.scrape()
        assert follower["sundial_scheduler_leader"] == 0
        assert follower[published] == 0

        def leader_snapshot() -> Snapshot | None:
            with engine.connect() as conn:
                stored = conn.execute(
                    select(replicas.c.metrics).where(replicas.c.pid == first.proc.pid)
                ).scalar_one()
            snap = Snapshot.parse(stored)
            return (
                snap
                if snap is not None and snap.value("fires_total", outcome="published")
                else None
            )

        snap = wait_for(leader_snapshot, 10, "the leader's heartbeat to store its metrics")
        assert snap.value("leader") == 1
        assert snap.value("fencing_term") == later["sundial_scheduler_fencing_term"]
        assert snap.histogram("fire_lateness_seconds").count > 0
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in started:
            replica.proc.wait(timeout=20)
