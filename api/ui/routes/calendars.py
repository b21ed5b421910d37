"""Exclusion calendars: the list, and one calendar with its rules, the schedules naming it
and the stretches it excludes next, in a time zone of the viewer's choosing (by default
that of the first schedule naming it)."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from api.deps import AppContext, Context
from api.field_schemas import SCHEDULE_ID_PATTERN
from api.routes.calendars import get_calendar, list_calendars
from api.schedule_schemas import SchedulePublic
from api.ui import describe
from api.ui.access import Reader
from api.ui.pages import UI, PagesDep
from api.ui.refusals import Refused, api_refusals
from scheduler.errors import NotFound
from scheduler.store import schedule_reads
from scheduler.store.calendar_store import compile_row

router = APIRouter(prefix=UI)

PAGE_SIZE = 50
NEXT_EXCLUDED = 12
CalendarName = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN)]


@router.get("/calendars", response_class=HTMLResponse)
def calendars_page(
    request: Request, viewer: Reader, pages: PagesDep, ctx: Context, cursor: str = ""
) -> HTMLResponse:
    """Calendars in name order, one page at a time."""
    with api_refusals():
        page = list_calendars(ctx, limit=PAGE_SIZE, cursor=cursor or None)
    context = {
        "page": "calendars",
        "calendars": page.items,
        "next_cursor": page.next_cursor,
        "first_page": not cursor,
    }
    return pages.render(request, viewer, "calendars.html", context)


def _zone_of_first_user(ctx: AppContext, used_by: list[str]) -> str:
    for schedule_id in used_by[:1]:
        try:
            with ctx.engine.connect() as conn:
                row = schedule_reads.get_schedule(conn, schedule_id)
        except NotFound:  # deleted meanwhile
            break
        return describe.zone_of(SchedulePublic.from_row(row).trigger.model_dump(mode="json"))
    return "UTC"


@router.get("/calendars/{name}", response_class=HTMLResponse)
def calendar_page(
    request: Request,
    name: CalendarName,
    viewer: Reader,
    pages: PagesDep,
    ctx: Context,
    zone: str = "",
) -> HTMLResponse:
    """One calendar: its rules, who names it, and what it excludes next."""
    with api_refusals():
        calendar = get_calendar(name, ctx)
    used_by = calendar.used_by or []
    shown_zone = zone.strip() or _zone_of_first_user(ctx, used_by)
    try:
        tz = ZoneInfo(shown_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Refused(422, f"No time zone {shown_zone!r}: use an IANA name.") from exc
    compiled = compile_row(calendar.model_dump())
    upcoming = compiled.upcoming(tz, ctx.clock(), NEXT_EXCLUDED)
    context = {
        "page": "calendars",
        "c": calendar,
        "used_by": used_by,
        "zone": shown_zone,
        "upcoming": upcoming,
    }
    return pages.render(request, viewer, "calendar.html", context)
