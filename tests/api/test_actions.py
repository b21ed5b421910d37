"""Pause, resume and trigger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, update

from scheduler.store.models import schedules
from tests.api.support import T0, FakeClock, RecordingNotifier, TestClient, put, z


def test_pause_clears_next_run_and_resume_restores_it(client: TestClient, clock: FakeClock) -> None:
    put(client, "s1", trigger={"type": "interval", "seconds": 3600})
    clock.advance(90 * 60)

    paused = client.post("/v1/schedules/s1/pause")
    resumed = client.post("/v1/schedules/s1/resume")

    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert paused.json()["paused"] is True
    assert paused.json()["next_run_at"] is None
    assert paused.headers["ETag"] == '"2"'
    assert resumed.status_code == 200
    assert resumed.json()["state"] == "active"
    # Re-armed from now on the interval's grid anchored at creation.
    assert resumed.json()["next_run_at"] == z(T0 + timedelta(hours=2))
    assert resumed.json()["version"] == 3


def test_pausing_twice_and_resuming_an_active_schedule_change_nothing(client: TestClient) -> None:
    put(client, "s1")
    client.post("/v1/schedules/s1/pause")

    again = client.post("/v1/schedules/s1/pause")
    client.post("/v1/schedules/s1/resume")
    active = client.post("/v1/schedules/s1/resume")

    assert again.json()["version"] == 2
    assert active.json()["version"] == 3


def test_a_paused_one_off_whose_time_passed_fires_when_resumed(
    client: TestClient, clock: FakeClock
) -> None:
    run_at = z(T0 + timedelta(minutes=1))
    put(client, "once", trigger={"type": "date", "run_at": run_at})
    client.post("/v1/schedules/once/pause")
    clock.advance(3600)

    resumed = client.post("/v1/schedules/once/resume").json()

    assert (resumed["state"], resumed["next_run_at"]) == ("active", run_at)


def test_resume_or_pause_of_a_completed_schedule_is_409(client: TestClient, engine: Engine) -> None:
    put(client, "s1", trigger={"type": "date", "run_at": z(T0)})
    with engine.begin() as conn:
        conn.execute(
            update(schedules).values(state="completed", next_run_at=None, next_due_at=None)
        )

    resume = client.post("/v1/schedules/s1/resume")
    pause = client.post("/v1/schedules/s1/pause")

    assert resume.status_code == 409
    assert "completed" in resume.json()["detail"]
    assert pause.status_code == 409
    assert client.get("/v1/schedules/s1").json()["state"] == "completed"


def test_actions_on_an_unknown_schedule_are_404(client: TestClient) -> None:
    for action in ("pause", "resume", "trigger"):
        assert client.post(f"/v1/schedules/nope/{action}").status_code == 404


def test_trigger_records_a_pending_manual_run(
    client: TestClient, notifier: RecordingNotifier
) -> None:
    put(client, "s1", task="reports.generate")

    response = client.post("/v1/schedules/s1/trigger")

    assert response.status_code == 202
    run = response.json()
    assert run["schedule_id"] == "s1"
    assert run["trigger"] == "manual"
    assert run["state"] == "pending"
    assert run["attempt"] == 1
    assert run["task"] == "reports.generate"
    assert run["scheduled_for"] == z(T0)
    assert response.headers["Location"] == f"/v1/runs/{run['id']}"
    assert client.get(f"/v1/runs/{run['id']}").json() == run
    assert notifier.changed == ["s1", "s1"]


def test_trigger_works_on_a_paused_schedule(client: TestClient) -> None:
    put(client, "s1", paused=True)

    assert client.post("/v1/schedules/s1/trigger").status_code == 202


def test_two_triggers_at_the_same_instant_are_409(client: TestClient, clock: FakeClock) -> None:
    put(client, "s1")
    client.post("/v1/schedules/s1/trigger")

    same_instant = client.post("/v1/schedules/s1/trigger")
    clock.advance(0.001)
    later = client.post("/v1/schedules/s1/trigger")

    assert same_instant.status_code == 409
    assert later.status_code == 202


def test_pause_keeps_the_reason_given(client: TestClient) -> None:
    put(client, "s1")
    put(client, "s2")

    paused = client.post("/v1/schedules/s1/pause", json={"reason": "billing API migration"})
    plain = client.post("/v1/schedules/s2/pause")

    assert paused.json()["state_reason"] == "billing API migration"
    assert plain.json()["state_reason"] == "paused through the API"


def test_a_pause_reason_too_long_is_422_and_changes_nothing(client: TestClient) -> None:
    put(client, "s1")

    response = client.post("/v1/schedules/s1/pause", json={"reason": "x" * 1001})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]
    assert client.get("/v1/schedules/s1").json()["state"] == "active"
