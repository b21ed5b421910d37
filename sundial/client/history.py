"""What sundial records beside schedules, as typed models: changes (history and audit),
the fire timeline, and alerts. Like the other responses they accept fields a newer server
adds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sundial.client.models import Page, Run


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Change(_Model):
    """One recorded change: when, who (the API key's name, ``anonymous`` or
    ``scheduler``), why, what (``kind``), the field ``diff`` (``{field: {"from", "to"}}``)
    and, for a change that made a version, that version's whole ``spec``."""

    id: int
    at: datetime
    schedule_id: str | None = None
    calendar: str | None = None
    kind: str
    actor: str
    reason: str | None = None
    version: int | None = None
    state: str | None = None
    diff: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    details: dict[str, Any] | None = None


class LeaderGap(_Model):
    """A stretch with no leader (``end`` None: still none, or the window ends first)."""

    start: datetime
    end: datetime | None = None


class Pause(_Model):
    """When a pause began, by whom and why."""

    since: datetime
    actor: str
    reason: str | None = None


class TimelineEntry(_Model):
    """One instant the trigger planned and what became of it: ``status`` is the run's state
    when it was recorded, else ``not_fired``, ``due``, ``upcoming`` or ``not_planned``;
    ``cause`` and ``detail`` say why."""

    scheduled_for: datetime
    due_at: datetime
    status: str
    cause: str | None = None
    detail: str = ""
    run: Run | None = None
    attempts: int = 0
    schedule_version: int | None = None
    paused: Pause | None = None
    calendar: str | None = None
    moved_to: datetime | None = None
    late_seconds: float | None = None
    leader_gap: LeaderGap | None = None


class Timeline(Page[TimelineEntry]):
    """Planned instants in ``[since, until)``, oldest first, one page at a time."""

    schedule_id: str
    since: datetime
    until: datetime


class Alert(_Model):
    """A missed success deadline, a final failure or an automatic pause; resolved when the
    schedule next succeeds. ``delivery`` is the webhook's state."""

    id: int
    schedule_id: str
    kind: str
    scheduled_for: datetime | None = None
    run_id: str | None = None
    message: str
    raised_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None
    delivery: dict[str, Any] = Field(default_factory=dict)

    @property
    def open(self) -> bool:
        """True until it is resolved."""
        return self.resolved_at is None
