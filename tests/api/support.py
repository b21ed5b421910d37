"""Helpers for API tests: the settable clock (from tests.clocks), a recording notifier,
request shortcuts."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from scheduler.store.models import runs, schedules
from tests.clocks import T0, FakeClock

with warnings.catch_warnings():
    # Starlette asks for httpx2 over httpx; the TestClient works the same with either.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

__all__ = ["T0", "FakeClock", "TestClient"]

CRON = {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"}


class RecordingNotifier:
    """Remembers every change notice, in order."""

    def __init__(self) -> None:
        self.changed: list[str] = []
        self.due: list[datetime | None] = []

    def schedule_changed(self, schedule_id: str, due: datetime | None = None) -> None:
        self.changed.append(schedule_id)
        self.due.append(due)


def schedule_body(**fields: Any) -> dict[str, Any]:
    """A valid create body; keyword arguments override fields."""
    body: dict[str, Any] = {"task": "reports.generate", "trigger": CRON}
    body.update(fields)
    return body


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    """Create a schedule through the API and return it."""
    response = client.post("/v1/schedules", json=schedule_body(**fields))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def put(client: TestClient, schedule_id: str, **fields: Any) -> dict[str, Any]:
    """Create a schedule with a chosen id through the API and return it."""
    response = client.put(f"/v1/schedules/{schedule_id}", json=schedule_body(**fields))
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def add_run(
    engine: Engine,
    schedule_id: str,
    scheduled_for: datetime,
    state: str = "succeeded",
    run_id: str | None = None,
    attempt: int = 1,
    trigger: str | None = None,
) -> str:
    """Record a run directly in the store, as the leader would."""
    run_id = run_id or f"run-{schedule_id}-{scheduled_for.isoformat()}"
    with engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id,
                schedule_id=schedule_id,
                scheduled_for=scheduled_for,
                attempt=attempt,
                trigger=trigger or ("schedule" if attempt == 1 else "retry"),
                state=state,
                task="reports.generate",
                created_at=scheduled_for,
            )
        )
    return run_id


def z(value: datetime) -> str:
    """``value`` as the API writes it: RFC 3339 UTC with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def count_runs(engine: Engine) -> int:
    """How many runs the store holds."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs)).scalar_one())


def count_schedules(engine: Engine) -> int:
    """How many schedules the store holds."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schedules)).scalar_one())


def assert_invalid(response: Any, *field: str | int) -> None:
    """A 422 whose detail names ``field`` (a path suffix of some error's ``loc``)."""
    assert response.status_code == 422, response.text
    locs = [tuple(error["loc"]) for error in response.json()["detail"]]
    n = len(field)
    assert any(loc[-n:] == field or loc[: n + 1] == ("body", *field) for loc in locs), locs
