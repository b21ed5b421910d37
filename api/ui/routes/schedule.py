"""One schedule: every field and policy, its next fires, its fire timeline, its runs, its
change history, and editing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import AppContext, Context
from api.etags import etag
from api.history_schemas import ChangePage, TimelinePage
from api.pagination import decode_cursor, encode_cursor
from api.routes.history import schedule_history
from api.routes.previews import preview_schedule
from api.routes.schedules import ScheduleId, put_schedule
from api.routes.timeline import schedule_timeline
from api.run_schemas import RunPublic
from api.schedule_schemas import SchedulePublic, SchedulePut
from api.ui import describe
from api.ui.access import Reader, Viewer, Writer
from api.ui.forms import FormFields, document_of, document_of_json, fields_of
from api.ui.pages import UI, Pages, PagesDep, redirect
from api.ui.refusals import Refused, api_refusals
from api.ui.timeline_window import TimelineWindow, default_window, window_of
from scheduler.store import run_store, schedule_reads

router = APIRouter(prefix=UI)

RUNS_PAGE = 25
NEXT_FIRES = 10
TIMELINE_PAGE = 50
HISTORY_PAGE = 15


def run_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The ``(scheduled_for, id)`` a run page continues after; None for the first page."""
    if not cursor:
        return None
    with api_refusals():
        at, run_id = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise Refused(422, "Not a cursor this dashboard issued.") from exc
    if when.tzinfo is None:
        raise Refused(422, "Not a cursor this dashboard issued.")
    return when, run_id


def runs_page(rows: list[dict[str, Any]], size: int) -> tuple[list[RunPublic], str | None]:
    """The runs of one page and the cursor of the next, from ``size + 1`` rows."""
    cursor = None
    if len(rows) > size:
        rows = rows[:size]
        cursor = encode_cursor(rows[-1]["scheduled_for"].isoformat(), rows[-1]["id"])
    return [RunPublic.model_validate(row) for row in rows], cursor


