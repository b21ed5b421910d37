"""PUT (declarative upsert), GET one with ETag, PATCH (JSON merge patch) and DELETE."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update

from scheduler.store.models import schedules
from tests.api.support import (
    CRON,
    T0,
    FakeClock,
    RecordingNotifier,
    TestClient,
    add_run,
    assert_invalid,
    count_schedules,
    put,
    schedule_body,
    z,
)

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def test_put_creates_with_201_then_replaces_with_200(client: TestClient, clock: FakeClock) -> None:
    created = client.put("/v1/schedules/nightly-report", json=schedule_body())
    clock.advance(60)

    replaced = client.put("/v1/schedules/nightly-report", json=schedule_body(queue="reports"))

    assert created.status_code == 201
    assert created.headers["Location"] == "/v1/schedules/nightly-report"
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["id"] == "nightly-report"
    assert body["queue"] == "reports"
    assert body["version"] == 2
    assert replaced.headers["ETag"] == '"2"'
    assert body["created_at"] == z(T0)
    assert body["updated_at"] == z(clock.now)


def test_put_replaces_every_field_with_defaults_for_omitted_ones(client: TestClient) -> None:
    put(client, "s1", priority=9, labels={"team": "a"}, description="old")

    body = put(client, "s1")

    assert (body["priority"], body["labels"], body["description"]) == (None, {}, "")


def test_put_with_a_new_trigger_rearms(client: TestClient) -> None:
    put(client, "s1")

    body = put(client, "s1", trigger={"type": "cron", "expression": "0 13 * * *"})

    assert body["next_run_at"] == "2026-11-21T13:00:00Z"


def test_put_resumes_a_paused_schedule_when_paused_is_false(client: TestClient) -> None:
    put(client, "s1", paused=True)

    body = put(client, "s1")

    assert body["state"] == "active"
    assert body["next_run_at"] == "2026-11-22T02:00:00Z"


def test_put_with_another_id_in_the_body_is_422(client: TestClient, engine: Engine) -> None:
    response = client.put("/v1/schedules/s1", json=schedule_body(id="s2"))

    assert_invalid(response, "id")
    assert count_schedules(engine) == 0


def test_put_with_an_invalid_id_is_422(client: TestClient, engine: Engine) -> None:
    response = client.put("/v1/schedules/-starts-with-dash", json=schedule_body())

    assert_invalid(response, "schedule_id")
    assert count_schedules(engine) == 0


def test_put_honours_if_match(client: TestClient) -> None:
    put(client, "s1")

    stale = client.put(
        "/v1/schedules/s1", json=schedule_body(queue="q"), headers={"If-Match": '"7"'}
    )
    fresh = client.put(
        "/v1/schedules/s1", json=schedule_body(queue="q"), headers={"If-Match": '"1"'}
    )
    missing = client.put("/v1/schedules/s2", json=schedule_body(), headers={"If-Match": "*"})

    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert missing.status_code == 412


def test_get_returns_the_version_as_etag(client: TestClient) -> None:
    put(client, "s1")
    put(client, "s1", queue="q")

    response = client.get("/v1/schedules/s1")

    assert response.headers["ETag"] == '"2"'
    assert response.json()["version"] == 2


def test_get_of_an_unknown_schedule_is_404(client: TestClient) -> None:
    response = client.get("/v1/schedules/nope")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_patch_merges_objects_and_null_removes(
    client: TestClient, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    created = put(
        client, "s1", priority=5, labels={"team": "a", "tier": "1"}, kwargs={"a": 1, "b": 2}
    )
    clock.advance(1)

    response = client.patch(
        "/v1/schedules/s1",
        json={"priority": None, "labels": {"tier": None, "env": "prod"}, "kwargs": {"b": 3}},
        headers=MERGE_PATCH,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["priority"] is None
    assert body["labels"] == {"team": "a", "env": "prod"}
    assert body["kwargs"] == {"a": 1, "b": 3}
    assert body["version"] == 2
    assert body["updated_at"] == z(clock.now)
    assert response.headers["ETag"] == '"2"'
    assert notifier.changed == ["s1", "s1"]
    # The create announces its first fire; a change of the schedule asks for a look now.
    assert notifier.due == [datetime.fromisoformat(created["next_run_at"]), None]


def test_patch_accepts_plain_json(client: TestClient) -> None:
    put(client, "s1")

    response = client.patch("/v1/schedules/s1", json={"description": "plain"})

    assert response.json()["description"] == "plain"


def test_patch_of_a_trigger_field_merges_and_rearms(client: TestClient) -> None:
    put(client, "s1")

    body = client.patch("/v1/schedules/s1", json={"trigger": {"expression": "0 14 * * *"}}).json()

    assert body["trigger"] == {**CRON, "expression": "0 14 * * *"}
    assert body["next_run_at"] == "2026-11-21T13:00:00Z"


def test_patch_to_another_trigger_type_replaces_the_trigger(client: TestClient) -> None:
    put(client, "s1")

    body = client.patch("/v1/schedules/s1", json={"trigger": {"type": "delay", "seconds": 30}})

    run_at = z(T0 + timedelta(seconds=30))
    assert body.json()["trigger"] == {"type": "date", "run_at": run_at}
    assert body.json()["next_run_at"] == run_at


def test_patch_that_leaves_timing_alone_keeps_next_run(
    client: TestClient, clock: FakeClock
) -> None:
    before = put(client, "s1", trigger={"type": "interval", "seconds": 7})
    clock.advance(100)

    after = client.patch("/v1/schedules/s1", json={"description": "x"}).json()

    assert after["next_run_at"] == before["next_run_at"]


def test_patch_paused_true_clears_next_run_and_false_restores(client: TestClient) -> None:
    put(client, "s1")

    paused = client.patch("/v1/schedules/s1", json={"paused": True}).json()
    resumed = client.patch("/v1/schedules/s1", json={"paused": False}).json()

    assert (paused["state"], paused["next_run_at"]) == ("paused", None)
    assert (resumed["state"], resumed["next_run_at"]) == ("active", "2026-11-22T02:00:00Z")


def _unchanged(client: TestClient, before: dict[str, Any]) -> None:
    assert client.get(f"/v1/schedules/{before['id']}").json() == before


def test_patch_whose_result_is_invalid_is_422_and_changes_nothing(client: TestClient) -> None:
    before = put(client, "s1", start_at="2026-12-01T00:00:00Z")

    bad_end = client.patch("/v1/schedules/s1", json={"end_at": "2026-11-30T00:00:00Z"})
    no_task = client.patch("/v1/schedules/s1", json={"task": None})
    bad_cron = client.patch("/v1/schedules/s1", json={"trigger": {"expression": "0 3 31 2 *"}})
    bad_zone = client.patch("/v1/schedules/s1", json={"trigger": {"timezone": "Nowhere/X"}})
    mixed = client.patch("/v1/schedules/s1", json={"trigger": {"seconds": 5}})
    unknown = client.patch("/v1/schedules/s1", json={"colour": "red"})
    naive = client.patch("/v1/schedules/s1", json={"start_at": "2026-12-01T00:00:00"})

    assert_invalid(bad_end, "end_at")
    assert_invalid(no_task, "task")
    assert_invalid(bad_cron, "trigger", "expression")
    assert_invalid(bad_zone, "trigger", "timezone")
    assert_invalid(mixed, "seconds")
    assert_invalid(unknown, "colour")
    assert_invalid(naive, "start_at")
    _unchanged(client, before)


def test_patch_to_a_task_outside_allowed_tasks_is_422(make_client: Any) -> None:
    client = make_client(allowed_tasks=["reports.*"])
    before = put(client, "s1")

    response = client.patch("/v1/schedules/s1", json={"task": "billing.charge"})

    assert_invalid(response, "task")
    _unchanged(client, before)


def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(client: TestClient) -> None:
    before = put(client, "s1")

    stale = client.patch("/v1/schedules/s1", json={"queue": "q"}, headers={"If-Match": '"2"'})
    fresh = client.patch("/v1/schedules/s1", json={"queue": "q"}, headers={"If-Match": '"1"'})

    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert fresh.json()["version"] == before["version"] + 1


def test_patch_of_an_unknown_schedule_is_404(client: TestClient) -> None:
    assert client.patch("/v1/schedules/nope", json={"queue": "q"}).status_code == 404


def test_delete_is_204_then_404_and_removes_runs(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    put(client, "s1")
    run_id = add_run(engine, "s1", T0)

    response = client.delete("/v1/schedules/s1")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get("/v1/schedules/s1").status_code == 404
    assert client.get(f"/v1/runs/{run_id}").status_code == 404
    assert client.delete("/v1/schedules/s1").status_code == 404
    assert notifier.changed == ["s1", "s1"]


def test_delete_with_a_stale_if_match_is_412(client: TestClient) -> None:
    put(client, "s1")

    response = client.delete("/v1/schedules/s1", headers={"If-Match": '"3"'})

    assert response.status_code == 412
    assert client.get("/v1/schedules/s1").status_code == 200


def _record_fire(engine: Engine, schedule_id: str, at: str, completed: bool) -> None:
    values: dict[str, Any] = {"last_run_at": datetime.fromisoformat(at)}
    if completed:
        values.update(state="completed", next_run_at=None, next_due_at=None)
    with engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))


def test_a_write_keeps_the_leaders_columns(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    _record_fire(engine, "s1", "2026-11-21T02:00:00+00:00", completed=False)

    body = client.patch("/v1/schedules/s1", json={"description": "x"}).json()

    assert body["last_run_at"] == "2026-11-21T02:00:00Z"


def test_a_fired_one_off_is_not_rearmed_at_its_old_time(client: TestClient, engine: Engine) -> None:
    run_at = z(T0 - timedelta(minutes=1))
    put(client, "once", trigger={"type": "date", "run_at": run_at})
    _record_fire(engine, "once", run_at.replace("Z", "+00:00"), completed=True)

    body = client.patch("/v1/schedules/once", json={"jitter_seconds": 5}).json()

    assert (body["state"], body["next_run_at"]) == ("completed", None)
