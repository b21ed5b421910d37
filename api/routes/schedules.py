"""Schedules: create, replace, list, read, merge-patch and delete."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Connection

from api.audit import ChangeAudit
from api.auth import Read, Write
from api.batch_schemas import BatchCreate, BatchCreated, BatchResult
from api.deps import AppContext, Context
from api.errors import invalid_input, refuse_repeats
from api.etags import check_if_match, etag
from api.field_schemas import LABEL_KEY_PATTERN, SCHEDULE_ID_PATTERN
from api.merge_patch import merge_patch
from api.pagination import decode_cursor, encode_cursor
from api.schedule_schemas import (
    ScheduleCreate,
    SchedulePage,
    SchedulePatch,
    SchedulePublic,
    SchedulePut,
)
from api.strict_route import StrictRoute
from scheduler.errors import PreconditionFailed, TaskNotAllowed
from scheduler.leadership.notices import ChangeNotifier
from scheduler.store import schedule_creation, schedule_reads, schedule_spec, schedule_updates
from scheduler.store.history import Audit
from scheduler.store.models import ScheduleState
from scheduler.store.schedule_creation import NewSchedule
from scheduler.store.schedule_spec import Row, ScheduleValues

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=StrictRoute)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)

ScheduleId = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN, examples=["nightly-report"])]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", description='"<version>" from the ETag, or *')
]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", description="`*`: create only; 412 if the id exists"),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Read-only API key"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such schedule"}}
_PATCH_BODY = {
    "requestBody": {
        "content": {
            "application/merge-patch+json": {
                "schema": {"$ref": "#/components/schemas/SchedulePatch"}
            }
        }
    }
}


def location(schedule_id: str) -> str:
    """The URL path of a schedule."""
    return f"{router.prefix}/{schedule_id}"


def public(row: dict[str, Any], response: Response) -> SchedulePublic:
    """The schedule's public form, with its ETag set on ``response``."""
    response.headers["ETag"] = etag(row["version"])
    return SchedulePublic.from_row(row)


def upsert(
    conn: Connection,
    schedule_id: str,
    current: dict[str, Any] | None,
    values: ScheduleValues,
    paused: bool,
    now: datetime,
    audit: Audit,
    response: Response,
) -> dict[str, Any]:
    """Replace ``current``, or create the schedule (201 with ``Location``) when it is None."""
    if current is not None:
        return schedule_updates.replace_schedule(
            conn, current, values, paused=paused, now=now, audit=audit
        )
    row = schedule_creation.create_schedule(
        conn, schedule_id, values, paused=paused, now=now, audit=audit
    )
    response.status_code = status.HTTP_201_CREATED
    response.headers["Location"] = location(schedule_id)
    return row


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Write],
    responses={**_ERRORS, 409: {"description": "Idempotency-Key reused with another body"}},
)
async def create_schedule(
    body: ScheduleCreate,
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> SchedulePublic:
    """Create a schedule with a server-chosen id.

    With an ``Idempotency-Key``, repeating the same request returns the same schedule
    (201 again, with ``Idempotent-Replayed: true``); another body with that key is a 409.
    """
    # Async, unlike the other routes: no thread hop per request. The body is checked here,
    # on the event loop (no I/O); the store is reached once per group of concurrent
    # creates, from a worker thread (see api.group_commit).
    now = ctx.clock()
    new = _new_schedules(ctx, [(body, idempotency_key)], now, items_at=None)
    [(row, replayed)] = await ctx.committer.create(new, now=now, audit=audit)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = location(row["id"])
    return public(row, response)


@router.post(
    ":batch",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Write],
    responses={
        **_ERRORS,
        409: {"description": "An entry's idempotency_key was used with another body"},
        413: {"description": "The body exceeds SUNDIAL_MAX_BODY_BYTES"},
        422: {"description": "An entry is invalid; `loc` names it: body.schedules.<index>"},
    },
)
def create_schedules(body: BatchCreate, ctx: Context, audit: ChangeAudit) -> BatchResult:
    """Create up to 1,000 schedules with server-chosen ids in one transaction: all of
    them, or, when one entry is invalid (422 naming ``body.schedules.<index>.<field>``)
    or conflicts (409), none. Results come in the order of the entries.

    Each entry may carry an ``idempotency_key``, as the header of a single create: a
    batch sent again after a lost response replays every entry (``replayed: true``)
    instead of creating it twice.
    """
    keys = [entry.idempotency_key for entry in body.schedules]
    refuse_repeats("schedules", "idempotency_key", "entry", keys)
    entries = [(entry, entry.idempotency_key) for entry in body.schedules]
    now = ctx.clock()
    new = _new_schedules(ctx, entries, now, items_at="schedules")
    with ctx.engine.begin() as conn:
        made = schedule_creation.create_schedules(
            conn, new, now=now, audit=audit, fresh_ids=True, items_at="schedules"
        )
    announce_created(ctx.notifier, made)
    replayed = sum(1 for _, again in made if again)
    return BatchResult(
        items=[
            BatchCreated(
                id=row["id"],
                version=row["version"],
                state=row["state"],
                next_run_at=row["next_run_at"],
                replayed=again,
            )
            for row, again in made
        ],
        created=len(made) - replayed,
        replayed=replayed,
    )