def _instant_param(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Refused(422, f"{name}: not a time with an offset") from exc
    if when.tzinfo is None:
        raise Refused(422, f"{name}: not a time with an offset")
    return when


def _timeline(
    request: Request, ctx: AppContext, schedule: SchedulePublic, fire_times: list[datetime]
) -> dict[str, Any]:
    """The timeline panel: the window shown, its page of instants, and where to go next."""
    default = default_window(fire_times, schedule.created_at, ctx.clock())
    window, page, error = default, None, None
    try:
        window = window_of(
            _instant_param(request, "tl_since"), _instant_param(request, "tl_until"), default
        )
        with api_refusals():
            page = schedule_timeline(
                schedule.id,
                ctx,
                since=window.since,
                until=window.until,
                limit=TIMELINE_PAGE,
                cursor=request.query_params.get("tl_cursor") or None,
            )
    except Refused as refused:
        error = "; ".join([refused.message, *refused.fields.values()])
    except (OverflowError, ValueError):
        error = "That window is beyond the dates this server can represent."
    return {
        "window": window,
        "page": page
        or TimelinePage(
            schedule_id=schedule.id,
            since=window.since,
            until=window.until,
            items=[],
            next_cursor=None,
        ),
        "error": error,
        "earlier": _moved(window, -1),
        "later": _moved(window, 1),
        "is_default": window == default,
    }


def _moved(window: TimelineWindow, direction: int) -> TimelineWindow | None:
    try:
        return window.earlier() if direction < 0 else window.later()
    except OverflowError:
        return None


def load_schedule(ctx: AppContext, schedule_id: str) -> SchedulePublic:
    """The schedule, or a 404 page."""
    with api_refusals(), ctx.engine.connect() as conn:
        return SchedulePublic.from_row(schedule_reads.get_schedule(conn, schedule_id))


def render_detail(
    request: Request,
    viewer: Viewer,
    pages: Pages,
    ctx: AppContext,
    schedule_id: str,
    *,
    cursor: str = "",
    forms: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The schedule page; ``forms`` carries a refused action's fields and errors."""
    before = run_cursor(cursor)
    with api_refusals(), ctx.engine.connect() as conn:
        schedule = SchedulePublic.from_row(schedule_reads.get_schedule(conn, schedule_id))
        rows = run_store.list_runs(conn, schedule_id, before=before, limit=RUNS_PAGE + 1)
    runs, next_cursor = runs_page(rows, RUNS_PAGE)
    zone = describe.zone_of(schedule.trigger.model_dump(mode="json"))
    with api_refusals():
        preview = preview_schedule(schedule_id, ctx, count=NEXT_FIRES, after=None)
        changes: ChangePage = schedule_history(
            schedule_id,
            ctx,
            limit=HISTORY_PAGE,
            cursor=request.query_params.get("h_cursor") or None,
        )
    fires = describe.next_fires(preview.fire_times, preview.due_times, zone, ctx.clock())
    context = {
        "page": "schedules",
        "s": schedule,
        "trigger": schedule.trigger.model_dump(mode="json"),
        "zone": zone,
        "fires": fires,
        "runs": runs,
        "next_cursor": next_cursor,
        "first_page": not cursor,
        "timeline": _timeline(request, ctx, schedule, preview.fire_times),
        "changes": changes,
        "first_changes": not request.query_params.get("h_cursor"),
        "forms": forms or {},
        "notice": request.query_params.get("notice"),
        "count": request.query_params.get("count"),
    }
    return pages.render(request, viewer, "schedule.html", context, status_code=status_code)


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(
    request: Request,
    schedule_id: ScheduleId,
    viewer: Reader,
    pages: PagesDep,
    ctx: Context,
    cursor: str = "",
) -> HTMLResponse:
    """The schedule page; the run history refreshes itself."""
    return render_detail(request, viewer, pages, ctx, schedule_id, cursor=cursor)


def _edit_form(
    request: Request,
    viewer: Viewer,
    pages: Pages,
    schedule: SchedulePublic,
    fields: dict[str, str],
    refused: Refused | None = None,
    json_text: str | None = None,
) -> HTMLResponse:
    document = schedule.spec_document()
    context = {
        "page": "schedules",
        "mode": "edit",
        "schedule": schedule,
        "fields": fields,
        "errors": refused.fields if refused else {},
        "message": refused.message if refused else None,
        "json_mode": json_text is not None,
        "json_text": json_text or json.dumps(document, indent=2, sort_keys=True),
        "action": f"{UI}/schedules/{schedule.id}/edit",
    }
    status = refused.status if refused else 200
    return pages.render(request, viewer, "schedule_form.html", context, status_code=status)


@router.get("/schedules/{schedule_id}/edit", response_class=HTMLResponse)
def edit_page(
    request: Request, schedule_id: ScheduleId, viewer: Reader, pages: PagesDep, ctx: Context
) -> HTMLResponse:
    """The schedule as a form, and as JSON."""
    if not viewer.can_write:
        raise Refused(403, "This API key may only read.")
    schedule = load_schedule(ctx, schedule_id)
    fields = fields_of(schedule.spec_document())
    return _edit_form(
        request, viewer, pages, schedule, {**fields, "version": str(schedule.version)}
    )


@router.post("/schedules/{schedule_id}/edit", response_class=HTMLResponse)
def save_edit(
    request: Request,
    schedule_id: ScheduleId,
    viewer: Writer,
    pages: PagesDep,
    ctx: Context,
    fields: FormFields,
) -> Response:
    """Replace the schedule with the edited document (``PUT`` with ``If-Match``)."""
    schedule = load_schedule(ctx, schedule_id)
    json_mode = "json" in fields
    try:
        document = (
            document_of_json(fields["json"])
            if json_mode
            else document_of(fields, schedule.spec_document())
        )
        if_match = etag(int(fields["version"])) if fields.get("version", "").isdigit() else None
        with api_refusals():
            body = SchedulePut.model_validate(document)
            put_schedule(schedule_id, body, Response(), ctx, viewer.audit(), if_match=if_match)
    except Refused as refused:
        if refused.status == 412:
            refused = Refused(412, "Someone changed this schedule since you opened it: reload.")
        shown = {**fields_of(schedule.spec_document()), **fields}
        return _edit_form(request, viewer, pages, schedule, shown, refused, fields.get("json"))
    return redirect(f"{UI}/schedules/{schedule_id}?notice=saved")
