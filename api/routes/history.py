"""Change history and audit: a schedule's changes (also once it is deleted), every change
with filters, and restoring an earlier version in one call."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.audit import ChangeAudit
from api.auth import Read, Write
from api.deps import Context
from api.errors import invalid_input
from api.field_schemas import UTCDatetime
from api.history_schemas import ChangePage, ChangePublic, RestoreRequest
from api.pagination import decode_cursor, encode_cursor
from api.routes.schedules import ScheduleId, public, upsert
from api.schedule_schemas import ScheduleCreate, SchedulePublic
from api.strict_route import StrictRoute
from scheduler.errors import NotFound
from scheduler.store import history, schedule_reads, schedule_spec
from scheduler.store.history import Kind
from scheduler.store.models import ScheduleState

router = APIRouter(tags=["history"], route_class=StrictRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid API key"}}


def _page(rows: list[dict[str, Any]], limit: int) -> ChangePage:
    next_cursor = encode_cursor(str(rows[limit - 1]["id"])) if len(rows) > limit else None
    return ChangePage(
        items=[ChangePublic.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (text,) = decode_cursor(cursor, 1)
    if not text.isdigit() or len(text) > 18:
        raise invalid_input(("query", "cursor"), "not a cursor this API issued", cursor)
    return int(text)


Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=1024)]


@router.get(
    "/v1/schedules/{schedule_id}/history",
    dependencies=[Read],
    responses={**_ERRORS, 404: {"description": "No schedule and no history with this id"}},
)
def schedule_history(
    schedule_id: ScheduleId, ctx: Context, limit: Limit = 100, cursor: Cursor = None
) -> ChangePage:
    """Every change to the schedule, newest first; still there after it is deleted."""
    with ctx.engine.connect() as conn:
        rows = history.list_changes(
            conn, schedule_id=schedule_id, before_id=_before(cursor), limit=limit + 1
        )
        if not rows and cursor is None:
            schedule_reads.get_schedule(conn, schedule_id)
    return _page(rows, limit)


@router.get("/v1/audit", dependencies=[Read], responses=_ERRORS)
def audit_list(
    ctx: Context,
    actor: Annotated[list[str] | None, Query(description="Repeat for several")] = None,
    kind: Annotated[list[str] | None, Query(description=", ".join(Kind.ALL))] = None,
    schedule_id: Annotated[str | None, Query(max_length=128)] = None,
    calendar: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[UTCDatetime | None, Query(description="at >= since")] = None,
    until: Annotated[UTCDatetime | None, Query(description="at < until")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ChangePage:
    """Every change to any schedule or calendar, newest first, filtered."""
    unknown = [k for k in kind or [] if k not in Kind.ALL]
    if unknown:
        raise invalid_input(("query", "kind"), f"unknown kind; one of {', '.join(Kind.ALL)}")
    with ctx.engine.connect() as conn:
        rows = history.list_changes(
            conn,
            schedule_id=schedule_id,
            calendar=calendar,
            actors=actor or [],
            kinds=kind or [],
            since=since,
            until=until,
            before_id=_before(cursor),
            limit=limit + 1,
        )
    return _page(rows, limit)


@router.post(
    "/v1/schedules/{schedule_id}/history/{version}/restore",
    dependencies=[Write],
    responses={
        **_ERRORS,
        201: {"description": "Re-created (the schedule had been deleted)"},
        404: {"description": "No such version"},
    },
)
def restore_version(
    schedule_id: ScheduleId,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    body: RestoreRequest | None = None,
) -> SchedulePublic:
    """Make the schedule's spec that of ``version`` again (a new version, recorded as a
    ``restore``). An existing schedule keeps its state (paused or active); a deleted one is
    made again, in the state the version had."""
    now = ctx.clock()
    audit = replace(
        audit,
        kind=Kind.RESTORE,
        reason=(body.reason if body and body.reason else audit.reason),
        details={"restored_version": version},
    )
    with ctx.engine.begin() as conn:
        found = history.find_version(conn, schedule_id, version)
        if found is None:
            raise NotFound(f"schedule {schedule_id!r} has no version {version} in its history")
        spec = dict(found["spec"])
        current = schedule_reads.find_schedule(conn, schedule_id, for_update=True)
        if current is not None:
            spec["paused"] = current["state"] == ScheduleState.PAUSED
        try:
            restored = ScheduleCreate.model_validate(spec)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**e, "loc": ("version", *e["loc"])} for e in errors]
            ) from exc
        schedule_spec.check_task_allowed(restored.task, ctx.settings.allowed_tasks)
        values = restored.to_values(now)
        row = upsert(conn, schedule_id, current, values, restored.paused, now, audit, response)
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)
