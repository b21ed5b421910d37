"""Response bodies of the change history, the audit list, the fire timeline and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.field_schemas import example_config
from api.run_schemas import RunPublic


class ChangePublic(BaseModel):
    """One recorded change: when, who (the API key's name, ``anonymous``, or ``scheduler``),
    why, what (``kind``), and, for a change that made a version, that version's spec."""

    model_config = example_config(
        {
            "id": 42,
            "at": "2026-11-21T12:00:00Z",
            "schedule_id": "nightly-report",
            "calendar": None,
            "kind": "update",
            "actor": "alice",
            "reason": "move after the backup window",
            "version": 3,
            "state": "active",
            "diff": {
                "trigger": {"from": {"expression": "0 3 * * *"}, "to": {"expression": "30 4 * * *"}}
            },
            "spec": {"task": "reports.generate", "trigger": {"type": "cron"}},
            "details": None,
        }
    )

    id: int
    at: datetime
    schedule_id: str | None
    calendar: str | None
    kind: str
    actor: str
    reason: str | None
    version: int | None = Field(description="The schedule's version after the change.")
    state: str | None = Field(description="The schedule's state after the change.")
    diff: dict[str, Any] | None = Field(description='Changed fields: {"from": …, "to": …}.')
    spec: dict[str, Any] | None = Field(description="The whole spec of `version`.")
    details: dict[str, Any] | None = Field(description="The run id of a trigger, a backfill…")


class ChangePage(BaseModel):
    """Changes, newest first; pass ``next_cursor`` back as ``cursor`` for older ones."""

    items: list[ChangePublic]
    next_cursor: str | None


class RestoreRequest(BaseModel):
    """Optional reason for a restore (the ``X-Sundial-Reason`` header works too)."""

    model_config = example_config(
        {"reason": "roll back the broken cron change"}, extra="forbid", strict=True
    )

    reason: str | None = Field(default=None, max_length=1000)


class Gap(BaseModel):
    """A stretch with no leader."""

    start: datetime
    end: datetime | None


class TimelineEntry(BaseModel):
    """One instant the trigger planned, and what became of it.

    ``status`` is the run's state when there is a run; otherwise ``not_fired`` (in the past),
    ``due`` (just due, not yet recorded), ``upcoming`` or ``not_planned`` (outside
    ``start_at``/``end_at``). ``cause`` says why: ``calendar``, ``moved``, ``coalesced``,
    ``overlap``, ``late`` (missed beyond the grace), ``no_leader``, ``paused``,
    ``outside_window``, ``not_due``, ``backfill``/``manual``/``retry``, ``pruned`` or
    ``no_record``; ``detail`` says it in words.
    """

    model_config = example_config(
        {
            "scheduled_for": "2026-12-25T02:00:00Z",
            "due_at": "2026-12-25T02:00:00Z",
            "status": "skipped",
            "cause": "calendar",
            "detail": "excluded by calendar 'holidays-de' (Christmas Day)",
            "run": None,
            "attempts": 1,
            "schedule_version": 3,
            "paused": None,
            "calendar": "holidays-de",
            "moved_to": None,
            "late_seconds": None,
            "leader_gap": None,
        }
    )

    scheduled_for: datetime
    due_at: datetime = Field(description="The fire time plus the schedule's jitter.")
    status: str
    cause: str | None
    detail: str
    run: RunPublic | None = Field(description="The latest attempt, when the fire was recorded.")
    attempts: int
    schedule_version: int | None
    paused: dict[str, Any] | None = Field(description="since, actor, reason of the pause.")
    calendar: str | None
    moved_to: datetime | None
    late_seconds: float | None
    leader_gap: Gap | None


class TimelinePage(BaseModel):
    """Planned instants in ``[since, until)``, oldest first, one page at a time."""

    schedule_id: str
    since: datetime
    until: datetime
    items: list[TimelineEntry]
    next_cursor: str | None


class AlertPublic(BaseModel):
    """An alert: a missed success deadline, a final failure or an automatic pause."""

    model_config = example_config(
        {
            "id": 7,
            "schedule_id": "nightly-report",
            "kind": "deadline",
            "scheduled_for": "2026-11-22T02:00:00Z",
            "run_id": None,
            "message": "schedule nightly-report: the fire of 2026-11-22T02:00:00+00:00 "
            "has not succeeded within 3600s (run state: failed)",
            "raised_at": "2026-11-22T03:00:01Z",
            "resolved_at": None,
            "resolution": None,
            "delivery": {"pending": "raised", "attempts": 1, "last_error": "answered 503"},
        }
    )

    id: int
    schedule_id: str
    kind: str
    scheduled_for: datetime | None
    run_id: str | None
    message: str
    raised_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    delivery: dict[str, Any] = Field(
        description="Webhook delivery: the event still to send, attempts, last error."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AlertPublic:
        """Build from an ``alerts`` row."""
        delivery = {
            "pending": row["notify"],
            "attempts": row["notify_attempts"],
            "next_attempt_at": row["notify_next_at"],
            "delivered_at": row["notified_at"],
            "last_error": row["notify_error"],
        }
        return cls.model_validate({**row, "delivery": delivery})


class AlertPage(BaseModel):
    """Alerts, newest first."""

    items: list[AlertPublic]
    next_cursor: str | None
