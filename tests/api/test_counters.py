"""A schedule's run history: counters and the last run, kept by the leader, shown by the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from scheduler.runs.outcomes import record_outcome
from scheduler.store.models import RunState, schedules
from tests.api.support import T0, FakeClock, TestClient, add_run, create, put, z

COUNTERS = ("run_count", "failure_count", "consecutive_failures", "missed_count", "skipped_count")
FRESH = {**dict.fromkeys(COUNTERS, 0), "last_run_at": None, "last_run_state": None}
LEADERS = {
    "run_count": 12,
    "failure_count": 3,
    "consecutive_failures": 2,
    "missed_count": 1,
    "skipped_count": 4,
    "last_run_state": "failed",
}


def history(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in FRESH}


def set_history(engine: Engine, schedule_id: str, **values: Any) -> None:
    """Write the run-history columns as the leader does."""
    with engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))


def stored_history(engine: Engine, schedule_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).mappings()
        return {key: value for key, value in row.one().items() if key in FRESH}


def test_a_new_schedule_has_an_empty_history(client: TestClient) -> None:
    created = create(client)
    upserted = put(client, "s1")

    assert history(created) == FRESH
    assert history(upserted) == FRESH
    assert history(client.get("/v1/schedules/s1").json()) == FRESH


def test_counters_the_leader_keeps_are_shown(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    set_history(engine, "s1", last_run_at=T0 - timedelta(hours=9), **LEADERS)

    one = client.get("/v1/schedules/s1").json()
    listed = client.get("/v1/schedules").json()["items"][0]

    expected = {**LEADERS, "last_run_at": z(T0 - timedelta(hours=9))}
    assert history(one) == expected
    assert history(listed) == expected


def test_writes_through_the_api_leave_the_history_alone(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    set_history(engine, "s1", last_run_at=T0 - timedelta(hours=9), **LEADERS)
    before = stored_history(engine, "s1")

    responses = [
        client.patch("/v1/schedules/s1", json={"description": "x"}),
        client.post("/v1/schedules/s1/pause"),
        client.post("/v1/schedules/s1/resume"),
        client.put(
            "/v1/schedules/s1",
            json={"task": "reports.generate", "trigger": {"type": "interval", "seconds": 60}},
        ),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert {key: responses[-1].json()[key] for key in LEADERS} == LEADERS
    assert stored_history(engine, "s1") == before


def test_outcomes_the_leader_records_update_the_counters_and_pause(
    client: TestClient, engine: Engine
) -> None:
    put(client, "s1", pause_after_failures=2)
    outcomes = [RunState.FAILED, RunState.SUCCEEDED, RunState.FAILED, RunState.FAILED]
    seen = []
    for hour, state in enumerate(outcomes):
        run_id = add_run(engine, "s1", T0 + timedelta(hours=hour), "started")
        assert record_outcome(engine, run_id, state, {"finished_at": T0}, T0)
        body = client.get("/v1/schedules/s1").json()
        seen.append((body["last_run_state"], body["failure_count"], body["consecutive_failures"]))

    assert seen == [("failed", 1, 1), ("succeeded", 1, 0), ("failed", 2, 1), ("failed", 3, 2)]
    assert (body["state"], body["paused"]) == ("paused", True)
    assert body["state_reason"] == "paused after 2 consecutive failed runs"


def test_a_manual_trigger_counts_as_a_run(client: TestClient, clock: FakeClock) -> None:
    put(client, "s1")

    client.post("/v1/schedules/s1/trigger")
    refused = client.post("/v1/schedules/s1/trigger")  # the same instant: 409
    clock.advance(1)
    client.post("/v1/schedules/s1/trigger")

    assert refused.status_code == 409
    body = client.get("/v1/schedules/s1").json()
    assert body["run_count"] == 2
    # Counting is not a write of the schedule: its version and ETag stay.
    assert body["version"] == 1
