"""POST /v1/apply: one source's schedules made to match a list, all or nothing."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from api.apply_schemas import ApplyEntry
from scheduler.store.apply import Desired, apply_schedules
from scheduler.store.history import Audit
from tests.api.support import (
    CRON,
    T0,
    FakeClock,
    RecordingNotifier,
    TestClient,
    count_schedules,
    put,
    schedule_body,
    z,
)


def entry(schedule_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": schedule_id, **schedule_body(**fields)}


def apply(client: TestClient, *entries: dict[str, Any], **options: Any) -> dict[str, Any]:
    body = {"source": options.pop("source", "ci"), "schedules": list(entries), **options}
    response = client.post("/v1/apply", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ids(plan: dict[str, Any], kind: str) -> list[str]:
    return [item["id"] for item in plan[kind]]


def test_first_apply_creates_and_the_same_apply_again_changes_nothing(
    client: TestClient, notifier: RecordingNotifier
) -> None:
    first = apply(client, entry("a"), entry("b", trigger={"type": "interval", "seconds": 60}))
    versions = {s["id"]: s["version"] for s in client.get("/v1/schedules").json()["items"]}
    notifier.changed.clear()

    second = apply(client, entry("a"), entry("b", trigger={"type": "interval", "seconds": 60}))

    assert ids(first, "created") == ["a", "b"]
    assert first["created"][0]["fire_times_after"][0] == "2026-11-22T02:00:00Z"
    assert ids(second, "unchanged") == ["a", "b"]
    assert second["created"] == second["changed"] == second["pruned"] == []
    after = {s["id"]: s["version"] for s in client.get("/v1/schedules").json()["items"]}
    assert after == versions
    assert notifier.changed == []
    assert client.get("/v1/schedules/a").json()["managed_by"] == "ci"


def test_a_change_is_reported_field_by_field_with_fire_times_before_and_after(
    client: TestClient,
) -> None:
    apply(client, entry("a", queue="reports"))

    plan = apply(
        client,
        entry(
            "a",
            queue="reports",
            kwargs={"format": "csv"},
            trigger={**CRON, "expression": "30 4 * * *"},
        ),
    )

    (changed,) = plan["changed"]
    assert [c["field"] for c in changed["changes"]] == ["kwargs", "trigger"]
    assert changed["changes"][0] == {"field": "kwargs", "before": {}, "after": {"format": "csv"}}
    assert changed["fire_times_before"][:2] == ["2026-11-22T02:00:00Z", "2026-11-23T02:00:00Z"]
    assert changed["fire_times_after"][:2] == ["2026-11-22T03:30:00Z", "2026-11-23T03:30:00Z"]
    assert changed["drift"] == []
    stored = client.get("/v1/schedules/a").json()
    assert stored["trigger"]["expression"] == "30 4 * * *"
    assert stored["next_run_at"] == "2026-11-22T03:30:00Z"


def test_prune_removes_only_schedules_of_the_same_source(client: TestClient) -> None:
    put(client, "hand-made")
    apply(client, entry("other-1"), source="other")
    apply(client, entry("a"), entry("b"))

    kept = apply(client, entry("a"))
    pruned = apply(client, entry("a"), prune=True)

    assert ids(kept, "orphaned") == ["b"]
    assert kept["pruned"] == []
    assert ids(pruned, "pruned") == ["b"]
    remaining = [s["id"] for s in client.get("/v1/schedules").json()["items"]]
    assert remaining == ["a", "hand-made", "other-1"]


def test_a_hand_edit_of_a_managed_schedule_is_drift_and_apply_sets_it_back(
    client: TestClient,
) -> None:
    apply(client, entry("a", queue="reports"))
    edited = client.patch("/v1/schedules/a", json={"queue": "urgent"})
    assert edited.status_code == 200
    client.post("/v1/schedules/a/pause", json={"reason": "incident 42"})

    dry = apply(client, entry("a", queue="reports"), dry_run=True)
    plan = apply(client, entry("a", queue="reports"))

    assert dry == {**plan, "dry_run": True}
    (changed,) = plan["changed"]
    assert changed["drift"] == [
        {"field": "queue", "before": "reports", "after": "urgent"},
        {"field": "paused", "before": False, "after": True},
    ]
    assert [c["field"] for c in changed["changes"]] == ["queue", "paused"]
    stored = client.get("/v1/schedules/a").json()
    assert (stored["queue"], stored["state"]) == ("reports", "active")


def test_drift_is_reported_for_a_schedule_about_to_be_pruned(client: TestClient) -> None:
    apply(client, entry("a"), entry("b"))
    client.patch("/v1/schedules/b", json={"description": "hot fix"})

    plan = apply(client, entry("a"), prune=True)

    assert plan["pruned"][0]["drift"] == [
        {"field": "description", "before": "", "after": "hot fix"}
    ]


def test_dry_run_plans_everything_and_changes_nothing(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    apply(client, entry("a"), entry("b"))
    notifier.changed.clear()

    plan = apply(
        client,
        entry("a", queue="other"),
        entry("c"),
        prune=True,
        dry_run=True,
    )

    assert (ids(plan, "created"), ids(plan, "changed"), ids(plan, "pruned")) == (
        ["c"],
        ["a"],
        ["b"],
    )
    assert plan["dry_run"] is True
    assert count_schedules(engine) == 2
    assert client.get("/v1/schedules/a").json()["queue"] == "celery"
    assert notifier.changed == []


def test_one_invalid_entry_changes_nothing_and_the_error_names_entry_and_field(
    client: TestClient, engine: Engine
) -> None:
    apply(client, entry("a"))
    body = {
        "source": "ci",
        "prune": True,
        "schedules": [
            entry("a", queue="changed"),
            entry("new"),
            entry("bad", trigger={"type": "cron", "expression": "61 * * * *"}),
        ],
    }

    response = client.post("/v1/apply", json=body)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:4] == ["body", "schedules", 2, "trigger"]
    assert "minute" in error["msg"]
    assert count_schedules(engine) == 1
    assert client.get("/v1/schedules/a").json()["queue"] == "celery"


def test_a_schema_error_names_the_entry_index_and_field(client: TestClient) -> None:
    body = {"source": "ci", "schedules": [entry("a"), entry("b", priority=999)]}

    response = client.post("/v1/apply", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "schedules", 1, "priority"]


def test_duplicate_ids_delay_triggers_and_disallowed_tasks_are_422(
    make_client: Any,
) -> None:
    client = make_client(allowed_tasks=["reports.*"])

    duplicate = client.post("/v1/apply", json={"source": "ci", "schedules": [entry("a")] * 2})
    delay = client.post(
        "/v1/apply",
        json={"source": "ci", "schedules": [entry("a", trigger={"type": "delay", "seconds": 5})]},
    )
    task = client.post(
        "/v1/apply", json={"source": "ci", "schedules": [entry("a"), entry("b", task="evil.x")]}
    )

    assert duplicate.status_code == 422
    assert duplicate.json()["detail"][0]["loc"] == ["body", "schedules", 1, "id"]
    assert delay.status_code == 422
    assert delay.json()["detail"][0]["loc"][:4] == ["body", "schedules", 0, "trigger"]
    assert task.status_code == 422
    assert task.json()["detail"][0]["loc"] == ["body", "schedules", 1, "task"]


def test_a_schedule_of_another_source_is_409_and_nothing_changes(
    client: TestClient, engine: Engine
) -> None:
    apply(client, entry("theirs"), source="other")

    response = client.post(
        "/v1/apply", json={"source": "ci", "schedules": [entry("mine"), entry("theirs")]}
    )

    assert response.status_code == 409
    assert "schedules[1] ('theirs')" in response.json()["detail"]
    assert "'other'" in response.json()["detail"]
    assert count_schedules(engine) == 1


def test_a_hand_made_schedule_is_adopted_and_an_equal_one_stays_unchanged(
    client: TestClient,
) -> None:
    made = put(client, "same", queue="q1")
    put(client, "differs")

    plan = apply(client, entry("same", queue="q1"), entry("differs", queue="q2"))
    again = apply(client, entry("same", queue="q1"), entry("differs", queue="q2"))

    assert [(e["id"], e["adopted"]) for e in plan["unchanged"]] == [("same", True)]
    assert [(e["id"], e["adopted"]) for e in plan["changed"]] == [("differs", True)]
    assert client.get("/v1/schedules/same").json()["version"] == made["version"]
    assert [e["adopted"] for e in again["unchanged"]] == [False, False]


def test_a_fetched_schedule_with_read_only_fields_applies_as_unchanged(
    client: TestClient,
) -> None:
    apply(client, entry("a", labels={"team": "billing"}))
    fetched = client.get("/v1/schedules/a").json()

    plan = apply(client, fetched)

    assert ids(plan, "unchanged") == ["a"]


def test_a_completed_one_off_applied_again_stays_completed(
    client: TestClient, clock: FakeClock
) -> None:
    once = entry("once", trigger={"type": "date", "run_at": z(T0 + timedelta(minutes=5))})
    apply(client, once)
    clock.advance(3600)

    plan = apply(client, once)

    assert ids(plan, "unchanged") == ["once"]


def test_two_applies_of_one_source_do_not_interleave(
    client: TestClient, engine: Engine, clock: FakeClock
) -> None:
    result: dict[str, Any] = {}
    with engine.connect() as conn:
        conn.begin()
        values = _values_of(client, "held")
        apply_schedules(
            conn,
            "ci",
            [Desired("held", values, False)],
            prune=False,
            now=clock(),
            audit=Audit("test"),
        )

        def second_apply() -> None:
            result["plan"] = apply(client, entry("held"), entry("other"), prune=True)

        thread = threading.Thread(target=second_apply)
        thread.start()
        thread.join(timeout=0.5)
        blocked_while_first_open = thread.is_alive()
        conn.commit()
    thread.join(timeout=30)

    assert blocked_while_first_open
    # The second apply saw the first one's schedule, committed, instead of racing it.
    assert ids(result["plan"], "unchanged") == ["held"]
    assert ids(result["plan"], "created") == ["other"]


def _values_of(client: TestClient, schedule_id: str) -> Any:
    return ApplyEntry.model_validate(entry(schedule_id)).to_values(T0)


def test_pause_and_resume_keep_the_reason_given(client: TestClient) -> None:
    put(client, "s1")

    paused = client.post("/v1/schedules/s1/pause", json={"reason": "vendor down"})
    repaused = client.post("/v1/schedules/s1/pause", json={"reason": "still down"})
    resumed = client.post("/v1/schedules/s1/resume", json={"reason": "vendor back"})
    plain = client.post("/v1/schedules/s1/pause")

    assert (paused.json()["state_reason"], paused.json()["version"]) == ("vendor down", 2)
    assert (repaused.json()["state_reason"], repaused.json()["version"]) == ("still down", 3)
    assert (resumed.json()["state"], resumed.json()["state_reason"]) == ("active", "vendor back")
    assert plain.json()["state_reason"] == "paused through the API"


def test_an_empty_pause_reason_is_422(client: TestClient) -> None:
    put(client, "s1")

    response = client.post("/v1/schedules/s1/pause", json={"reason": ""})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]


def test_put_with_if_none_match_star_only_creates(client: TestClient) -> None:
    first = client.put("/v1/schedules/s1", json=schedule_body(), headers={"If-None-Match": "*"})
    second = client.put("/v1/schedules/s1", json=schedule_body(), headers={"If-None-Match": "*"})

    assert first.status_code == 201
    assert second.status_code == 412
    assert "already exists" in second.json()["detail"]
