"""A schedule's request and response bodies: Create / Put / Patch inputs and Public outputs."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.dispatch_schemas import (
    MAX_HEADERS,
    MAX_TIME_LIMIT,
    AmqpName,
    HeaderName,
    HeaderValue,
    RetryPolicy,
)
from api.examples import PUBLIC_EXAMPLE, SPEC_EXAMPLE, TRIGGER_EXAMPLES
from api.field_schemas import (
    SCHEDULE_ID_PATTERN,
    CalendarName,
    ExcludedPolicyName,
    LabelKey,
    LabelValue,
    OverlapName,
    Trigger,
    UTCDatetime,
    example_config,
)
from scheduler.store.models import ExcludedPolicy, Overlap, RunState, ScheduleState
from scheduler.store.schedule_spec import ScheduleValues
from scheduler.timing.triggers import StoredTrigger, Timestamp, resolve


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
    overlap: OverlapName = Overlap.ALLOW
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
    exclude_calendars: list[CalendarName] = Field(
        default_factory=list,
        max_length=20,
        description="Names of exclusion calendars: a fire that falls in one does not run.",
        examples=[["holidays-de-by"]],
    )
    on_excluded: ExcludedPolicyName = Field(
        default=ExcludedPolicy.SKIP,
        description="skip: the fire is recorded skipped; next_allowed: it runs at the first "
        "allowed instant after (once, however many fires the calendar swallowed).",
    )
    expect_success_within_seconds: float | None = Field(
        default=None,
        ge=1,
        le=366 * 86400,
        description="Raise an alert when a fire has not succeeded this long after its time.",
    )
    time_limit_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIME_LIMIT,
        description="Celery's time_limit: the worker kills the task after this long.",
    )
    soft_time_limit_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIME_LIMIT,
        description="Celery's soft_time_limit: the task sees SoftTimeLimitExceeded after this "
        "long; below time_limit_seconds when both are set.",
    )
    exchange: AmqpName | None = Field(
        default=None,
        description="The exchange to publish to; null: the queue's own (Celery's default).",
        examples=["reports"],
    )
    routing_key: AmqpName | None = Field(
        default=None,
        validate_default=True,
        description="The routing key to publish with; null: the queue's name.",
        examples=["reports.pdf"],
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Extra message headers; a task reads them from self.request. Names of "
        "Celery's protocol headers and sundial_* are refused.",
        examples=[{"tenant": "acme"}],
    )

    @field_validator("soft_time_limit_seconds")
    @classmethod
    def _soft_below_hard(cls, value: float | None, info: ValidationInfo) -> float | None:
        hard = info.data.get("time_limit_seconds")
        if value is not None and hard is not None and value >= hard:
            raise ValueError("soft_time_limit_seconds must be less than time_limit_seconds")
        return value

    @field_validator("routing_key")
    @classmethod
    def _routed_together(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None) != (info.data.get("exchange") is None) and "exchange" in info.data:
            # Celery publishes to an exchange only with a routing key, and otherwise
            # straight to the queue: one without the other would be silently ignored.
            raise ValueError("exchange and routing_key are set together, or neither")
        return value

    @field_validator("end_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_at")
        if value is not None and start is not None and value <= start:
            raise ValueError("end_at must be after start_at")
        return value


class ScheduleCreate(_ScheduleFields):
    """A new schedule; the server picks its id."""

    model_config = example_config(
        SPEC_EXAMPLE,
        {"task": "sundial.echo", "trigger": {"type": "delay", "seconds": 30}},
        extra="forbid",
        strict=True,
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
            exclude_calendars=list(dict.fromkeys(self.exclude_calendars)),
            on_excluded=self.on_excluded.value,
            expect_success_within_seconds=self.expect_success_within_seconds,
            time_limit_seconds=self.time_limit_seconds,
            soft_time_limit_seconds=self.soft_time_limit_seconds,
            exchange=self.exchange,
            routing_key=self.routing_key,
            headers=dict(self.headers) or None,
        )

    def fingerprint(self) -> str:
        """A hash of the request, to tell an Idempotency-Key replay from a reuse: of the
        fields of a create only, so an entry of a batch hashes as the same single create."""
        document = self.model_dump(mode="json", include=set(ScheduleCreate.model_fields))
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class SchedulePut(ScheduleCreate):
    """The whole desired schedule for ``PUT``; ``id``, if given, must match the path."""

    model_config = example_config(
        SPEC_EXAMPLE, {**SPEC_EXAMPLE, "id": "nightly-report"}, extra="forbid", strict=True
    )

    id: str | None = Field(default=None, pattern=SCHEDULE_ID_PATTERN)


class SchedulePatch(BaseModel):
    """A JSON merge patch (RFC 7396): members replace, ``null`` removes, objects merge.

    A trigger whose ``type`` changes replaces the old trigger instead of merging into it.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
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
    overlap: OverlapName | None = None
    jitter_seconds: float | None = None
    retry: dict[str, Any] | None = None
    pause_after_failures: int | None = None
    start_at: Timestamp | None = None
    end_at: Timestamp | None = None
    paused: bool | None = None
    description: str | None = None
    labels: dict[str, str | None] | None = None
    exclude_calendars: list[str] | None = None
    on_excluded: ExcludedPolicyName | None = None
    expect_success_within_seconds: float | None = None
    time_limit_seconds: float | None = None
    soft_time_limit_seconds: float | None = None
    exchange: str | None = None
    routing_key: str | None = None
    headers: dict[str, Any] | None = None


class SchedulePublic(_ScheduleFields):
    """A schedule as stored, with its state and next fire time."""

    model_config = example_config(PUBLIC_EXAMPLE)

    id: str = Field(examples=["nightly-report"])
    trigger: StoredTrigger
    state: ScheduleState
    state_reason: str | None = Field(
        default=None,
        description="Why the schedule is paused or completed, or the reason given to resume it.",
    )
    managed_by: str | None = Field(
        default=None,
        description="The apply source that manages this schedule; null when made by hand.",
    )
    next_run_at: datetime | None
    last_run_at: datetime | None = Field(description="The latest fire time recorded to run.")
    last_run_state: RunState | None = Field(
        description="The outcome of the latest run to finish (retrying while a retry waits)."
    )
    # Counters of the run history, kept by the scheduler; writes through the API never set them.
    run_count: int = Field(description="Fires recorded to run: scheduled and manual.")
    failure_count: int = Field(description="Runs that failed for good (after their retries).")
    consecutive_failures: int = Field(description="Failed runs since the last success.")
    missed_count: int = Field(description="Fires recorded missed (later than the grace).")
    skipped_count: int = Field(description="Fires recorded skipped (overlap or coalescing).")
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SchedulePublic:
        """Build from a ``schedules`` row."""
        return cls.model_validate(
            {
                **row,
                "paused": row["state"] == ScheduleState.PAUSED,
                "exclude_calendars": row.get("exclude_calendars") or [],
                "headers": row.get("headers") or {},
            }
        )

    def spec_document(self) -> dict[str, Any]:
        """The user-set fields as JSON: the document a merge patch applies to."""
        return self.model_dump(mode="json", include=set(_ScheduleFields.model_fields) | {"trigger"})


class SchedulePage(BaseModel):
    """One page of schedules; pass ``next_cursor`` back as ``cursor`` for the next."""

    model_config = example_config(
        {"items": [PUBLIC_EXAMPLE], "next_cursor": "WyJuaWdodGx5LXJlcG9ydCJd"}
    )

    items: list[SchedulePublic]
    next_cursor: str | None
