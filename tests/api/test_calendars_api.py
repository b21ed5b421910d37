"""Calendars over the API: CRUD, use by schedules, re-arming, 409 while in use."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.support import FakeClock, RecordingNotifier, TestClient, assert_invalid, put, z

HOURLY = {"type": "cron", "expression": "0 * * * *", "timezone": "Europe/Berlin"}
# 2026-11-21 is a Saturday; T0 is 12:00 UTC on it.
WEEKEND = {"rules": [{"type": "weekly", "days": ["sat-sun"]}], "description": "weekends"}


def test_create_read_list_replace_and_delete_a_calendar(client: TestClient) -> None:
    created = client.put("/v1/calendars/weekend", json=WEEKEND)
    assert created.status_code == 201 and created.headers["Location"] == "/v1/calendars/weekend"
    assert created.json()["version"] == 1
    replaced = client.put(
        "/v1/calendars/weekend", json={"rules": [{"type": "dates", "dates": ["2026-12-24"]}]}
    )
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    one = client.get("/v1/calendars/weekend").json()
    assert one["rules"] == [{"type": "dates", "dates": ["2026-12-24"]}] and one["used_by"] == []
    assert [c["name"] for c in client.get("/v1/calendars").json()["items"]] == ["weekend"]
    assert client.delete("/v1/calendars/weekend").status_code == 204
    assert client.get("/v1/calendars/weekend").status_code == 404
    kinds = [
        c["kind"] for c in client.get("/v1/audit", params={"calendar": "weekend"}).json()["items"]
    ]
    assert kinds == ["calendar_delete", "calendar_update", "calendar_create"]


def test_bad_rules_are_422_naming_the_field(client: TestClient) -> None:
    response = client.put(
        "/v1/calendars/c", json={"rules": [{"type": "holidays", "country": "Atlantis"}]}
    )
    assert_invalid(response, "body", "rules", 0, "holidays", "country")
    assert client.get("/v1/calendars/c").status_code == 404


def test_a_schedule_naming_an_unknown_calendar_is_422(client: TestClient) -> None:
    response = client.put(
        "/v1/schedules/s",
        json={"task": "t", "trigger": HOURLY, "exclude_calendars": ["nope"]},
    )
    assert_invalid(response, "exclude_calendars")
    assert client.get("/v1/schedules/s").status_code == 404


def test_a_calendar_in_use_cannot_be_deleted(client: TestClient) -> None:
    client.put("/v1/calendars/weekend", json=WEEKEND)
    put(client, "s", trigger=HOURLY, exclude_calendars=["weekend"])
    response = client.delete("/v1/calendars/weekend")
    assert response.status_code == 409 and "s" in response.json()["detail"]
    assert client.get("/v1/calendars/weekend").json()["used_by"] == ["s"]
    put(client, "s", trigger=HOURLY)  # no longer named
    assert client.delete("/v1/calendars/weekend").status_code == 204


def test_a_schedule_arms_past_an_excluded_stretch_and_a_changed_calendar_rearms_it(
    client: TestClient, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    client.put("/v1/calendars/weekend", json=WEEKEND)
    schedule = put(
        client, "s", trigger=HOURLY, exclude_calendars=["weekend"], on_excluded="next_allowed"
    )
    # Saturday 13:00 Berlin is excluded; it stays the next instant (recorded skipped).
    assert schedule["next_run_at"] == "2026-11-21T13:00:00Z"
    preview = client.get("/v1/schedules/s/preview", params={"count": 2}).json()
    assert preview["fire_times"] == ["2026-11-22T23:00:00Z", "2026-11-23T00:00:00Z"]
    assert preview["excluded"][0]["moved_to"] == "2026-11-22T23:00:00Z"
    assert len(preview["excluded"]) == 34  # Saturday 13:00 … Sunday 23:00 Berlin
    notifier.changed.clear()
    client.put(
        "/v1/calendars/weekend", json={"rules": [{"type": "dates", "dates": ["2026-11-28"]}]}
    )
    assert notifier.changed == ["s"]
    rearmed = client.get("/v1/schedules/s").json()
    assert rearmed["next_run_at"] == "2026-11-21T13:00:00Z"
    preview = client.get("/v1/schedules/s/preview", params={"count": 2}).json()
    assert preview["fire_times"] == ["2026-11-21T13:00:00Z", "2026-11-21T14:00:00Z"]
    assert preview["excluded"] == []


def test_trigger_preview_accepts_calendars(client: TestClient) -> None:
    client.put("/v1/calendars/xmas", json={"rules": [{"type": "dates", "dates": ["2026-12-25"]}]})
    body = {
        "trigger": {"type": "cron", "expression": "0 9 * * *", "timezone": "Europe/Berlin"},
        "after": z(datetime(2026, 12, 24, tzinfo=UTC)),
        "count": 2,
        "exclude_calendars": ["xmas"],
    }
    response = client.post("/v1/triggers/preview", json=body).json()
    assert response["fire_times"] == ["2026-12-24T08:00:00Z", "2026-12-26T08:00:00Z"]
    assert response["excluded"] == [
        {
            "scheduled_for": "2026-12-25T08:00:00Z",
            "calendar": "xmas",
            "label": "2026-12-25",
            "moved_to": None,
        }
    ]
    unknown = client.post("/v1/triggers/preview", json={**body, "exclude_calendars": ["nope"]})
    assert_invalid(unknown, "exclude_calendars")
