"""What a schedule is: its user-set values, its spec document and change record, allowed tasks."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, get_type_hints

from scheduler.errors import TaskNotAllowed
from scheduler.store.history import Audit, change_row
from scheduler.store.models import ScheduleState

Row = dict[str, Any]


class ScheduleValues(TypedDict):
    """The user-set columns of a schedule, validated, with the trigger resolved to JSON."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    trigger: dict[str, Any]
    queue: str
    priority: int | None
    expires_seconds: float | None
    misfire_grace_seconds: float | None
    coalesce: bool
    overlap: str
    jitter_seconds: float
    retry: dict[str, Any] | None
    pause_after_failures: int | None
    start_at: datetime | None
    end_at: datetime | None
    description: str
    labels: dict[str, str]
    exclude_calendars: list[str]
    on_excluded: str
    expect_success_within_seconds: float | None
    time_limit_seconds: float | None
    soft_time_limit_seconds: float | None
    exchange: str | None
    routing_key: str | None
    headers: dict[str, Any] | None


VALUE_COLUMNS = tuple(ScheduleValues.__annotations__)
_TIME_COLUMNS = tuple(
    name for name, kind in get_type_hints(ScheduleValues).items() if kind == datetime | None
)


def spec_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule's whole specification as JSON (what ``PUT`` takes): a version's record."""
    # Only the time columns need converting: testing every value's type cost a batch
    # create a tenth of its time.
    spec = {name: row.get(name) for name in VALUE_COLUMNS}
    for name in _TIME_COLUMNS:
        if (value := spec[name]) is not None:
            spec[name] = value.isoformat()
    spec["exclude_calendars"] = list(spec["exclude_calendars"] or [])
    spec["on_excluded"] = spec["on_excluded"] or "skip"
    spec["headers"] = dict(row.get("headers") or {})
    spec["paused"] = row["state"] == ScheduleState.PAUSED
    return spec


def spec_change(
    audit: Audit, kind: str, now: datetime, after: Row, before: Row | None = None
) -> Row:
    """The change record of a write that left ``after`` (replacing ``before``, if any)."""
    return change_row(
        audit,
        kind,
        now,
        schedule_id=after["id"],
        version=after["version"],
        state=after["state"],
        before=spec_of(before) if before is not None else None,
        after=spec_of(after),
    )


def check_task_allowed(task: str, patterns: Sequence[str]) -> None:
    """Raise :class:`TaskNotAllowed` unless ``task`` matches one of the glob ``patterns``."""
    if not any(fnmatch.fnmatchcase(task, pattern) for pattern in patterns):
        raise TaskNotAllowed("task", f"task {task!r} is not in SUNDIAL_ALLOWED_TASKS")
