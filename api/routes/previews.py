"""Previews: the next fire times of a trigger or a schedule, and when each is published,
by the scheduler's own code path (the same trigger maths and the same jitter)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Read
from api.deps import Context
from api.errors import invalid_input
from api.routes.schedules import ScheduleId
from api.schemas import PreviewRequest, PreviewResponse, UTCDatetime
from api.strict_route import StrictRoute
from scheduler import schedules as repo
from scheduler.errors import InvalidSchedule
from scheduler.firing import fire_times_of
from scheduler.triggers import FireTimes, fire_times, jitter, resolve

router = APIRouter(route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid API key"}}


@router.post("/v1/triggers/preview", tags=["triggers"], dependencies=[Read], responses=_ERRORS)
def preview_trigger(body: PreviewRequest, ctx: Context) -> PreviewResponse:
    """Validate a trigger and list its next ``count`` fire times after ``after`` (default now).

    An interval is anchored at ``start_at``, else at now, as a schedule created now would be.
    ``due_times`` add the jitter a schedule with ``schedule_id`` and ``jitter_seconds``
    would get; without them they equal ``fire_times``.
    """
    now = ctx.clock()
    after = body.after if body.after is not None else now
    try:
        fires = FireTimes(resolve(body.trigger, now), now, body.start_at, body.end_at)
        return _preview(fires, after, body.count, body.schedule_id, body.jitter_seconds)
    except (OverflowError, ValueError) as exc:
        # Fire times near the end of the datetime range cannot be represented.
        raise InvalidSchedule("trigger", f"no representable fire time: {exc}") from exc


@router.get(
    "/v1/schedules/{schedule_id}/preview",
    tags=["schedules"],
    dependencies=[Read],
    responses={**_ERRORS, 404: {"description": "No such schedule"}},
)
def preview_schedule(
    schedule_id: ScheduleId,
    ctx: Context,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
    after: Annotated[UTCDatetime | None, Query(description="Default: now.")] = None,
) -> PreviewResponse:
    """The schedule's next ``count`` fire times after ``after``, and when each is published:
    its fire time plus the schedule's jitter, exactly as the scheduler will compute them.

    Listed whatever the schedule's state: a paused schedule shows what resuming would fire.
    """
    with ctx.engine.connect() as conn:
        row = repo.get_schedule(conn, schedule_id)
    start = after if after is not None else ctx.clock()
    try:
        return _preview(fire_times_of(row), start, count, schedule_id, row["jitter_seconds"])
    except (OverflowError, ValueError) as exc:
        raise invalid_input(("query", "after"), f"no representable fire time: {exc}") from exc


def _preview(
    fires: FireTimes, after: datetime, count: int, schedule_id: str | None, jitter_seconds: float
) -> PreviewResponse:
    times = fire_times(fires, after, count)
    if schedule_id is None:  # no jitter asked for (the request model enforces it)
        return PreviewResponse(fire_times=times, due_times=times)
    due = [when + jitter(schedule_id, when, jitter_seconds) for when in times]
    return PreviewResponse(fire_times=times, due_times=due)
