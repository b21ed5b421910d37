"""Operational status bodies: the scheduler's leader and replicas, liveness and readiness."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.field_schemas import example_config


class LeaderPublic(BaseModel):
    """The replica holding the leader lease."""

    model_config = example_config(
        {
            "replica_id": "c0ffee12",
            "hostname": "sched-1",
            "pid": 4242,
            "fencing_token": 7,
            "since": "2026-11-21T09:00:00Z",
            "lease_expires_at": "2026-11-21T09:30:10Z",
        }
    )

    replica_id: str
    hostname: str | None
    pid: int | None
    fencing_token: int
    since: datetime | None
    lease_expires_at: datetime


class ReplicaPublic(BaseModel):
    """A scheduler replica seen recently."""

    model_config = example_config(
        {
            "replica_id": "c0ffee12",
            "hostname": "sched-1",
            "pid": 4242,
            "started_at": "2026-11-21T09:00:00Z",
            "last_seen_at": "2026-11-21T09:30:02Z",
        }
    )

    replica_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime


class SchedulerStatus(BaseModel):
    """Who leads, and which replicas are alive."""

    model_config = example_config({"leader": None, "replicas": []})

    leader: LeaderPublic | None
    replicas: list[ReplicaPublic]


class Health(BaseModel):
    """Liveness or readiness, with the result of each readiness check."""

    model_config = example_config(
        {"status": "ok", "checks": {"database": "ok", "schema": "ok"}},
        {"status": "unavailable", "checks": {"database": "ok", "schema": "not at head"}},
    )

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    detail: str | None = None
