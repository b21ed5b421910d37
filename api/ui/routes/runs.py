"""Runs: those in one state across every schedule (what the overview's counts link to),
and one run with its states, outcome and the other attempts of the same fire."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from api.deps import Context
from api.run_schemas import RunPublic
from api.schedule_schemas import SchedulePublic
from api.ui import describe
from api.ui.access import Reader
from api.ui.overview import DAY, HOUR
from api.ui.pages import UI, PagesDep
from api.ui.refusals import Refused, api_refusals
from api.ui.routes.schedule import run_cursor, runs_page
from scheduler.runs.run_history import attempts_of, runs_in_state
from scheduler.store import run_store, schedule_reads
from scheduler.store.models import RunState

router = APIRouter(prefix=UI)

PAGE_SIZE = 50
WINDOWS = {"hour": HOUR, "day": DAY, "all": None}


@router.get("/runs", response_class=HTMLResponse)
def runs_list(
    request: Request,
    viewer: Reader,
    pages: PagesDep,
    ctx: Context,
    state: str = RunState.FAILED.value,
    window: str = "day",
    cursor: str = "",
) -> HTMLResponse:
    """Runs of every schedule in one state, newest first, one page at a time."""
    if state not in {s.value for s in RunState} or window not in WINDOWS:
        raise Refused(422, "Unknown run state or time window.")
    span = WINDOWS[window]
    since = ctx.clock() - span if span is not None else None
    with ctx.engine.connect() as conn:
        rows = runs_in_state(
            conn, RunState(state), since=since, before=run_cursor(cursor), limit=PAGE_SIZE + 1
        )
    runs, next_cursor = runs_page(rows, PAGE_SIZE)
    context = {
        "page": "runs",
        "state": state,
        "window": window,
        "windows": list(WINDOWS),
        "runs": runs,
        "next_cursor": next_cursor,
        "first_page": not cursor,
    }
    return pages.render(request, viewer, "runs.html", context)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: Annotated[str, Path(min_length=1, max_length=64)],
    viewer: Reader,
    pages: PagesDep,
    ctx: Context,
) -> HTMLResponse:
    """One run: its states with times, worker, result or error, and its retry chain."""
    with api_refusals(), ctx.engine.connect() as conn:
        run = RunPublic.model_validate(run_store.get_run(conn, run_id))
        schedule = SchedulePublic.from_row(schedule_reads.get_schedule(conn, run.schedule_id))
        chain = [
            RunPublic.model_validate(row)
            for row in attempts_of(conn, run.schedule_id, run.scheduled_for)
        ]
    context = {
        "page": "runs",
        "run": run,
        "s": schedule,
        "zone": describe.zone_of(schedule.trigger.model_dump(mode="json")),
        "chain": chain,
    }
    return pages.render(request, viewer, "run.html", context)
