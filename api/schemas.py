"""Request and response bodies: Create / Put / Patch inputs and Public outputs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from api.examples import (
    CRON_EXAMPLE,
    PUBLIC_EXAMPLE,
    RUN_EXAMPLE,
    SPEC_EXAMPLE,
    TRIGGER_EXAMPLES,
)
from scheduler.models import Overlap, RunState, RunTrigger, ScheduleState
from scheduler.schedules import ScheduleValues
from scheduler.triggers import StoredTrigger, TriggerSpec, resolve

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Label keys exclude ':' so that the list filter `label=k:v` is unambiguous.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=256)]


def _in_range(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except OverflowError as exc:
        raise ValueError("date is out of the representable range") from exc


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is out of the representable range") from exc


Trigger = Annotated[TriggerSpec, WrapValidator(_in_range)]
UTCDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An RFC 3339 time with an offset (naive is refused), converted to UTC."""


def _config(*examples: Any, extra: Literal["forbid", "ignore"] = "ignore") -> ConfigDict:
    return ConfigDict(extra=extra, json_schema_extra={"examples": list(examples)})


class RetryPolicy(BaseModel):
    """Dispatch a failed run again, up to ``max_attempts`` in all, with exponential backoff."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"max_attempts": 3, "backoff_seconds": 10, "backoff_max_seconds": 600}]
        },
    )

    max_attempts: int = Field(ge=1, le=100)
    backoff_seconds: float = Field(default=10, ge=0, le=86400)
    backoff_max_seconds: float = Field(default=3600, ge=0, le=7 * 86400)


class _ScheduleFields(BaseModel):
    """Every user-set field of a schedule except its trigger."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=255, examples=["reports.generate"])
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict, examples=[{"format": "pdf"}])
    queue: str = Field(default="celery", min_length=1, max_length=255)
    priority: int | None = Field(default=None, ge=0, le=255)
    expires_seconds: float | None = Field(default=None, gt=0, le=366 * 86400)
    misfire_grace_seconds: float | None = Field(default=60, ge=0, le=366 * 86400)
    coalesce: bool = True
    overlap: Overlap = Overlap.ALLOW
    jitter_seconds: float = Field(default=0, ge=0, le=86400)
    retry: RetryPolicy | None = None
    pause_after_failures: int | None = Field(default=None, ge=1, le=1_000_000)
    start_at: UTCDatetime | None = None
    end_at: UTCDatetime | None = None
    paused: bool = False
    description: str = Field(default="", max_length=10_000)
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=64, examples=[{"team": "billing"}]
    )

    @field_validator("end_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_at")
        if value is not None and start is not None and value <= start:
            raise ValueError("end_at must be after start_at")
        return value


class ScheduleCreate(_ScheduleFields):
    """A new schedule; the server picks its id."""

    model_config = _config(
        SPEC_EXAMPLE,
        {"task": "sundial.echo", "trigger": {"type": "delay", "seconds": 30}},
        extra="forbid",
    )

    trigger: Trigger = Field(examples=TRIGGER_EXAMPLES)

    def to_values(self, now: datetime) -> ScheduleValues:
        """The columns to store; a delay trigger becomes the date it means at ``now``."""
        return ScheduleValues(
            task=self.task,
            args=self.args,
            kwargs=self.kwargs,
            trigger=resolve(self.trigger, now).model_dump(mode="json"),
            queue=self.queue,
            priority=self.priority,
            expires_seconds=self.expires_seconds,
            misfire_grace_seconds=self.misfire_grace_seconds,
            coalesce=self.coalesce,
            overlap=self.overlap.value,
            jitter_seconds=self.jitter_seconds,
            retry=self.retry.model_dump(mode="json") if self.retry is not None else None,
            pause_after_failures=self.pause_after_failures,
            start_at=self.start_at,
            end_at=self.end_at,
            description=self.description,
            labels=self.labels,
        )

    def fingerprint(self) -> str:
        """A hash of the request, to tell an Idempotency-Key replay from a reuse."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class SchedulePut(ScheduleCreate):
    """The whole desired schedule for ``PUT``; ``id``, if given, must match the path."""

    model_config = _config(SPEC_EXAMPLE, {**SPEC_EXAMPLE, "id": "nightly-report"}, extra="forbid")

    id: str | None = Field(default=None, pattern=SCHEDULE_ID_PATTERN)


class SchedulePatch(BaseModel):
    """A JSON merge patch (RFC 7396): members replace, ``null`` removes, objects merge.

    A trigger whose ``type`` changes replaces the old trigger instead of merging into it.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"paused": True},
                {"trigger": {"expression": "30 4 * * *"}, "labels": {"team": None}},
            ]
        },
    )

    task: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    trigger: dict[str, Any] | None = None
    queue: str | None = None
    priority: int | None = None
    expires_seconds: float | None = None
    misfire_grace_seconds: float | None = None
    coalesce: bool | None = None
    overlap: Overlap | None = None
    jitter_seconds: float | None = None
    retry: dict[str, Any] | None = None
    pause_after_failures: int | None = None
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    paused: bool | None = None
    description: str | None = None
    labels: dict[str, str | None] | None = None


