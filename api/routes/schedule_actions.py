"""Schedule actions: pause, resume, and fire now out of band."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api.auth import Write
from api.deps import Context
from api.routes.schedules import ScheduleId, public
from api.schemas import RunPublic, SchedulePublic
from scheduler import schedules as repo

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Read-only API key"},
    404: {"description": "No such schedule"},
}
_COMPLETED: dict[int | str, dict[str, Any]] = {409: {"description": "The schedule is completed"}}


@router.post("/{schedule_id}/pause", dependencies=[Write], responses={**_ERRORS, **_COMPLETED})
def pause_schedule(schedule_id: ScheduleId, response: Response, ctx: Context) -> SchedulePublic:
    """Stop firing until resumed; ``next_run_at`` becomes null."""
    with ctx.engine.begin() as conn:
        row = repo.pause_schedule(conn, schedule_id, ctx.clock())
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)


@router.post("/{schedule_id}/resume", dependencies=[Write], responses={**_ERRORS, **_COMPLETED})
def resume_schedule(schedule_id: ScheduleId, response: Response, ctx: Context) -> SchedulePublic:
    """Fire again from now on; ``next_run_at`` is computed afresh."""
    with ctx.engine.begin() as conn:
        row = repo.resume_schedule(conn, schedule_id, ctx.clock())
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Write],
    responses={**_ERRORS, 409: {"description": "A run for this instant already exists"}},
)
def trigger_schedule(schedule_id: ScheduleId, response: Response, ctx: Context) -> RunPublic:
    """Fire now, out of band: a pending manual run the leader publishes shortly."""
    with ctx.engine.begin() as conn:
        run = repo.trigger_run(conn, schedule_id, ctx.clock())
    ctx.notifier.schedule_changed(schedule_id)
    response.headers["Location"] = f"/v1/runs/{run['id']}"
    return RunPublic.model_validate(run)