def _new_schedules(
    ctx: AppContext,
    entries: Sequence[tuple[ScheduleCreate, str | None]],
    now: datetime,
    items_at: str | None,
) -> list[NewSchedule]:
    """What single and batch creates insert: each entry checked (task allowed) and turned
    into stored values (a delay becomes its date), with a fresh id; arming happens in the
    store. No I/O: the single create calls this on the event loop."""
    new = []
    ids = schedule_creation.new_ids(len(entries))
    allowed: set[str] = set()  # a batch names few tasks: each is matched once
    for index, (spec, key) in enumerate(entries):
        try:
            if spec.task not in allowed:
                schedule_spec.check_task_allowed(spec.task, ctx.settings.allowed_tasks)
                allowed.add(spec.task)
        except TaskNotAllowed as exc:
            if items_at is None:
                raise
            raise TaskNotAllowed(f"{items_at}.{index}.{exc.field}", exc.message) from exc
        fingerprint = spec.fingerprint() if key is not None else ""
        values = spec.to_values(now)
        new.append(NewSchedule(ids[index], values, spec.paused, key, fingerprint))
    return new


def announce_created(notifier: ChangeNotifier, made: Sequence[tuple[Row, bool]]) -> None:
    """One change notice for what a transaction created, if anything (replays are not
    news), due when the first of them is."""
    created = [row for row, replayed in made if not replayed]
    if created:
        notifier.schedule_changed(created[0]["id"], first_due(created))


def first_due(created: Sequence[Row]) -> datetime | None:
    """When the leader first needs to see new schedules: the earliest instant one of them
    falls due (a paused one never does); None, look now, when none has one."""
    return min(
        (row["next_due_at"] for row in created if row["next_due_at"] is not None), default=None
    )


