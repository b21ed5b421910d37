"""Schedule actions from the dashboard: pause (with a reason), resume, trigger now,
backfill (with a dry-run count first), restore an earlier version, and delete (after a
confirmation page). Each calls the REST API's route function, so the rules and errors are
the API's, and each is recorded under the name of the key the viewer logged in with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.action_schemas import BackfillRequest, StateChange
from api.deps import AppContext, Context
from api.history_schemas import RestoreRequest
from api.routes.history import restore_version
from api.routes.schedule_actions import (
    backfill_schedule,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
)
from api.routes.schedules import ScheduleId, delete_schedule
from api.ui import describe
from api.ui.access import Reader, Writer
from api.ui.forms import FormFields
from api.ui.pages import UI, PagesDep, redirect, safe_next
from api.ui.refusals import Refused, api_refusals
from api.ui.routes.schedule import load_schedule, render_detail

router = APIRouter(prefix=UI)

Next = Annotated[str, Form(max_length=2048)]


def _back(schedule_id: str, next_path: str, notice: str) -> RedirectResponse:
    """Back to the page the action came from, saying what was done."""
    target = urlsplit(safe_next(next_path, f"{UI}/schedules/{schedule_id}"))
    query = [(k, v) for k, v in parse_qsl(target.query) if k not in ("notice", "count")]
    query.append(("notice", notice))
    return redirect(urlunsplit(("", "", target.path, urlencode(query), "")))


@router.post("/schedules/{schedule_id}/pause", response_class=HTMLResponse)
def pause(
    request: Request,
    schedule_id: ScheduleId,
    viewer: Writer,
    pages: PagesDep,
    ctx: Context,
    reason: Annotated[str, Form()] = "",
    next: Next = "",
) -> Response:
    """Pause, with the reason shown as the schedule's state reason."""
    try:
        with api_refusals():
            body = StateChange.model_validate({"reason": reason.strip() or None})
            pause_schedule(schedule_id, Response(), ctx, viewer.audit(), body)
    except Refused as refused:
        if refused.status != 422:
            raise
        forms = {"pause": {"reason": reason, "errors": refused.fields}}
        return render_detail(request, viewer, pages, ctx, schedule_id, forms=forms, status_code=422)
    return _back(schedule_id, next, "paused")


@router.post("/schedules/{schedule_id}/resume")
def resume(schedule_id: ScheduleId, viewer: Writer, ctx: Context, next: Next = "") -> Response:
    """Resume: fire again from now on."""
    with api_refusals():
        resume_schedule(schedule_id, Response(), ctx, viewer.audit())
    return _back(schedule_id, next, "resumed")


@router.post("/schedules/{schedule_id}/trigger")
def trigger(schedule_id: ScheduleId, viewer: Writer, ctx: Context, next: Next = "") -> Response:
    """Fire now, out of band."""
    with api_refusals():
        trigger_schedule(schedule_id, Response(), ctx, viewer.audit())
    return _back(schedule_id, next, "triggered")


def _instant(text: str, zone: str) -> str:
    """A time typed in the form: with an offset as given, else read in ``zone``."""
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when.isoformat()


def _backfill_request(ctx: AppContext, schedule_id: str, fields: dict[str, str]) -> BackfillRequest:
    schedule = load_schedule(ctx, schedule_id)
    zone = describe.zone_of(schedule.trigger.model_dump(mode="json"))
    body: dict[str, object] = {"overlap": fields.get("overlap") or None}
    errors = {}
    for name in ("start", "end"):
        try:
            body[name] = _instant(fields.get(name, ""), zone)
        except ValueError:
            errors[name] = f"a date and time, read in {zone} unless it has an offset"
    if errors:
        raise Refused(422, "Some fields need fixing.", errors)
    with api_refusals():
        return BackfillRequest.model_validate(body)


@router.post("/schedules/{schedule_id}/backfill", response_class=HTMLResponse)
def backfill(
    request: Request,
    schedule_id: ScheduleId,
    viewer: Writer,
    pages: PagesDep,
    ctx: Context,
    fields: FormFields,
) -> Response:
    """Record the fires of a past range as backfill runs."""
    try:
        body = _backfill_request(ctx, schedule_id, fields)
        with api_refusals():
            count = backfill_schedule(schedule_id, body, ctx, viewer.audit()).count
    except Refused as refused:
        if refused.status != 422:
            raise
        forms = {"backfill": {**fields, "errors": refused.fields}}
        return render_detail(request, viewer, pages, ctx, schedule_id, forms=forms, status_code=422)
    return redirect(f"{UI}/schedules/{schedule_id}?notice=backfilled&count={count}")


@router.post("/schedules/{schedule_id}/backfill/preview", response_class=HTMLResponse)
def backfill_preview(
    request: Request,
    schedule_id: ScheduleId,
    viewer: Writer,
    pages: PagesDep,
    ctx: Context,
    fields: FormFields,
) -> HTMLResponse:
    """How many runs the backfill would record (a dry run of the same route)."""
    count, errors = None, {}
    try:
        body = _backfill_request(ctx, schedule_id, fields).model_copy(update={"dry_run": True})
        with api_refusals():
            count = backfill_schedule(schedule_id, body, ctx, viewer.audit()).count
    except Refused as refused:
        errors = refused.fields or {"": refused.message}
    context = {"count": count, "errors": errors}
    return pages.render(request, viewer, "_backfill_preview.html", context)


@router.post("/schedules/{schedule_id}/history/{version}/restore")
def restore(
    schedule_id: ScheduleId,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    viewer: Writer,
    ctx: Context,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Make an earlier version's spec current again (a new version, recorded as a
    ``restore``)."""
    with api_refusals():
        body = RestoreRequest.model_validate({"reason": reason.strip() or None})
        restore_version(schedule_id, version, Response(), ctx, viewer.audit(), body)
    return redirect(f"{UI}/schedules/{schedule_id}?notice=restored#history")


@router.get("/schedules/{schedule_id}/delete", response_class=HTMLResponse)
def confirm_delete(
    request: Request, schedule_id: ScheduleId, viewer: Reader, pages: PagesDep, ctx: Context
) -> HTMLResponse:
    """Ask before deleting: the schedule and its whole run history go."""
    if not viewer.can_write:
        raise Refused(403, "This API key may only read.")
    context = {"page": "schedules", "s": load_schedule(ctx, schedule_id)}
    return pages.render(request, viewer, "confirm_delete.html", context)


@router.post("/schedules/{schedule_id}/delete")
def delete(schedule_id: ScheduleId, viewer: Writer, ctx: Context) -> Response:
    """Delete the schedule and its runs; its future fires stop at once."""
    with api_refusals():
        delete_schedule(schedule_id, ctx, viewer.audit())
    return redirect(f"{UI}/schedules?notice=deleted")
