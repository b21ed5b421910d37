"""Rows for store-level tests, written the way the API writes them (armed from ``now``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, insert, select

from scheduler.store.calendar_store import link_calendars, load_calendars
from scheduler.store.models import ScheduleState, run_id_for, runs, schedules
from scheduler.timing.exclusions import Calendar
from scheduler.timing.fire_policy import arm, calendar_names


def schedule_row(
    schedule_id: str,
    trigger: dict[str, Any],
    now: datetime,
    calendars: Any = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A complete, armed schedule row with SPEC defaults (``calendars``: those it names)."""
    row: dict[str, Any] = {
        "id": schedule_id,
        "task": "sundial.echo",
        "args": [],
        "kwargs": {},
        "trigger": trigger,
        "queue": "celery",
        "priority": None,
        "expires_seconds": None,
        "misfire_grace_seconds": 60.0,
        "coalesce": True,
        "overlap": "allow",
        "jitter_seconds": 0.0,
        "retry": None,
        "pause_after_failures": None,
        "start_at": None,
        "end_at": None,
        "state": ScheduleState.ACTIVE.value,
        "state_reason": None,
        "description": "",
        "labels": {},
        "exclude_calendars": None,
        "on_excluded": "skip",
        "expect_success_within_seconds": None,
        "last_run_at": None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    row.update(overrides)
    armed = arm(row, now, cast(Mapping[str, Calendar] | None, calendars))
    row.setdefault("next_run_at", armed.next_run_at)
    row.setdefault("next_due_at", armed.next_due_at)
    return row


def add_schedule(
    engine: Engine, schedule_id: str, trigger: dict[str, Any], now: datetime, **overrides: Any
) -> dict[str, Any]:
    """Insert an armed schedule (linked to the calendars it names) and return its row."""
    names = calendar_names(overrides)
    with engine.begin() as conn:
        row = schedule_row(schedule_id, trigger, now, load_calendars(conn, names), **overrides)
        conn.execute(insert(schedules).values(**row))
        link_calendars(conn, schedule_id, names)
    return row


def runs_of(engine: Engine, schedule_id: str) -> list[dict[str, Any]]:
    """Every run of a schedule, oldest fire first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs).where(runs.c.schedule_id == schedule_id).order_by(runs.c.scheduled_for)
        )
        return [dict(r._mapping) for r in rows]


def schedule(engine: Engine, schedule_id: str) -> dict[str, Any]:
    """The stored schedule row."""
    with engine.connect() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).one()
    return dict(row._mapping)


def add_run(
    engine: Engine, schedule_id: str, scheduled_for: datetime, **overrides: Any
) -> dict[str, Any]:
    """Insert a run as the leader would record it (a first attempt of a scheduled fire,
    ``pending`` unless overridden) and return its row."""
    attempt = overrides.get("attempt", 1)
    row: dict[str, Any] = {
        "id": run_id_for(schedule_id, scheduled_for, attempt),
        "schedule_id": schedule_id,
        "scheduled_for": scheduled_for,
        "attempt": attempt,
        "trigger": "schedule",
        "state": "pending",
        "task": "sundial.echo",
        "created_at": scheduled_for,
    }
    row.update(overrides)
    with engine.begin() as conn:
        conn.execute(insert(runs).values(**row))
    return row
