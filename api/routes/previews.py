"""Previews: the next fire times of a trigger or a schedule, and when each is published,
by the scheduler's own code path (the same trigger maths and the same jitter)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Read
from api.deps import Context
from api.errors import invalid_input
from api.field_schemas import UTCDatetime
from api.preview_schemas import ExcludedFire, PreviewRequest, PreviewResponse
from api.routes.schedules import ScheduleId
from api.strict_route import StrictRoute
from scheduler.errors import InvalidSchedule
from scheduler.store import schedule_reads
from scheduler.store.calendar_store import load_calendars
from scheduler.timing.fire_policy import calendar_names, fire_times_of, upcoming
from scheduler.timing.triggers import FireTimes, jitter, resolve

router = APIRouter(route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid API key"}}


@router.post("/v1/triggers/preview", tags=["triggers"], dependencies=[Read], responses=_ERRORS)
def preview_trigger(body: PreviewRequest, ctx: Context) -> PreviewResponse:
    """Validate a trigger and list its next ``count`` fire times after ``after`` (default now).

    An interval is anchored at ``start_at``, else at now, as a schedule created now would be.
    ``due_times`` add the jitter a schedule with ``schedule_id`` and ``jitter_seconds``
    would get; without them they equal ``fire_times``. With ``exclude_calendars`` the fire
    times are those that run; ``excluded`` lists the planned instants met on the way that
    the calendars keep from running (skipped, or moved with ``next_allowed``).
    """
    now = ctx.clock()
    after = body.after if body.after is not None else now
    with ctx.engine.connect() as conn:
        calendars = load_calendars(conn, body.exclude_calendars)
    try:
        row = {
            "trigger": resolve(body.trigger, now).model_dump(mode="json"),
            "created_at": now,
            "start_at": body.start_at,
            "end_at": body.end_at,
            "exclude_calendars": body.exclude_calendars,
            "on_excluded": body.on_excluded.value,
        }
        fires = fire_times_of(row, calendars)
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
        row = schedule_reads.get_schedule(conn, schedule_id)
        calendars = load_calendars(conn, calendar_names(row))
    start = after if after is not None else ctx.clock()
    try:
        fires = fire_times_of(row, calendars)
        return _preview(fires, start, count, schedule_id, row["jitter_seconds"])
    except (OverflowError, ValueError) as exc:
        raise invalid_input(("query", "after"), f"no representable fire time: {exc}") from exc


def _preview(
    fires: FireTimes, after: datetime, count: int, schedule_id: str | None, jitter_seconds: float
) -> PreviewResponse:
    planned = upcoming(fires, after, count)
    times = [p.scheduled_for for p in planned if p.excluded is None]
    excluded = [
        ExcludedFire(
            scheduled_for=p.scheduled_for,
            calendar=p.excluded.calendar,
            label=p.excluded.label,
            moved_to=p.excluded.end if fires.move_excluded else None,
        )
        for p in planned
        if p.excluded is not None
    ]
    if schedule_id is None:  # no jitter asked for (the request model enforces it)
        return PreviewResponse(fire_times=times, due_times=times, excluded=excluded)
    due = [when + jitter(schedule_id, when, jitter_seconds) for when in times]
    return PreviewResponse(fire_times=times, due_times=due, excluded=excluded)
