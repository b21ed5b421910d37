"""Declarative apply: one source's schedules made to match a list, all or nothing."""

from __future__ import annotations

from fastapi import APIRouter

from api.apply_schemas import ApplyRequest, ApplyResult
from api.audit import ChangeAudit
from api.auth import Write
from api.deps import Context
from api.errors import invalid_input, refuse_repeats
from api.strict_route import StrictRoute
from scheduler.errors import TaskNotAllowed
from scheduler.store import schedule_spec
from scheduler.store.apply import Desired, DesiredCalendar, apply_schedules

router = APIRouter(tags=["apply"], route_class=StrictRoute)


@router.post(
    "/v1/apply",
    dependencies=[Write],
    responses={
        401: {"description": "Missing or invalid API key"},
        403: {"description": "Read-only API key"},
        409: {"description": "A listed schedule is managed by another source"},
        422: {"description": "An entry is invalid; `loc` names it: body.schedules.<index>"},
    },
)
def apply(body: ApplyRequest, ctx: Context, audit: ChangeAudit) -> ApplyResult:
    """Create, replace and (with ``prune``) delete schedules so that ``source`` manages
    exactly ``schedules``, in one transaction: one invalid entry and nothing changes.

    ``calendars`` are created or replaced first, in the same transaction, so the schedules
    may name them; apply never deletes a calendar (calendars belong to no source).

    Each schedule records its source and what was last applied to it. Pruning deletes only
    schedules of the same source, never hand-made ones or another source's; a listed
    hand-made schedule is adopted. A field edited outside apply since the last apply is
    reported as ``drift`` (and set back). Applies of one source run one at a time.
    With ``dry_run`` everything is checked and planned, then rolled back.
    """
    now = ctx.clock()
    refuse_repeats("calendars", "name", "calendar", [c.name for c in body.calendars])
    refuse_repeats("schedules", "id", "entry", [e.id for e in body.schedules])
    desired: list[Desired] = []
    for index, entry in enumerate(body.schedules):
        try:
            schedule_spec.check_task_allowed(entry.task, ctx.settings.allowed_tasks)
        except TaskNotAllowed as exc:
            raise invalid_input(
                ("body", "schedules", index, "task"), exc.message, entry.task
            ) from exc
        desired.append(Desired(entry.id, entry.to_values(now), entry.paused))
    with ctx.engine.connect() as conn:
        conn.begin()
        plan = apply_schedules(
            conn,
            body.source,
            desired,
            prune=body.prune,
            now=now,
            audit=audit,
            fire_time_count=body.fire_times,
            calendars=[DesiredCalendar(c.name, c.spec()) for c in body.calendars],
        )
        if body.dry_run:
            conn.rollback()
        else:
            conn.commit()
    if not body.dry_run:
        for schedule_id in plan.touched:
            ctx.notifier.schedule_changed(schedule_id)
    return ApplyResult.of(plan, dry_run=body.dry_run, prune=body.prune)
