"""A schedule's runs as the API shows them: one run, and a page of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.examples import RUN_EXAMPLE
from api.field_schemas import example_config
from api.strict_json import printable_value
from scheduler.store.models import RunState, RunTrigger


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
