"""Alerts: raised on a missed success deadline, a final failure or an automatic pause;
resolved when the schedule next succeeds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from api.auth import Read
from api.deps import Context
from api.field_schemas import UTCDatetime
from api.history_schemas import AlertPage, AlertPublic
from api.pagination import decode_cursor, encode_cursor
from api.strict_route import StrictRoute
from scheduler.runs import alerts as repo
from scheduler.runs.alerts import AlertKind

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], route_class=StrictRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid API key"}}


@router.get("", dependencies=[Read], responses=_ERRORS)
def list_alerts(
    ctx: Context,
    schedule_id: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[list[AlertKind] | None, Query(description="Repeat for several")] = None,
    state: Literal["open", "resolved"] | None = None,
    since: Annotated[UTCDatetime | None, Query(description="raised_at >= since")] = None,
    until: Annotated[UTCDatetime | None, Query(description="raised_at < until")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> AlertPage:
    """Alerts, newest first, filtered."""
    before = None
    if cursor is not None:
        (text,) = decode_cursor(cursor, 1)
        before = int(text) if text.isdigit() and len(text) < 19 else 0
    with ctx.engine.connect() as conn:
        rows = repo.list_alerts(
            conn,
            schedule_id=schedule_id,
            kinds=[k.value for k in kind or []],
            open_only=None if state is None else state == "open",
            since=since,
            until=until,
            before_id=before,
            limit=limit + 1,
        )
    next_cursor = encode_cursor(str(rows[limit - 1]["id"])) if len(rows) > limit else None
    return AlertPage(items=[AlertPublic.from_row(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.get(
    "/{alert_id}", dependencies=[Read], responses={**_ERRORS, 404: {"description": "No alert"}}
)
def get_alert(alert_id: Annotated[int, Path(ge=1, le=2**62)], ctx: Context) -> AlertPublic:
    """One alert."""
    with ctx.engine.connect() as conn:
        return AlertPublic.from_row(repo.get_alert(conn, alert_id))
