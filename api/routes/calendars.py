"""Exclusion calendars: create or replace, list, read and delete (409 while in use).

A changed calendar re-arms the schedules that name it, and they are announced to the
leader, so the change takes effect for their next fire at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from api.audit import ChangeAudit
from api.auth import Read, Write
from api.calendar_schemas import CalendarPage, CalendarPublic
from api.deps import Context
from api.field_schemas import SCHEDULE_ID_PATTERN
from api.pagination import decode_cursor, encode_cursor
from api.strict_route import StrictRoute
from scheduler.store import calendar_store as store
from scheduler.store.calendar_store import CalendarSpec
from scheduler.store.schedule_updates import rearm_calendar_users

router = APIRouter(prefix="/v1/calendars", tags=["calendars"], route_class=StrictRoute)
CalendarName = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN, examples=["holidays-de-by"])]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Read-only API key"},
}


@router.put(
    "/{name}",
    dependencies=[Write],
    responses={**_ERRORS, 201: {"description": "Created", "model": CalendarPublic}},
)
def put_calendar(
    name: CalendarName, body: CalendarSpec, response: Response, ctx: Context, audit: ChangeAudit
) -> CalendarPublic:
    """Create (201) or replace (200) a calendar; schedules naming it are re-armed."""
    now = ctx.clock()
    with ctx.engine.begin() as conn:
        row, created = store.put_calendar(conn, name, body, now, audit)
        rearmed = [] if created else rearm_calendar_users(conn, name, now)
    for schedule_id in rearmed:
        ctx.notifier.schedule_changed(schedule_id)
    if created:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"{router.prefix}/{name}"
    return CalendarPublic.model_validate(row)


@router.get("", dependencies=[Read], responses=_ERRORS)
def list_calendars(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> CalendarPage:
    """Calendars in name order, one page at a time."""
    after = decode_cursor(cursor, 1)[0] if cursor is not None else None
    with ctx.engine.connect() as conn:
        rows = store.list_calendars(conn, after=after, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1]["name"]) if len(rows) > limit else None
    return CalendarPage(
        items=[CalendarPublic.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.get(
    "/{name}", dependencies=[Read], responses={**_ERRORS, 404: {"description": "No calendar"}}
)
def get_calendar(name: CalendarName, ctx: Context) -> CalendarPublic:
    """One calendar, with the schedules that name it."""
    with ctx.engine.connect() as conn:
        row = store.get_calendar(conn, name)
        used_by = store.users_of(conn, name)
    return CalendarPublic.model_validate({**row, "used_by": used_by})


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Write],
    responses={
        **_ERRORS,
        404: {"description": "No calendar"},
        409: {"description": "A schedule names it"},
    },
)
def delete_calendar(name: CalendarName, ctx: Context, audit: ChangeAudit) -> None:
    """Delete a calendar no schedule names (409 naming the schedules otherwise)."""
    with ctx.engine.begin() as conn:
        store.delete_calendar(conn, name, ctx.clock(), audit)
