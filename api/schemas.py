"""Request and response bodies: Create / Put / Patch inputs and Public outputs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
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
from api.strict_json import printable_value
from scheduler.store.models import ExcludedPolicy, Overlap, RunState, RunTrigger, ScheduleState
from scheduler.store.schedules import ScheduleValues
from scheduler.timing.triggers import StoredTrigger, Timestamp, TriggerSpec, resolve

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Label keys exclude ':' so that the list filter `label=k:v` is unambiguous.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
CalendarName = Annotated[str, StringConstraints(pattern=SCHEDULE_ID_PATTERN)]
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
UTCDatetime = Annotated[Timestamp, AfterValidator(_to_utc)]
"""An RFC 3339 time with an offset (naive is refused), converted to UTC."""
OverlapName = Annotated[Overlap, Strict(False)]
"""An overlap policy by name, in models that are otherwise strict."""
ExcludedPolicyName = Annotated[ExcludedPolicy, Strict(False)]
"""What to do with an excluded fire, by name, in models that are otherwise strict."""


def example_config(
    *examples: Any, extra: Literal["forbid", "ignore"] = "ignore", strict: bool = False
) -> ConfigDict:
    """A model config showing ``examples`` in the OpenAPI schema.

    Request models are ``strict``: a number field takes a JSON number, a boolean field
    true or false and a text field a string, never a value coerced from another type
    (``"5"``, ``true`` as 1), which would be stored as something the client did not send.
    """
    return ConfigDict(extra=extra, strict=strict, json_schema_extra={"examples": list(examples)})


class RetryPolicy(BaseModel):
    """Dispatch a failed run again, up to ``max_attempts`` in all, with exponential backoff."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
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
        )

    def fingerprint(self) -> str:
        """A hash of the request, to tell an Idempotency-Key replay from a reuse."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
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
            }
        )

    def spec_document(self) -> dict[str, Any]:
        """The user-set fields as JSON: the document a merge patch applies to."""
        return self.model_dump(mode="json", include=set(_ScheduleFields.model_fields) | {"trigger"})


class StateChange(BaseModel):
    """An optional reason for a pause or resume, kept as the schedule's ``state_reason``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"reason": "vendor API down"}]},
    )

    reason: str | None = Field(default=None, min_length=1, max_length=1000)


class SchedulePage(BaseModel):
    """One page of schedules; pass ``next_cursor`` back as ``cursor`` for the next."""

    model_config = example_config(
        {"items": [PUBLIC_EXAMPLE], "next_cursor": "WyJuaWdodGx5LXJlcG9ydCJd"}
    )

    items: list[SchedulePublic]
    next_cursor: str | None


class RunPublic(BaseModel):
    """One fire of a schedule and what became of it."""

    model_config = example_config(RUN_EXAMPLE)

    id: str
    schedule_id: str
    scheduled_for: datetime
    trigger: RunTrigger
    state: RunState
    attempt: int
    task: str
    reason: str | None = Field(
        default=None, description="Why it was skipped, missed, retried or cancelled."
    )
    due_at: datetime | None = Field(
        default=None,
        description="A pending run waits until then (retry backoff, paced backfill).",
    )
    created_at: datetime
    schedule_version: int | None = Field(
        default=None, description="The schedule's version when the fire was recorded."
    )
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    result: Any = None
    error: Any = None

    @field_validator("result", "error")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # Written from worker events, not from validated input: a lone surrogate in a task's
        # return value would make the whole response impossible to encode.
        return printable_value(value)


class RunPage(BaseModel):
    """One page of runs, newest first."""

    model_config = example_config({"items": [RUN_EXAMPLE], "next_cursor": None})

    items: list[RunPublic]
    next_cursor: str | None


class PreviewRequest(BaseModel):
    """A trigger to list the next fire times of, as the scheduler will compute them."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
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
    schedule_id: str | None = Field(
        default=None,
        pattern=SCHEDULE_ID_PATTERN,
        description="The schedule the jitter is computed for; required with jitter_seconds.",
    )
    jitter_seconds: float = Field(default=0, ge=0, le=86400)
    exclude_calendars: list[CalendarName] = Field(default_factory=list, max_length=20)
    on_excluded: ExcludedPolicyName = ExcludedPolicy.SKIP

    @field_validator("jitter_seconds")
    @classmethod
    def _needs_schedule(cls, value: float, info: ValidationInfo) -> float:
        # A jitter is fixed by (schedule id, fire time): without the id there is none to show.
        if value > 0 and "schedule_id" in info.data and info.data["schedule_id"] is None:
            raise ValueError("jitter_seconds needs schedule_id: the jitter depends on it")
        return value


class ExcludedFire(BaseModel):
    """A planned instant an exclusion calendar keeps from running (recorded skipped)."""

    scheduled_for: datetime
    calendar: str
    label: str = Field(description="What in the calendar excludes it (a holiday's name…).")
    moved_to: datetime | None = Field(
        default=None, description="With on_excluded next_allowed: where it fires instead."
    )


class PreviewResponse(BaseModel):
    """The next fire times and when each is published (the fire time plus its jitter), in UTC."""

    model_config = example_config(
        {
            "fire_times": ["2026-11-22T02:00:00Z", "2026-11-23T02:00:00Z"],
            "due_times": ["2026-11-22T02:00:07.412Z", "2026-11-23T02:00:02.035Z"],
        }
    )

    fire_times: list[datetime]
    due_times: list[datetime] = Field(description="fire_times[i] plus its jitter.")
    excluded: list[ExcludedFire] = Field(
        default_factory=list,
        description="Planned instants among these that exclusion calendars keep from running.",
    )


class BackfillRequest(BaseModel):
    """A past range to fire the schedule over, as its trigger would have fired in it."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"start": "2026-11-01T00:00:00Z", "end": "2026-11-20T23:59:59Z"},
                {
                    "start": "2026-11-20T00:00:00+01:00",
                    "end": "2026-11-21T00:00:00+01:00",
                    "overlap": "skip",
                },
            ]
        },
    )

    start: UTCDatetime
    end: UTCDatetime = Field(description="Inclusive; not before start, not in the future.")
    overlap: OverlapName | None = Field(
        default=None,
        description="allow: paced at a fixed rate; any other policy: one run at a time. "
        "Default: the schedule's own.",
    )
    dry_run: bool = Field(
        default=False, description="Only count the runs it would record; record nothing."
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="Why; recorded in the schedule's history."
    )


class BackfillResponse(BaseModel):
    """How many runs the backfill recorded (or, with ``dry_run``, would record); fires
    already recorded are not repeated."""

    model_config = example_config({"count": 20})

    count: int
