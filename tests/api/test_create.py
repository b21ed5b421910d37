"""POST /v1/schedules: creation, defaults, validation, idempotency and the body limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.api.support import (
    T0,
    FakeClock,
    RecordingNotifier,
    TestClient,
    assert_invalid,
    count_schedules,
    create,
    schedule_body,
    z,
)


def test_create_returns_201_with_location_etag_and_defaults(client: TestClient) -> None:
    response = client.post("/v1/schedules", json=schedule_body(labels={"team": "billing"}))

    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/v1/schedules/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["queue"] == "celery"
    assert body["misfire_grace_seconds"] == 60
    assert body["coalesce"] is True
    assert body["overlap"] == "allow"
    assert body["jitter_seconds"] == 0
    assert body["paused"] is False
    assert body["state"] == "active"
    assert body["labels"] == {"team": "billing"}
    assert body["next_run_at"] == "2026-11-22T02:00:00Z"
    assert body["created_at"] == body["updated_at"] == z(T0)
    assert body["version"] == 1
    assert client.get(response.headers["Location"]).json() == body


def test_create_notifies_the_leader_of_its_first_fire(
    client: TestClient, notifier: RecordingNotifier
) -> None:
    schedule = create(client, trigger={"type": "delay", "seconds": 90})
    create(client, paused=True)

    assert notifier.changed[0] == schedule["id"]
    # The leader need not look before the first fire; a paused one has none: look now.
    assert notifier.due == [T0 + timedelta(seconds=90), None]


def test_delay_trigger_is_stored_as_a_date_now_plus_seconds(
    client: TestClient, clock: FakeClock
) -> None:
    clock.now = T0 + timedelta(milliseconds=250)

    schedule = create(client, trigger={"type": "delay", "seconds": 90})

    run_at = z(clock.now + timedelta(seconds=90))
    assert schedule["trigger"] == {"type": "date", "run_at": run_at}
    assert schedule["next_run_at"] == run_at


def test_datetimes_are_returned_in_utc_with_z(client: TestClient) -> None:
    schedule = create(
        client,
        trigger={"type": "date", "run_at": "2026-12-01T10:00:00+02:00"},
        start_at="2026-11-30T00:00:00-05:00",
    )

    assert schedule["trigger"]["run_at"] == "2026-12-01T08:00:00Z"
    assert schedule["start_at"] == "2026-11-30T05:00:00Z"


def test_a_one_off_whose_time_passed_is_still_armed(client: TestClient) -> None:
    past = z(T0 - timedelta(minutes=5))

    schedule = create(client, trigger={"type": "date", "run_at": past})

    assert schedule["state"] == "active"
    assert schedule["next_run_at"] == past


def test_a_schedule_past_its_end_is_completed(client: TestClient) -> None:
    schedule = create(client, end_at=z(T0 - timedelta(days=1)))

    assert schedule["state"] == "completed"
    assert schedule["next_run_at"] is None


def test_create_paused_has_no_next_run(client: TestClient) -> None:
    schedule = create(client, paused=True)

    assert schedule["state"] == "paused"
    assert schedule["paused"] is True
    assert schedule["next_run_at"] is None


def test_every_field_round_trips(client: TestClient) -> None:
    fields: dict[str, Any] = {
        "args": [1, "two"],
        "kwargs": {"format": "pdf", "nested": {"a": [1]}},
        "queue": "reports",
        "priority": 255,
        "expires_seconds": 30.5,
        "misfire_grace_seconds": None,
        "coalesce": False,
        "overlap": "buffer_one",
        "jitter_seconds": 5,
        "retry": {"max_attempts": 3, "backoff_seconds": 2, "backoff_max_seconds": 60},
        "pause_after_failures": 4,
        "description": "nightly",
    }

    schedule = create(client, **fields)

    assert {k: schedule[k] for k in fields} == fields


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"bogus": 1}, ("bogus",)),
        ({"task": ""}, ("task",)),
        ({"trigger": {"type": "cron", "expression": "0 3 30 2 *"}}, ("trigger", "expression")),
        ({"trigger": {"type": "cron", "expression": "61 * * * *"}}, ("trigger", "expression")),
        (
            {"trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "Mars/Olympus"}},
            ("trigger", "timezone"),
        ),
        ({"trigger": {"type": "date", "run_at": "2026-12-01T10:00:00"}}, ("run_at",)),
        ({"trigger": {"type": "interval", "seconds": 0}}, ("seconds",)),
        ({"trigger": {"type": "weekly"}}, ("trigger",)),
        ({"start_at": "2026-12-01T10:00:00"}, ("start_at",)),
        ({"start_at": "2026-12-02T00:00:00Z", "end_at": "2026-12-01T00:00:00Z"}, ("end_at",)),
        ({"priority": 256}, ("priority",)),
        ({"expires_seconds": 0}, ("expires_seconds",)),
        ({"misfire_grace_seconds": -1}, ("misfire_grace_seconds",)),
        ({"overlap": "sometimes"}, ("overlap",)),
        ({"jitter_seconds": -1}, ("jitter_seconds",)),
        ({"retry": {"max_attempts": 0}}, ("retry", "max_attempts")),
        ({"pause_after_failures": 0}, ("pause_after_failures",)),
        ({"labels": {"bad key:": "x"}}, ("labels",)),
        ({"args": {"not": "a list"}}, ("args",)),
        ({"trigger": {"type": "date", "run_at": "9999-12-31T23:00:00-05:00"}}, ("trigger",)),
        (
            {
                "trigger": {"type": "date", "run_at": "9999-12-31T23:59:59.999999Z"},
                "jitter_seconds": 3600,
            },
            ("trigger",),
        ),
        ({"start_at": "9999-12-31T23:00:00-05:00"}, ("start_at",)),
    ],
)
def test_invalid_field_is_422_naming_it_and_stores_nothing(
    client: TestClient, engine: Engine, fields: dict[str, Any], loc: tuple[str, ...]
) -> None:
    response = client.post("/v1/schedules", json=schedule_body(**fields))

    assert_invalid(response, *loc)
    assert count_schedules(engine) == 0


def test_server_picks_the_id(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/schedules", json=schedule_body(id="mine"))

    assert_invalid(response, "id")
    assert count_schedules(engine) == 0


def test_task_outside_allowed_tasks_is_422(make_client: Any, engine: Engine) -> None:
    client = make_client(allowed_tasks=["reports.*", "sundial.echo"])

    refused = client.post("/v1/schedules", json=schedule_body(task="billing.charge"))

    assert_invalid(refused, "task")
    assert count_schedules(engine) == 0
    assert client.post("/v1/schedules", json=schedule_body(task="reports.x")).status_code == 201


def test_idempotency_key_replays_the_same_schedule(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    headers = {"Idempotency-Key": "create-nightly-1"}
    first = client.post("/v1/schedules", json=schedule_body(), headers=headers)

    again = client.post("/v1/schedules", json=schedule_body(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert count_schedules(engine) == 1
    assert notifier.changed == [first.json()["id"]]


def test_idempotency_key_replay_of_a_delay_keeps_the_first_run_at(
    client: TestClient, clock: FakeClock
) -> None:
    body = schedule_body(trigger={"type": "delay", "seconds": 60})
    headers = {"Idempotency-Key": "k"}
    first = client.post("/v1/schedules", json=body, headers=headers).json()
    clock.advance(5)

    again = client.post("/v1/schedules", json=body, headers=headers).json()

    assert again["trigger"] == first["trigger"]


def test_idempotency_key_with_another_body_is_409(client: TestClient, engine: Engine) -> None:
    headers = {"Idempotency-Key": "create-nightly-1"}
    client.post("/v1/schedules", json=schedule_body(), headers=headers)

    response = client.post("/v1/schedules", json=schedule_body(queue="other"), headers=headers)

    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]
    assert count_schedules(engine) == 1


def test_idempotency_key_may_be_reused_after_a_day(
    client: TestClient, engine: Engine, clock: FakeClock
) -> None:
    headers = {"Idempotency-Key": "daily"}
    first = client.post("/v1/schedules", json=schedule_body(), headers=headers).json()
    clock.advance(25 * 3600)

    later = client.post("/v1/schedules", json=schedule_body(queue="q2"), headers=headers)

    assert later.status_code == 201
    assert later.json()["id"] != first["id"]
    assert count_schedules(engine) == 2


def test_body_over_the_limit_is_413(make_client: Any, engine: Engine) -> None:
    client = make_client(max_body_bytes=2048)
    body = schedule_body(description="x" * 4096)

    response = client.post("/v1/schedules", json=body)

    assert response.status_code == 413
    assert "detail" in response.json()
    assert count_schedules(engine) == 0


def test_streamed_body_over_the_limit_is_413(make_client: Any, engine: Engine) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks() -> Any:
        yield b'{"task": "reports.generate", "description": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = client.post(
        "/v1/schedules", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert count_schedules(engine) == 0


def test_streamed_body_under_the_limit_is_accepted(make_client: Any) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks() -> Any:
        yield b'{"task": "reports.generate", '
        yield b'"trigger": {"type": "interval", "seconds": 60}}'

    response = client.post(
        "/v1/schedules", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
