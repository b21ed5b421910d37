"""The schedules table (filters, free-text search, the API's cursor) and new schedules."""

from __future__ import annotations

import re
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import AppContext, Context
from api.field_schemas import LABEL_KEY_PATTERN
from api.pagination import decode_cursor, encode_cursor
from api.routes.schedules import create_schedule, put_schedule
from api.schedule_schemas import ScheduleCreate, SchedulePublic, SchedulePut
from api.ui.access import Reader, Viewer, Writer
from api.ui.forms import NEW_FORM, FormFields, document_of, document_of_json
from api.ui.pages import UI, PagesDep, redirect
from api.ui.refusals import Refused, api_refusals
from scheduler.runs.run_history import recent_states
from scheduler.store import schedule_reads
from scheduler.store.history import Audit
from scheduler.store.models import ScheduleState

router = APIRouter(prefix=UI)

PAGE_SIZE = 50
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_JSON_EXAMPLE = """{
  "task": "sundial.echo",
  "trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"}
}"""


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in text.split():
        key, sep, value = pair.partition(":")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise Refused(
                422, f"Label filter {pair!r}: expected key:value.", {"label": "key:value"}
            )
        labels[key] = value
    return labels


def _state(text: str) -> str | None:
    if not text:
        return None
    if text not in {state.value for state in ScheduleState}:
        raise Refused(422, f"No schedule state {text!r}.", {"state": "unknown state"})
    return text


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(
    request: Request,
    viewer: Reader,
    pages: PagesDep,
    ctx: Context,
    q: str = "",
    task: str = "",
    state: str = "",
    label: str = "",
    cursor: str = "",
) -> HTMLResponse:
    """Schedules in id order, filtered and searched, one page at a time."""
    filters = {"q": q.strip(), "task": task.strip(), "state": state, "label": label.strip()}
    labels = _labels(filters["label"])
    with api_refusals():
        after_id = decode_cursor(cursor, 1)[0] if cursor else None
    common: dict[str, Any] = {
        "task": filters["task"] or None,
        "state": _state(state),
        "labels": labels,
        "after_id": after_id,
    }
    with ctx.engine.connect() as conn:
        if filters["q"]:
            rows, after = schedule_reads.search_schedules(
                conn, filters["q"], limit=PAGE_SIZE, **common
            )
        else:
            rows = schedule_reads.list_schedules(conn, limit=PAGE_SIZE + 1, **common)
            after = rows[PAGE_SIZE - 1]["id"] if len(rows) > PAGE_SIZE else None
            rows = rows[:PAGE_SIZE]
        strips = recent_states(conn, [row["id"] for row in rows])
    context = {
        "page": "schedules",
        "filters": filters,
        "items": [SchedulePublic.from_row(row) for row in rows],
        "strips": strips,
        "next_cursor": encode_cursor(after) if after is not None else None,
        "first_page": not cursor,
        "search_scan": schedule_reads.SEARCH_SCAN,
        "states": [s.value for s in ScheduleState],
    }
    return pages.render(request, viewer, "schedules.html", context)


def _new_form(
    request: Request,
    viewer: Viewer,
    pages: PagesDep,
    fields: dict[str, str],
    refused: Refused | None = None,
    json_text: str | None = None,
) -> HTMLResponse:
    context = {
        "page": "schedules",
        "mode": "new",
        "fields": fields,
        "errors": refused.fields if refused else {},
        "message": refused.message if refused else None,
        "json_mode": json_text is not None,
        "json_text": json_text or _JSON_EXAMPLE,
        "action": f"{UI}/schedules/new",
        "schedule": None,
    }
    status = refused.status if refused else 200
    return pages.render(request, viewer, "schedule_form.html", context, status_code=status)


@router.get("/schedules/new", response_class=HTMLResponse)
def new_schedule_page(request: Request, viewer: Reader, pages: PagesDep) -> HTMLResponse:
    """An empty schedule form with the API's defaults."""
    if not viewer.can_write:
        raise Refused(403, "This API key may only read.")
    return _new_form(request, viewer, pages, dict(NEW_FORM))


def _create(ctx: AppContext, document: dict[str, Any], schedule_id: str, audit: Audit) -> str:
    with api_refusals():
        if not schedule_id:
            body = ScheduleCreate.model_validate(document)
            # The API's create is async (it groups concurrent creates on the event loop);
            # this route runs in a worker thread, so it hands the create to the loop.
            created = anyio.from_thread.run(create_schedule, body, Response(), ctx, audit)
            return created.id
        body = SchedulePut.model_validate({**document, "id": schedule_id})
        with ctx.engine.connect() as conn:
            taken = schedule_reads.find_schedule(conn, schedule_id) is not None
        if taken:
            raise Refused(409, "Some fields need fixing.", {"id": "a schedule has this id"})
        put_schedule(schedule_id, body, Response(), ctx, audit)
    return schedule_id


@router.post("/schedules/new", response_class=HTMLResponse)
def create_from_form(
    request: Request, viewer: Writer, pages: PagesDep, ctx: Context, fields: FormFields
) -> Response:
    """Create a schedule from the form or the JSON editor, through the API's own code."""
    json_mode = "json" in fields
    try:
        if json_mode:
            document = document_of_json(fields["json"])
            schedule_id = str(document.pop("id", "") or "")
        else:
            document = document_of(fields)
            schedule_id = fields.get("id", "").strip()
        created = _create(ctx, document, schedule_id, viewer.audit())
    except Refused as refused:
        shown = {**NEW_FORM, **fields}
        return _new_form(request, viewer, pages, shown, refused, fields.get("json"))
    return redirect(f"{UI}/schedules/{created}?notice=created")
