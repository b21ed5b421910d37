"""The API's documents as typed models: triggers, schedules, runs, previews, apply plans.

Responses accept fields the client does not know yet, so a newer server does not break an
older client; a :class:`ScheduleSpec` refuses unknown fields, so a typo fails early.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Cron(_Model):
    """Standard crontab (``0`` and ``7`` are Sunday; six fields = leading seconds)."""

    type: Literal["cron"] = "cron"
    expression: str
    timezone: str = "UTC"


class Interval(_Model):
    """Every ``seconds``, anchored at ``start_at`` or at creation."""

    type: Literal["interval"] = "interval"
    seconds: float


class Date(_Model):
    """Once, at ``run_at`` (timezone-aware)."""

    type: Literal["date"] = "date"
    run_at: datetime


class Delay(_Model):
    """Once, ``seconds`` after the request; the server stores it as a :class:`Date`."""

    type: Literal["delay"] = "delay"
    seconds: float


Trigger = Annotated[Cron | Interval | Date | Delay, Field(discriminator="type")]


class Retry(_Model):
    """Dispatch a failed run again, up to ``max_attempts`` in all, with exponential backoff."""

    max_attempts: int
    backoff_seconds: float = 10
    backoff_max_seconds: float = 3600


class ScheduleSpec(BaseModel):
    """The fields a user sets. Only the fields given are sent; the server fills the rest."""

    model_config = ConfigDict(extra="forbid")

    task: str
    trigger: Trigger
    id: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str = "celery"
    priority: int | None = None
    expires_seconds: float | None = None
    misfire_grace_seconds: float | None = 60
    coalesce: bool = True
    overlap: str = "allow"
    jitter_seconds: float = 0
    retry: Retry | None = None
    pause_after_failures: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    paused: bool = False
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    # Exclusion calendars by name, and what an excluded fire does: "skip" or "next_allowed".
    exclude_calendars: list[str] = Field(default_factory=list)
    on_excluded: str = "skip"
    expect_success_within_seconds: float | None = None
    # Celery's apply_async options: time limits, exchange with routing key, extra headers.
    time_limit_seconds: float | None = None
    soft_time_limit_seconds: float | None = None
    exchange: str | None = None
    routing_key: str | None = None
    headers: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The request body: the fields that were set, as JSON."""
        body = self.model_dump(mode="json", exclude_unset=True, exclude={"id"})
        # A trigger's ``type`` is a default, never "set", yet it is what tells triggers apart.
        body["trigger"] = self.trigger.model_dump(mode="json")
        return body


# pydantic's mypy plugin gives a model that ignores extra fields an ``__init__(**kwargs)``,
# which clashes with the ``kwargs`` field.
class Schedule(ScheduleSpec):  # type: ignore[no-redef]
    """A schedule as stored, with its state, next fire time and run counters."""

    model_config = ConfigDict(extra="ignore")

    id: str
    state: str
    state_reason: str | None = None
    managed_by: str | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_state: str | None = None
    run_count: int = 0
    failure_count: int = 0
    consecutive_failures: int = 0
    missed_count: int = 0
    skipped_count: int = 0
    created_at: datetime
    updated_at: datetime
    version: int


class Created(_Model):
    """What a batch create made of one entry (``get(id)`` has the whole schedule)."""

    id: str
    version: int
    state: str
    next_run_at: datetime | None = None
    replayed: bool = False


class Run(_Model):
    """One fire of a schedule and what became of it."""

    id: str
    schedule_id: str
    scheduled_for: datetime
    trigger: str
    state: str
    attempt: int
    task: str
    reason: str | None = None
    due_at: datetime | None = None
    schedule_version: int | None = None
    created_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    result: Any = None
    error: Any = None


class Page(_Model, Generic[T]):
    """One page; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[T]
    next_cursor: str | None = None


class Preview(_Model):
    """Next fire times, and when each is published (the fire time plus its jitter)."""

    fire_times: list[datetime]
    due_times: list[datetime] = Field(default_factory=list)


class Leader(_Model):
    """The replica holding the lease."""

    replica_id: str
    hostname: str | None = None
    pid: int | None = None
    fencing_token: int
    since: datetime | None = None
    lease_expires_at: datetime


class Replica(_Model):
    """A scheduler replica seen recently."""

    replica_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime


class SchedulerStatus(_Model):
    """Who leads, and which replicas are alive."""

    leader: Leader | None
    replicas: list[Replica]


class Health(_Model):
    """Liveness or readiness, with each readiness check."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    detail: str | None = None


class FieldChange(_Model):
    """A field that differs."""

    field: str
    before: Any = None
    after: Any = None


class PlanEntry(_Model):
    """What an apply does to one schedule."""

    id: str
    changes: list[FieldChange] = Field(default_factory=list)
    drift: list[FieldChange] = Field(default_factory=list)
    adopted: bool = False
    fire_times_before: list[datetime] = Field(default_factory=list)
    fire_times_after: list[datetime] = Field(default_factory=list)


class CalendarEntry(_Model):
    """What an apply does to one calendar."""

    name: str
    changes: list[FieldChange] = Field(default_factory=list)


class CalendarPlan(_Model):
    """The calendars an apply created, changed and left as they were (never deleted), and
    the schedules it re-armed because a calendar they name changed."""

    created: list[CalendarEntry] = Field(default_factory=list)
    changed: list[CalendarEntry] = Field(default_factory=list)
    unchanged: list[CalendarEntry] = Field(default_factory=list)
    rearmed: list[str] = Field(default_factory=list)


class ApplyPlan(_Model):
    """What an apply created, changed, kept and pruned (or would, in a dry run)."""

    source: str
    dry_run: bool
    prune: bool
    created: list[PlanEntry] = Field(default_factory=list)
    changed: list[PlanEntry] = Field(default_factory=list)
    unchanged: list[PlanEntry] = Field(default_factory=list)
    pruned: list[PlanEntry] = Field(default_factory=list)
    orphaned: list[PlanEntry] = Field(default_factory=list)
    calendars: CalendarPlan = Field(default_factory=CalendarPlan)

    @property
    def changes_anything(self) -> bool:
        """True when the apply creates, changes, adopts or prunes something."""
        adopted = any(e.adopted for e in self.unchanged)
        calendars = self.calendars.created or self.calendars.changed
        return bool(self.created or self.changed or self.pruned or adopted or calendars)