@router.put(
    "/{schedule_id}",
    dependencies=[Write],
    responses={
        **_ERRORS,
        201: {"description": "Created", "model": SchedulePublic},
        412: {"description": "If-Match does not match, or If-None-Match: * and the id exists"},
    },
)
def put_schedule(
    schedule_id: ScheduleId,
    body: SchedulePut,
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> SchedulePublic:
    """Create (201) or replace (200) the schedule with this id: a declarative upsert.

    ``If-None-Match: *`` makes it create-only: 412 when the id is taken.
    """
    if if_none_match is not None and if_none_match.strip() != "*":
        raise invalid_input(("header", "If-None-Match"), "only * is supported", if_none_match)
    if body.id is not None and body.id != schedule_id:
        raise invalid_input(("body", "id"), "must match the id in the path", body.id)
    now = ctx.clock()
    schedule_spec.check_task_allowed(body.task, ctx.settings.allowed_tasks)
    values = body.to_values(now)
    with ctx.engine.begin() as conn:
        current = schedule_reads.find_schedule(conn, schedule_id, for_update=True)
        check_if_match(if_match, current["version"] if current is not None else None)
        if if_none_match is not None and current is not None:
            raise PreconditionFailed(f"schedule {schedule_id!r} already exists")
        row = upsert(conn, schedule_id, current, values, body.paused, now, audit, response)
    # Only a create may wait for the leader's next look: a change of a schedule it may
    # already hold a prepared fire of needs the leader now.
    ctx.notifier.schedule_changed(schedule_id, first_due([row]) if current is None else None)
    return public(row, response)


@router.get("", dependencies=[Read], responses=_ERRORS)
def list_schedules(
    ctx: Context,
    task: Annotated[str | None, Query(max_length=255)] = None,
    state: ScheduleState | None = None,
    label: Annotated[
        list[str] | None, Query(description="`key:value`; repeat to require several labels")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> SchedulePage:
    """Schedules in id order, filtered, one page at a time."""
    labels = _parse_labels(label or [])
    after_id = decode_cursor(cursor, 1)[0] if cursor is not None else None
    with ctx.engine.connect() as conn:
        rows = schedule_reads.list_schedules(
            conn, task=task, state=state, labels=labels, after_id=after_id, limit=limit + 1
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["id"])
    return SchedulePage(items=[SchedulePublic.from_row(r) for r in rows], next_cursor=next_cursor)


@router.get("/{schedule_id}", dependencies=[Read], responses={**_ERRORS, **_NOT_FOUND})
def get_schedule(schedule_id: ScheduleId, response: Response, ctx: Context) -> SchedulePublic:
    """One schedule, with ``ETag: "<version>"``."""
    with ctx.engine.connect() as conn:
        row = schedule_reads.get_schedule(conn, schedule_id)
    return public(row, response)


@router.patch(
    "/{schedule_id}",
    dependencies=[Write],
    responses={**_ERRORS, **_NOT_FOUND, 412: {"description": "If-Match does not match"}},
    openapi_extra=_PATCH_BODY,
)
def patch_schedule(
    schedule_id: ScheduleId,
    patch: SchedulePatch,
    response: Response,
    ctx: Context,
    audit: ChangeAudit,
    if_match: IfMatch = None,
) -> SchedulePublic:
    """Apply a JSON merge patch; the merged result must be a valid schedule."""
    now = ctx.clock()
    changes = patch.model_dump(mode="json", exclude_unset=True)
    with ctx.engine.begin() as conn:
        current = schedule_reads.get_schedule(conn, schedule_id, for_update=True)
        check_if_match(if_match, current["version"])
        merged = _merge(SchedulePublic.from_row(current).spec_document(), changes)
        spec = _validate_merged(merged, ctx)
        row = schedule_updates.replace_schedule(
            conn, current, spec.to_values(now), paused=spec.paused, now=now, audit=audit
        )
    ctx.notifier.schedule_changed(schedule_id)
    return public(row, response)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Write],
    responses={**_ERRORS, **_NOT_FOUND, 412: {"description": "If-Match does not match"}},
)
def delete_schedule(
    schedule_id: ScheduleId, ctx: Context, audit: ChangeAudit, if_match: IfMatch = None
) -> None:
    """Delete a schedule and its runs; its future fires stop at once. Its change history
    stays (``GET /v1/schedules/{id}/history``), and any version can be restored."""
    with ctx.engine.begin() as conn:
        if if_match is not None:
            check_if_match(if_match, schedule_reads.get_schedule(conn, schedule_id)["version"])
        schedule_updates.delete_schedule(conn, schedule_id, ctx.clock(), audit)
    ctx.notifier.schedule_changed(schedule_id)


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise invalid_input(("query", "label"), "expected key:value with a valid key", pair)
        labels[key] = value
    return labels


def _merge(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    trigger = changes.get("trigger")
    if (
        isinstance(trigger, dict)
        and trigger.get("type", document["trigger"]["type"]) != (document["trigger"]["type"])
    ):
        # A new kind of trigger shares no fields with the old one: replace, don't merge.
        document = {**document, "trigger": {}}
    merged: dict[str, Any] = merge_patch(document, changes)
    return merged


def _validate_merged(merged: dict[str, Any], ctx: AppContext) -> ScheduleCreate:
    try:
        spec = ScheduleCreate.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc
    schedule_spec.check_task_allowed(spec.task, ctx.settings.allowed_tasks)
    return spec
