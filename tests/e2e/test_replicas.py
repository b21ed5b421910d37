"""Two `sundial scheduler` processes on one SQLite file (embedded mode): one leads, every
fire is recorded once, and SIGTERM hands over well within a TTL."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scheduler.store import migrate
from scheduler.store.db import make_engine
from scheduler.store.models import leader, replicas, runs
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule
from tests.services import wait_for

pytestmark = pytest.mark.slow
TTL_S = 3


def _start(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "sundial", "scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_second_embedded_replica_fires_nothing_twice_and_takes_over_on_sigterm(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sundial.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")} | {
        "SUNDIAL_DATABASE_URL": url,
        "SUNDIAL_DATA_DIR": str(tmp_path / "data"),
        "SUNDIAL_LEASE_TTL_SECONDS": str(TTL_S),
    }
    add_schedule(engine, "every1", {"type": "interval", "seconds": 1}, utcnow(), coalesce=False)
    procs = [_start(tmp_path, env, "a"), _start(tmp_path, env, "b")]
    try:

        def fires() -> list[tuple[Any, ...]]:
            with engine.connect() as conn:
                return [
                    tuple(r)
                    for r in conn.execute(
                        select(runs.c.scheduled_for, runs.c.fencing_token).order_by(
                            runs.c.scheduled_for
                        )
                    )
                ]

        def term() -> tuple[int, int] | None:
            with engine.connect() as conn:
                row = conn.execute(
                    select(leader.c.holder, leader.c.pid, leader.c.fencing_token)
                ).one()
                n = len(conn.execute(select(replicas)).all())
            return (row.pid, row.fencing_token) if row.holder and n == 2 else None

        leader_pid, first_token = wait_for(term, 30, "a leader among two replicas")
        wait_for(lambda: len(fires()) >= 3, 15, "three fires")
        (old,) = [p for p in procs if p.pid == leader_pid]
        old.send_signal(signal.SIGTERM)
        assert old.wait(timeout=15) == 0

        def new_term() -> bool:
            with engine.connect() as conn:
                row = conn.execute(select(leader.c.pid, leader.c.fencing_token)).one()
            return bool(row.pid != leader_pid and row.fencing_token > first_token)

        wait_for(new_term, TTL_S, "the follower to take over within one TTL")
        count = len(fires())
        wait_for(lambda: len(fires()) >= count + 3, 15, "fires under the new leader")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=15)
    history = fires()
    times = [t for t, _ in history]
    assert len(times) == len(set(times)), "a fire was recorded twice"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == timedelta(seconds=1) for g in gaps), f"a fire was lost: {gaps}"
    assert {tok for _, tok in history} >= {first_token}
    engine.dispose()
