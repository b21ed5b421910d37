"""Scheduler status: the current leader and the replicas seen recently."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from api.auth import Read
from api.deps import Context
from api.status_schemas import LeaderPublic, ReplicaPublic, SchedulerStatus
from api.strict_route import StrictRoute
from scheduler.store.models import LEADER_ROW, leader, replicas

router = APIRouter(prefix="/v1", tags=["scheduler"], route_class=StrictRoute)

# A replica missing for this many lease periods is no longer listed.
REPLICA_WINDOW_LEASES = 3


@router.get(
    "/scheduler", dependencies=[Read], responses={401: {"description": "Missing or invalid key"}}
)
def scheduler_status(ctx: Context) -> SchedulerStatus:
    """The leader (null when no lease is live) and the replicas seen recently."""
    now = ctx.clock()
    seen_since = now - timedelta(seconds=REPLICA_WINDOW_LEASES * ctx.settings.lease_ttl_seconds)
    with ctx.engine.connect() as conn:
        lead = conn.execute(select(leader).where(leader.c.name == LEADER_ROW)).mappings().first()
        alive = conn.execute(
            select(replicas)
            .where(replicas.c.last_seen_at >= seen_since)
            .order_by(replicas.c.replica_id)
        ).mappings()
        replica_list = [ReplicaPublic.model_validate(dict(row)) for row in alive]
    current = None
    if (
        lead is not None
        and lead["holder"] is not None
        and lead["lease_expires_at"] is not None
        and lead["lease_expires_at"] > now
    ):
        current = LeaderPublic.model_validate({**lead, "replica_id": lead["holder"]})
    return SchedulerStatus(leader=current, replicas=replica_list)
