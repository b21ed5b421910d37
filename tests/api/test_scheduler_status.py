"""GET /v1/scheduler: the live leader and recently seen replicas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, update

from scheduler.store.models import LEADER_ROW, leader, replicas
from tests.api.support import T0, TestClient, z


def _set_leader(engine: Engine, expires_in_s: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(leader)
            .where(leader.c.name == LEADER_ROW)
            .values(
                holder="replica-a",
                hostname="sched-1",
                pid=4242,
                fencing_token=7,
                since=T0 - timedelta(minutes=5),
                lease_expires_at=T0 + timedelta(seconds=expires_in_s),
            )
        )


def test_no_leader_and_no_replicas(client: TestClient) -> None:
    assert client.get("/v1/scheduler").json() == {"leader": None, "replicas": []}


def test_a_live_lease_names_the_leader(client: TestClient, engine: Engine) -> None:
    _set_leader(engine, expires_in_s=8)

    body = client.get("/v1/scheduler").json()

    assert body["leader"] == {
        "replica_id": "replica-a",
        "hostname": "sched-1",
        "pid": 4242,
        "fencing_token": 7,
        "since": z(T0 - timedelta(minutes=5)),
        "lease_expires_at": z(T0 + timedelta(seconds=8)),
    }


def test_an_expired_lease_means_no_leader(client: TestClient, engine: Engine) -> None:
    _set_leader(engine, expires_in_s=-1)

    assert client.get("/v1/scheduler").json()["leader"] is None


def test_replicas_seen_within_three_lease_periods_are_listed(
    make_client: Any, engine: Engine
) -> None:
    client = make_client(lease_ttl_seconds=10)
    with engine.begin() as conn:
        for name, seen_ago_s in (("fresh", 5), ("edge", 29), ("gone", 31)):
            conn.execute(
                insert(replicas).values(
                    replica_id=name,
                    hostname=f"host-{name}",
                    pid=1,
                    started_at=T0 - timedelta(hours=1),
                    last_seen_at=T0 - timedelta(seconds=seen_ago_s),
                )
            )

    body = client.get("/v1/scheduler").json()

    assert [r["replica_id"] for r in body["replicas"]] == ["edge", "fresh"]
    assert body["replicas"][1] == {
        "replica_id": "fresh",
        "hostname": "host-fresh",
        "pid": 1,
        "started_at": z(T0 - timedelta(hours=1)),
        "last_seen_at": z(T0 - timedelta(seconds=5)),
    }
