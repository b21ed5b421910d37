"""Example documents shown in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

CRON_EXAMPLE: dict[str, Any] = {
    "type": "cron",
    "expression": "0 3 * * *",
    "timezone": "Europe/Berlin",
}
TRIGGER_EXAMPLES: list[Any] = [
    CRON_EXAMPLE,
    {"type": "interval", "seconds": 900},
    {"type": "date", "run_at": "2026-11-22T02:00:00Z"},
    {"type": "delay", "seconds": 30},
]
SPEC_EXAMPLE: dict[str, Any] = {
    "task": "reports.generate",
    "args": [],
    "kwargs": {"format": "pdf"},
    "trigger": CRON_EXAMPLE,
    "queue": "celery",
    "priority": None,
    "expires_seconds": None,
    "misfire_grace_seconds": 60,
    "coalesce": True,
    "overlap": "allow",
    "jitter_seconds": 0,
    "retry": None,
    "pause_after_failures": None,
    "start_at": None,
    "end_at": None,
    "paused": False,
    "description": "Nightly PDF report",
    "labels": {"team": "billing"},
    "time_limit_seconds": 600,
    "soft_time_limit_seconds": 540,
    "exchange": None,
    "routing_key": None,
    "headers": {"tenant": "acme"},
}
PUBLIC_EXAMPLE: dict[str, Any] = {
    **SPEC_EXAMPLE,
    "id": "nightly-report",
    "state": "active",
    "state_reason": None,
    "next_run_at": "2026-11-22T02:00:00Z",
    "last_run_at": "2026-11-21T02:00:00Z",
    "last_run_state": "succeeded",
    "run_count": 14,
    "failure_count": 1,
    "consecutive_failures": 0,
    "missed_count": 0,
    "skipped_count": 0,
    "created_at": "2026-11-07T09:30:00Z",
    "updated_at": "2026-11-07T09:30:00Z",
    "version": 1,
}
RUN_EXAMPLE: dict[str, Any] = {
    "id": "0b6f3a52-8f7e-5c1d-9a57-3f1f4f8e2c11",
    "schedule_id": "nightly-report",
    "scheduled_for": "2026-11-22T02:00:00Z",
    "trigger": "schedule",
    "state": "succeeded",
    "attempt": 1,
    "task": "reports.generate",
    "reason": None,
    "due_at": None,
    "created_at": "2026-11-22T02:00:00.012Z",
    "dispatched_at": "2026-11-22T02:00:00.020Z",
    "started_at": "2026-11-22T02:00:00.150Z",
    "finished_at": "2026-11-22T02:00:04.900Z",
    "worker": "celery@worker-1",
    "result": {"pages": 12},
    "error": None,
}
