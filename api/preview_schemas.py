"""Previews of a trigger's next fire times: the request, and the times with their exclusions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.examples import CRON_EXAMPLE, TRIGGER_EXAMPLES
from api.field_schemas import (
    SCHEDULE_ID_PATTERN,
    CalendarName,
    ExcludedPolicyName,
    Trigger,
    UTCDatetime,
    example_config,
)
from scheduler.store.models import ExcludedPolicy


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
