"""Change history and audit: who changed what, when and why; restoring a version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from scheduler.settings import parse_api_key
from tests.api.support import FakeClock, TestClient, put, z

WRITER = "alice=s3cret-writer"
READER = "auditor=s3cret-reader:read"


def _history(client: TestClient, schedule_id: str, **params: object) -> list[dict[str, Any]]:
    response = client.get(f"/v1/schedules/{schedule_id}/history", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_api_keys_are_named_and_unnamed_keys_get_a_name_that_hides_them() -> None:
    alice, bob = parse_api_key("alice=tok:read"), parse_api_key("bob=tok")
    assert (alice.name, alice.secret.get_secret_value(), alice.read_only) == ("alice", "tok", True)
    assert (bob.name, bob.secret.get_secret_value(), bob.read_only) == ("bob", "tok", False)
    unnamed = parse_api_key("tok")
    assert (
        unnamed.secret.get_secret_value() == "tok"
        and unnamed.name.startswith("key-")
        and "tok" not in unnamed.name
    )
    padded = parse_api_key("YWJj==")  # base64 padding is not a name separator
    assert padded.secret.get_secret_value() == "YWJj==" and padded.name.startswith("key-")


def test_every_change_is_recorded_with_actor_reason_and_a_field_diff(
    make_client: Callable[..., TestClient], clock: FakeClock, engine: Engine
) -> None:
    client = make_client(api_keys=[WRITER, READER])
    auth = {"Authorization": "Bearer s3cret-writer"}
    client.headers.update(auth)
    put(client, "s")
    clock.advance(60)
    patched = client.patch(
        "/v1/schedules/s",
        json={"trigger": {"expression": "30 4 * * *"}},
        headers={"X-Sundial-Reason": "after the backup window"},
    )
    assert patched.status_code == 200
    clock.advance(60)
    client.post("/v1/schedules/s/pause", headers={"X-Sundial-Reason": "incident 42"})
    client.post("/v1/schedules/s/resume")
    run = client.post("/v1/schedules/s/trigger").json()
    client.post(
        "/v1/schedules/s/backfill",
        json={"start": z(clock.now - timedelta(days=2)), "end": z(clock.now), "reason": "outage"},
    )
    client.delete("/v1/schedules/s")

    reader = make_client(api_keys=[WRITER, READER])
    reader.headers.update({"Authorization": "Bearer s3cret-reader"})
    items = _history(reader, "s")  # still there after the delete
    kinds = [i["kind"] for i in reversed(items)]
    assert kinds == ["create", "update", "pause", "resume", "trigger", "backfill", "delete"]
    assert {i["actor"] for i in items} == {"alice"}
    update = items[-2]
    assert update["reason"] == "after the backup window"
    assert update["diff"] == {
        "trigger": {
            "from": {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
            "to": {"type": "cron", "expression": "30 4 * * *", "timezone": "Europe/Berlin"},
        }
    }
    assert update["version"] == 2 and update["spec"]["trigger"]["expression"] == "30 4 * * *"
    pause = items[-3]
    assert pause["reason"] == "incident 42" and pause["state"] == "paused"
    assert pause["diff"] == {"paused": {"from": False, "to": True}}
    assert items[2]["details"] == {"run_id": run["id"]}
    assert items[1]["reason"] == "outage" and items[1]["details"]["count"] == 2
    assert "s3cret" not in str(items)


def test_without_keys_the_actor_is_anonymous(client: TestClient) -> None:
    put(client, "s")
    (entry,) = _history(client, "s")
    assert entry["actor"] == "anonymous" and entry["reason"] is None


def test_audit_list_filters_and_pages(client: TestClient, clock: FakeClock) -> None:
    for n in range(5):
        put(client, f"s{n}")
        clock.advance(10)
    client.post("/v1/schedules/s1/pause")
    everything = client.get("/v1/audit", params={"limit": 2}).json()
    assert [i["schedule_id"] for i in everything["items"]] == ["s1", "s4"]
    rest = client.get("/v1/audit", params={"limit": 10, "cursor": everything["next_cursor"]})
    assert [i["schedule_id"] for i in rest.json()["items"]] == ["s3", "s2", "s1", "s0"]
    pauses = client.get("/v1/audit", params={"kind": "pause"}).json()["items"]
    assert [i["schedule_id"] for i in pauses] == ["s1"]
    window = client.get(
        "/v1/audit", params={"since": z(clock.now - timedelta(seconds=25)), "kind": "create"}
    ).json()["items"]
    assert [i["schedule_id"] for i in window] == ["s4", "s3"]
    assert client.get("/v1/audit", params={"actor": "nobody"}).json()["items"] == []
    assert client.get("/v1/audit", params={"kind": "bogus"}).status_code == 422


def test_restore_brings_back_an_earlier_spec_as_a_new_version(client: TestClient) -> None:
    put(client, "s", description="first")
    put(client, "s", description="second", kwargs={"x": 1})
    response = client.post(
        "/v1/schedules/s/history/1/restore", json={"reason": "the second one was wrong"}
    )
    assert response.status_code == 200, response.text
    restored = response.json()
    assert (restored["description"], restored["kwargs"], restored["version"]) == ("first", {}, 3)
    latest = _history(client, "s")[0]
    assert latest["kind"] == "restore" and latest["reason"] == "the second one was wrong"
    assert latest["details"] == {"restored_version": 1}
    assert client.post("/v1/schedules/s/history/9/restore").status_code == 404


def test_restore_keeps_a_paused_schedule_paused(client: TestClient) -> None:
    put(client, "s", description="first")
    client.post("/v1/schedules/s/pause")
    restored = client.post("/v1/schedules/s/history/1/restore").json()
    assert restored["state"] == "paused"


def test_a_deleted_schedule_is_restored_and_its_versions_never_repeat(client: TestClient) -> None:
    put(client, "s", description="v1")
    client.delete("/v1/schedules/s")
    response = client.post("/v1/schedules/s/history/1/restore")
    assert response.status_code == 201
    assert response.json()["version"] == 2 and response.json()["description"] == "v1"
    client.delete("/v1/schedules/s")
    again = put(client, "s", description="made anew")
    assert again["version"] == 3  # an ETag of the deleted one can never match it


def test_history_of_an_unknown_schedule_is_404(client: TestClient) -> None:
    assert client.get("/v1/schedules/never/history").status_code == 404


def test_runs_record_the_version_they_fired_under(client: TestClient, engine: Engine) -> None:
    put(client, "s")
    put(client, "s", description="changed")
    run = client.post("/v1/schedules/s/trigger").json()
    assert run["schedule_version"] == 2


def test_a_reason_header_sent_as_utf8_is_recorded_as_written(client: TestClient) -> None:
    put(client, "s")
    client.post(
        "/v1/schedules/s/trigger", headers={"X-Sundial-Reason": "Störung: bitte warten".encode()}
    )
    client.post("/v1/schedules/s/pause", headers={"X-Sundial-Reason": b"caf\xe9"})  # Latin-1

    latest, earlier = _history(client, "s")[:2]
    assert earlier["reason"] == "Störung: bitte warten"
    assert latest["reason"] == "café"
