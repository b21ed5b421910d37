"""Schedule actions: pause, resume, fire now out of band, and backfill a past range."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Response, status

from api.action_schemas import BackfillRequest, BackfillResponse, StateChange
from api.audit import ChangeAudit
from api.auth import Write
from api.deps import Context
from api.errors import invalid_input
from api.routes.schedules import ScheduleId, public
from api.run_schemas import RunPublic
from api.schedule_schemas import SchedulePublic
from api.strict_route import StrictRoute
from scheduler.firing.backfill import MAX_BACKFILL_FIRES, backfill
from scheduler.store import run_store, schedule_updates

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Read-only API key"},
    404: {"description": "No such schedule"},
}
_COMPLETED: dict[int | str, dict[str, Any]] = {409: {"description": "The schedule is completed"}}


@router.post("/{schedule_id}/pause", dependencies=[Write], responses={**_ERRORS, **_COMPLETED})
def pause_schedule(
    schedule_id: ScheduleId,
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    body: StateChange | None = None,
) -> SchedulePublic:
    """Stop firing until resumed; ``next_run_at`` becomes null. The optional ``reason`` (or
    ``X-Sundial-Reason``) becomes the schedule's ``state_reason`` and is recorded in its
    history."""
    if body is not None and body.reason:
        audit = replace(audit, reason=body.reason)
    with ctx.engine.begin() as conn:
        row = schedule_updates.pause_schedule(conn, schedule_id, ctx.clock(), audit)
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)


@router.post("/{schedule_id}/resume", dependencies=[Write], responses={**_ERRORS, **_COMPLETED})
def resume_schedule(
    schedule_id: ScheduleId,
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    body: StateChange | None = None,
) -> SchedulePublic:
    """Fire again from now on; ``next_run_at`` is computed afresh. The optional ``reason`` (or
    ``X-Sundial-Reason``) becomes the schedule's ``state_reason`` and is recorded in its
    history."""
    if body is not None and body.reason:
        audit = replace(audit, reason=body.reason)
    with ctx.engine.begin() as conn:
        row = schedule_updates.resume_schedule(conn, schedule_id, ctx.clock(), audit)
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Write],
    responses={**_ERRORS, 409: {"description": "A run for this instant already exists"}},
)
def trigger_schedule(
    schedule_id: ScheduleId, response: Response, ctx: Context, audit: ChangeAudit
) -> RunPublic:
    """Fire now, out of band: a pending manual run the leader publishes shortly."""
    with ctx.engine.begin() as conn:
        run = run_store.trigger_run(conn, schedule_id, ctx.clock(), audit)
    ctx.notifier.schedule_changed(schedule_id)
    response.headers["Location"] = f"/v1/runs/{run['id']}"
    return RunPublic.model_validate(run)


@router.post(
    "/{schedule_id}/backfill",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Write],
    responses=_ERRORS,
    description=f"""Fire every time the trigger would have fired in `[start, end]` that has no
run yet: each becomes a pending run with `trigger: "backfill"` and its historical
`scheduled_for`, released at a bounded rate (`overlap: allow`) or one at a time (any
other policy). `count` is how many runs were recorded now; a fire already recorded is not
repeated, so the same backfill twice records nothing the second time; with `dry_run` it
only counts them. `end` must not be
before `start` nor in the future, and the range may hold at most {MAX_BACKFILL_FIRES} fires.""",
)
def backfill_schedule(
    schedule_id: ScheduleId, body: BackfillRequest, ctx: Context, audit: ChangeAudit
) -> BackfillResponse:
    """Record the fires of a past range as backfill runs; 202 with how many."""
    now = ctx.clock()
    if body.end > now:
        # A future fire recorded now would run ahead of its own time.
        raise invalid_input(("body", "end"), "end must not be in the future", body.end.isoformat())
    try:
        if body.reason:
            audit = replace(audit, reason=body.reason)
        count = backfill(
            ctx.engine,
            schedule_id,
            body.start,
            body.end,
            now,
            body.overlap,
            audit=audit,
            dry_run=body.dry_run,
        )
    except (OverflowError, ValueError) as exc:
        # Fire times near the ends of the datetime range cannot be represented.
        raise invalid_input(("body", "start"), f"no representable fire time: {exc}") from exc
    if count and not body.dry_run:
        ctx.notifier.schedule_changed(schedule_id)
    return BackfillResponse(count=count)
