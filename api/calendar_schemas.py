"""Calendar bodies: the spec is :class:`scheduler.store.calendar_store.CalendarSpec`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.field_schemas import example_config

_EXAMPLE = {
    "name": "holidays-de-by",
    "description": "Bavarian public holidays and weekends",
    "rules": [
        {"type": "holidays", "country": "DE", "subdivision": "BY"},
        {"type": "weekly", "days": ["sat-sun"], "start_time": "00:00", "end_time": "24:00"},
    ],
    "version": 1,
    "created_at": "2026-11-21T12:00:00Z",
    "updated_at": "2026-11-21T12:00:00Z",
    "used_by": ["nightly-report"],
}


class CalendarPublic(BaseModel):
    """A named exclusion calendar."""

    model_config = example_config(_EXAMPLE)

    name: str
    description: str
    rules: list[dict[str, Any]]
    version: int
    created_at: datetime
    updated_at: datetime
    used_by: list[str] | None = Field(
        default=None, description="Schedules naming it (on the single-calendar read)."
    )


class CalendarPage(BaseModel):
    """Calendars in name order."""

    items: list[CalendarPublic]
    next_cursor: str | None
