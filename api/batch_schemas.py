"""Bodies of ``POST /v1/schedules:batch``: up to 1,000 new schedules in, their ids out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.examples import SPEC_EXAMPLE
from api.field_schemas import example_config
from api.schedule_schemas import ScheduleCreate
from scheduler.store.models import ScheduleState

MAX_BATCH = 1000
_DELAY_EXAMPLE: dict[str, Any] = {
    "task": "emails.send_reminder",
    "kwargs": {"user": 42},
    "trigger": {"type": "delay", "seconds": 3600},
    "idempotency_key": "reminder-42",
}


class BatchEntry(ScheduleCreate):
    """One new schedule (the ``POST /v1/schedules`` body), with its own idempotency key."""

    model_config = example_config(_DELAY_EXAMPLE, extra="forbid", strict=True)

    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="As the Idempotency-Key header of a single create: a repeated entry "
        "with the same key and body returns the schedule it made (`replayed`); another "
        "body with that key is a 409. Keys are shared with single creates.",
    )


class BatchCreate(BaseModel):
    """Schedules to create in one transaction: all of them, or (one invalid) none."""

    model_config = example_config(
        {"schedules": [_DELAY_EXAMPLE, SPEC_EXAMPLE]}, extra="forbid", strict=True
    )

    schedules: list[BatchEntry] = Field(min_length=1, max_length=MAX_BATCH)


class BatchCreated(BaseModel):
    """What the batch made of one entry (``GET /v1/schedules/{id}`` has the whole schedule)."""

    id: str
    version: int
    state: ScheduleState
    next_run_at: datetime | None
    replayed: bool = Field(description="True when the entry's idempotency key replayed it.")


class BatchResult(BaseModel):
    """One result per entry, in the order of the request."""

    model_config = example_config(
        {
            "items": [
                {
                    "id": "4f0c1d2e3b4a59687766554433221100",
                    "version": 1,
                    "state": "active",
                    "next_run_at": "2026-11-21T13:00:00Z",
                    "replayed": False,
                }
            ],
            "created": 1,
            "replayed": 0,
        }
    )

    items: list[BatchCreated]
    created: int
    replayed: int
