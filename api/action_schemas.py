"""Bodies of the actions on a schedule: a reason to pause or resume, and a backfill."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.field_schemas import OverlapName, UTCDatetime, example_config


class StateChange(BaseModel):
    """An optional reason for a pause or resume, kept as the schedule's ``state_reason``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"reason": "vendor API down"}]},
    )

    reason: str | None = Field(default=None, min_length=1, max_length=1000)


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