class SchedulePublic(_ScheduleFields):
    """A schedule as stored, with its state and next fire time."""

    model_config = _config(PUBLIC_EXAMPLE)

    id: str = Field(examples=["nightly-report"])
    trigger: StoredTrigger
    state: ScheduleState
    state_reason: str | None = None
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SchedulePublic:
        """Build from a ``schedules`` row."""
        return cls.model_validate({**row, "paused": row["state"] == ScheduleState.PAUSED})

    def spec_document(self) -> dict[str, Any]:
        """The user-set fields as JSON: the document a merge patch applies to."""
        return self.model_dump(mode="json", include=set(_ScheduleFields.model_fields) | {"trigger"})


class SchedulePage(BaseModel):
    """One page of schedules; pass ``next_cursor`` back as ``cursor`` for the next."""

    model_config = _config({"items": [PUBLIC_EXAMPLE], "next_cursor": "WyJuaWdodGx5LXJlcG9ydCJd"})

    items: list[SchedulePublic]
    next_cursor: str | None


class RunPublic(BaseModel):
    """One fire of a schedule and what became of it."""

    model_config = _config(RUN_EXAMPLE)

    id: str
    schedule_id: str
    scheduled_for: datetime
    trigger: RunTrigger
    state: RunState
    attempt: int
    task: str
    reason: str | None = None
    created_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    result: Any = None
    error: Any = None


class RunPage(BaseModel):
    """One page of runs, newest first."""

    model_config = _config({"items": [RUN_EXAMPLE], "next_cursor": None})

    items: list[RunPublic]
    next_cursor: str | None


class PreviewRequest(BaseModel):
    """A trigger to list the next fire times of, as the scheduler will compute them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"trigger": CRON_EXAMPLE, "after": "2026-11-21T00:00:00Z", "count": 5},
                {"trigger": {"type": "interval", "seconds": 900}},
            ]
        },
    )

    trigger: Trigger = Field(examples=TRIGGER_EXAMPLES)
    after: UTCDatetime | None = Field(default=None, description="Default: now.")
    count: int = Field(default=10, ge=1, le=1000)
    start_at: UTCDatetime | None = None
    end_at: UTCDatetime | None = None


class PreviewResponse(BaseModel):
    """The next fire times, in UTC."""

    model_config = _config({"fire_times": ["2026-11-22T02:00:00Z", "2026-11-23T02:00:00Z"]})

    fire_times: list[datetime]


class LeaderPublic(BaseModel):
    """The replica holding the leader lease."""

    model_config = _config(
        {
            "replica_id": "c0ffee12",
            "hostname": "sched-1",
            "pid": 4242,
            "fencing_token": 7,
            "since": "2026-11-21T09:00:00Z",
            "lease_expires_at": "2026-11-21T09:30:10Z",
        }
    )

    replica_id: str
    hostname: str | None
    pid: int | None
    fencing_token: int
    since: datetime | None
    lease_expires_at: datetime


class ReplicaPublic(BaseModel):
    """A scheduler replica seen recently."""

    model_config = _config(
        {
            "replica_id": "c0ffee12",
            "hostname": "sched-1",
            "pid": 4242,
            "started_at": "2026-11-21T09:00:00Z",
            "last_seen_at": "2026-11-21T09:30:02Z",
        }
    )

    replica_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime


class SchedulerStatus(BaseModel):
    """Who leads, and which replicas are alive."""

    model_config = _config({"leader": None, "replicas": []})

    leader: LeaderPublic | None
    replicas: list[ReplicaPublic]


class Health(BaseModel):
    """Liveness or readiness, with the result of each readiness check."""

    model_config = _config(
        {"status": "ok", "checks": {"database": "ok", "schema": "ok"}},
        {"status": "unavailable", "checks": {"database": "ok", "schema": "not at head"}},
    )

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    detail: str | None = None
