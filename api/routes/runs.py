"""Runs: a schedule's run history, and one run by id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.auth import Read
from api.deps import Context
from api.errors import invalid_input
from api.field_schemas import UTCDatetime
from api.pagination import decode_cursor, encode_cursor
from api.routes.schedules import ScheduleId
from api.run_schemas import RunPage, RunPublic
from api.strict_route import StrictRoute
from scheduler.store import run_store
from scheduler.store.models import RunState, RunTrigger

router = APIRouter(tags=["runs"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid API key"}}


@router.get(
    "/v1/schedules/{schedule_id}/runs",
    dependencies=[Read],
    responses={**_ERRORS, 404: {"description": "No such schedule"}},
)
def list_runs(
    schedule_id: ScheduleId,
    ctx: Context,
    state: Annotated[list[RunState] | None, Query(description="Repeat for several")] = None,
    trigger: Annotated[
        list[RunTrigger] | None, Query(description="What made the run; repeat for several")
    ] = None,
    since: Annotated[UTCDatetime | None, Query(description="scheduled_for >= since")] = None,
    until: Annotated[UTCDatetime | None, Query(description="scheduled_for < until")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> RunPage:
    """The schedule's runs, newest first (by ``scheduled_for``, then id), one page at a time."""
    before = _decode_run_cursor(cursor) if cursor is not None else None
    with ctx.engine.connect() as conn:
        rows = run_store.list_runs(
            conn,
            schedule_id,
            states=[s.value for s in state or []],
            triggers=[t.value for t in trigger or []],
            since=since,
            until=until,
            before=before,
            limit=limit + 1,
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["scheduled_for"].isoformat(), rows[-1]["id"])
    return RunPage(items=[RunPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/v1/runs/{run_id}",
    dependencies=[Read],
    responses={**_ERRORS, 404: {"description": "No such run"}},
)
def get_run(run_id: Annotated[str, Path(min_length=1, max_length=64)], ctx: Context) -> RunPublic:
    """One run."""
    with ctx.engine.connect() as conn:
        return RunPublic.model_validate(run_store.get_run(conn, run_id))


def _decode_run_cursor(cursor: str) -> tuple[datetime, str]:
    at, run_id = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise invalid_input(("query", "cursor"), "not a cursor this API issued", cursor) from exc
    if when.tzinfo is None:
        raise invalid_input(("query", "cursor"), "not a cursor this API issued", cursor)
    return when, run_id
