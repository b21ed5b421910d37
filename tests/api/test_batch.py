"""POST /v1/schedules:batch: many creates in one transaction, all or nothing, with
per-entry idempotency keys, entries named by index in errors, and a cap of 1,000."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from scheduler.store.models import changes
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

BATCH = "/v1/schedules:batch"


def _entries(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [schedule_body(kwargs={"n": i}, **fields) for i in range(n)]


def _created_changes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(changes.c.kind == "create")).scalar_one()
        )


def test_a_batch_creates_every_entry_in_order_with_its_history_and_one_notice(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    entries = [*_entries(3), schedule_body(trigger={"type": "delay", "seconds": 90})]

    response = client.post(BATCH, json={"schedules": entries})

    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["created"], result["replayed"]) == (4, 0)
    items = result["items"]
    assert [item["replayed"] for item in items] == [False] * 4
    assert len({item["id"] for item in items}) == 4
    for entry, item in zip(entries, items, strict=True):
        stored = client.get(f"/v1/schedules/{item['id']}").json()
        assert stored["kwargs"] == entry.get("kwargs", {})
        assert (
            (stored["state"], stored["version"])
            == (item["state"], item["version"])
            == (
                "active",
                1,
            )
        )
        assert stored["next_run_at"] == item["next_run_at"]
    assert items[3]["next_run_at"] == z(T0.replace(minute=1, second=30))
    assert count_schedules(engine) == 4
    assert _created_changes(engine) == 4
    history = client.get(f"/v1/schedules/{items[0]['id']}/history").json()["items"]
    assert [(h["kind"], h["version"]) for h in history] == [("create", 1)]
    assert len(notifier.changed) == 1
    assert notifier.due == [T0 + timedelta(seconds=90)]  # the earliest first fire


def test_an_invalid_entry_names_its_index_and_field_and_nothing_is_created(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    entries = _entries(3)
    entries[1]["trigger"] = {"type": "cron", "expression": "not cron"}

    response = client.post(BATCH, json={"schedules": entries})

    assert_invalid(response, "schedules", 1, "trigger")
    assert count_schedules(engine) == 0
    assert notifier.changed == []


def test_an_unknown_calendar_names_its_entry_and_nothing_is_created(
    client: TestClient, engine: Engine
) -> None:
    entries = _entries(3)
    entries[2]["exclude_calendars"] = ["no-such-calendar"]

    response = client.post(BATCH, json={"schedules": entries})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "schedules", 2, "exclude_calendars"]
    assert count_schedules(engine) == 0
    assert _created_changes(engine) == 0


def test_calendars_named_by_entries_are_linked(client: TestClient, engine: Engine) -> None:
    weekend = {"rules": [{"type": "weekly", "days": ["sat-sun"]}]}
    assert client.put("/v1/calendars/weekend", json=weekend).status_code == 201
    entries = _entries(2, exclude_calendars=["weekend"])

    response = client.post(BATCH, json={"schedules": entries})

    assert response.status_code == 201, response.text
    # The calendar is in use now: deleting it is refused.
    assert client.delete("/v1/calendars/weekend").status_code == 409
    single = create(client, exclude_calendars=["weekend"])
    assert response.json()["items"][0]["next_run_at"] == single["next_run_at"]


def test_a_task_outside_the_allowed_list_names_its_entry(make_client: Any, engine: Engine) -> None:
    client = make_client(allowed_tasks=["reports.*"])
    entries = _entries(2)
    entries[1]["task"] = "os.system"

    response = client.post(BATCH, json={"schedules": entries})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "schedules", 1, "task"]
    assert count_schedules(engine) == 0


def test_idempotency_keys_replay_entries_and_create_only_the_new_ones(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    entries = [{**e, "idempotency_key": f"k{i}"} for i, e in enumerate(_entries(2))]
    first = client.post(BATCH, json={"schedules": entries}).json()

    extra = {**schedule_body(kwargs={"n": 9}), "idempotency_key": "k9"}
    again = client.post(BATCH, json={"schedules": [*entries, extra]})

    assert again.status_code == 201, again.text
    result = again.json()
    assert (result["created"], result["replayed"]) == (1, 2)
    assert [i["replayed"] for i in result["items"]] == [True, True, False]
    assert [i["id"] for i in result["items"][:2]] == [i["id"] for i in first["items"]]
    assert count_schedules(engine) == 3
    assert len(notifier.changed) == 2


def test_a_batch_replayed_entirely_changes_nothing_and_sends_no_notice(
    client: TestClient, engine: Engine, notifier: RecordingNotifier, clock: FakeClock
) -> None:
    entries = [{**schedule_body(trigger={"type": "delay", "seconds": 60}), "idempotency_key": "d"}]
    first = client.post(BATCH, json={"schedules": entries}).json()
    clock.advance(5)

    again = client.post(BATCH, json={"schedules": entries}).json()

    assert again["items"] == [{**first["items"][0], "replayed": True}]
    assert count_schedules(engine) == 1
    assert _created_changes(engine) == 1
    assert len(notifier.changed) == 1


def test_keys_are_shared_with_single_creates(client: TestClient, engine: Engine) -> None:
    single = client.post(
        "/v1/schedules", json=schedule_body(), headers={"Idempotency-Key": "shared"}
    ).json()

    batch = client.post(
        BATCH, json={"schedules": [{**schedule_body(), "idempotency_key": "shared"}]}
    ).json()

    assert batch["items"][0]["id"] == single["id"]
    assert batch["items"][0]["replayed"] is True
    assert count_schedules(engine) == 1


def test_a_key_reused_with_another_body_is_409_and_nothing_is_created(
    client: TestClient, engine: Engine
) -> None:
    client.post(BATCH, json={"schedules": [{**schedule_body(), "idempotency_key": "k"}]})
    entries = [
        schedule_body(kwargs={"n": 1}),
        {**schedule_body(queue="other"), "idempotency_key": "k"},
    ]

    response = client.post(BATCH, json={"schedules": entries})

    assert response.status_code == 409
    assert "schedules.1" in response.json()["detail"]
    assert "Idempotency-Key" in response.json()["detail"]
    assert count_schedules(engine) == 1


def test_a_key_repeated_within_a_batch_is_refused(client: TestClient, engine: Engine) -> None:
    entries = [{**e, "idempotency_key": "same"} for e in _entries(2)]

    response = client.post(BATCH, json={"schedules": entries})

    assert_invalid(response, "schedules", 1, "idempotency_key")
    assert count_schedules(engine) == 0


def test_more_than_1000_entries_are_refused(make_client: Any, engine: Engine) -> None:
    client = make_client(max_body_bytes=10_000_000)
    entry = {"task": "t", "trigger": {"type": "delay", "seconds": 60}}

    response = client.post(BATCH, json={"schedules": [entry] * 1001})

    assert_invalid(response, "schedules")
    assert count_schedules(engine) == 0
    assert client.post(BATCH, json={"schedules": [entry] * 1000}).status_code == 201
    assert count_schedules(engine) == 1000


def test_an_empty_batch_is_refused(client: TestClient) -> None:
    assert_invalid(client.post(BATCH, json={"schedules": []}), "schedules")


def test_a_batch_over_the_body_limit_is_413(make_client: Any, engine: Engine) -> None:
    client = make_client(max_body_bytes=4096)

    response = client.post(BATCH, json={"schedules": _entries(40, description="x" * 100)})

    assert response.status_code == 413
    assert count_schedules(engine) == 0


def test_an_unknown_field_in_an_entry_names_it(client: TestClient) -> None:
    entries = _entries(2)
    entries[1]["colour"] = "blue"

    assert_invalid(client.post(BATCH, json={"schedules": entries}), "schedules", 1, "colour")


def test_a_read_only_key_may_not_create_a_batch(make_client: Any) -> None:
    client = make_client(api_keys=["w-secret", "r-secret:read"])

    response = client.post(
        BATCH, json={"schedules": _entries(1)}, headers={"Authorization": "Bearer r-secret"}
    )

    assert response.status_code == 403
