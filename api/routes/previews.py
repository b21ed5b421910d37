"""Trigger preview: the next fire times of a trigger, by the scheduler's own code path."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Read
from api.deps import Context
from api.schemas import PreviewRequest, PreviewResponse
from scheduler.errors import InvalidSchedule
from scheduler.triggers import FireTimes, fire_times, resolve

router = APIRouter(prefix="/v1/triggers", tags=["triggers"])


@router.post(
    "/preview", dependencies=[Read], responses={401: {"description": "Missing or invalid key"}}
)
def preview(body: PreviewRequest, ctx: Context) -> PreviewResponse:
    """Validate a trigger and list its next ``count`` fire times after ``after`` (default now).

    An interval is anchored at ``start_at``, else at now, as a schedule created now would be.
    """
    now = ctx.clock()
    after = body.after if body.after is not None else now
    try:
        fires = FireTimes(resolve(body.trigger, now), now, body.start_at, body.end_at)
        times = fire_times(fires, after, body.count)
    except (OverflowError, ValueError) as exc:
        # Fire times near the end of the datetime range cannot be represented.
        raise InvalidSchedule("trigger", f"no representable fire time: {exc}") from exc
    return PreviewResponse(fire_times=times)
