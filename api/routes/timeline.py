"""The fire timeline of a schedule: why did it (not) run?"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Read
from api.deps import Context
from api.errors import invalid_input
from api.field_schemas import UTCDatetime
from api.history_schemas import TimelineEntry, TimelinePage
from api.pagination import decode_cursor, encode_cursor
from api.routes.schedules import ScheduleId
from api.strict_route import StrictRoute
from scheduler.runs.timeline import timeline

router = APIRouter(tags=["schedules"], route_class=StrictRoute)
# A window longer than this is refused: ask for it in parts.
MAX_WINDOW = timedelta(days=366)
DEFAULT_WINDOW = timedelta(days=1)


@router.get(
    "/v1/schedules/{schedule_id}/timeline",
    dependencies=[Read],
    responses={
        401: {"description": "Missing or invalid API key"},
        404: {"description": "No such schedule"},
    },
)
def schedule_timeline(
    schedule_id: ScheduleId,
    ctx: Context,
    since: Annotated[UTCDatetime | None, Query(description="Default: a day before until.")] = None,
    until: Annotated[UTCDatetime | None, Query(description="Exclusive. Default: now.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> TimelinePage:
    """Every instant the trigger planned in ``[since, until)`` (at most 366 days, oldest
    first, ``limit`` per page), each with its run, or why there is none: paused (since
    when, by whom, why), outside ``start_at``/``end_at``, excluded by a calendar (or moved
    by it), coalesced, missed beyond the grace (by how much), skipped by the overlap
    policy, no leader at the time, not yet due."""
    now = ctx.clock()
    end = until if until is not None else now
    start = since if since is not None else end - DEFAULT_WINDOW
    if end <= start:
        raise invalid_input(("query", "until"), "until must be after since")
    if end - start > MAX_WINDOW:
        raise invalid_input(("query", "since"), "the window may span at most 366 days")
    after = start
    if cursor is not None:
        (text,) = decode_cursor(cursor, 1)
        try:
            after = datetime.fromisoformat(text) + timedelta(microseconds=1)
        except ValueError as exc:
            raise invalid_input(("query", "cursor"), "not a cursor this API issued") from exc
    retention = timedelta(days=ctx.settings.run_retention_days)
    with ctx.engine.connect() as conn:
        entries, last = timeline(
            conn, schedule_id, since=after, until=end, now=now, retention=retention, limit=limit
        )
    return TimelinePage(
        schedule_id=schedule_id,
        since=start,
        until=end,
        items=[TimelineEntry.model_validate(_entry(e)) for e in entries],
        next_cursor=encode_cursor(last.isoformat()) if last is not None else None,
    )


def _entry(entry: Any) -> dict[str, Any]:
    data: dict[str, Any] = asdict(entry)
    data["run"] = entry.run
    return data
