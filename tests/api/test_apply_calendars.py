"""POST /v1/apply with calendars: created or replaced first, in the same transaction as the
schedules naming them; applying the same again changes nothing; never pruned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from scheduler.store.models import calendars, changes
from tests.api.support import RecordingNotifier, TestClient, count_schedules, schedule_body

HOURLY = {"type": "cron", "expression": "0 * * * *", "timezone": "Europe/Berlin"}
WEEKEND = {"name": "weekend", "rules": [{"type": "weekly", "days": ["sat-sun"]}]}
XMAS = {
    "name": "xmas",
    "description": "Christmas",
    "rules": [{"type": "dates", "dates": ["2026-12-25"]}],
}


def _apply(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/apply", json={"source": "ci", **body})


def _planned(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = _apply(client, body)
    assert response.status_code == 200, response.text
    plan: dict[str, Any] = response.json()
    return plan


def _names(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_calendars_are_applied_before_the_schedules_that_name_them(client: TestClient) -> None:
    schedule = {"id": "s", **schedule_body(trigger=HOURLY, exclude_calendars=["weekend"])}

    plan = _planned(client, {"calendars": [WEEKEND, XMAS], "schedules": [schedule]})

    assert _names(plan["calendars"]["created"]) == ["weekend", "xmas"]
    assert [e["id"] for e in plan["created"]] == ["s"]
    assert client.get("/v1/calendars/weekend").json()["used_by"] == ["s"]
    # 2026-11-21 (T0) is a Saturday: the first fire the weekend allows is Monday 00:00.
    assert plan["created"][0]["fire_times_after"][0] == "2026-11-22T23:00:00Z"
    (created,) = client.get("/v1/audit", params={"calendar": "xmas"}).json()["items"]
    assert created["kind"] == "calendar_create" and created["details"] == {"source": "ci"}


def test_the_same_calendars_again_change_nothing_and_a_change_rearms_the_users(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    schedule = {"id": "s", **schedule_body(trigger=HOURLY, exclude_calendars=["weekend"])}
    _planned(client, {"calendars": [WEEKEND], "schedules": [schedule]})
    recorded = _count(engine, changes)
    notifier.changed.clear()

    again = _planned(client, {"calendars": [WEEKEND], "schedules": [schedule]})
    assert _names(again["calendars"]["unchanged"]) == ["weekend"]
    assert again["calendars"]["created"] == again["calendars"]["changed"] == []
    assert _count(engine, changes) == recorded and notifier.changed == []
    assert client.get("/v1/calendars/weekend").json()["version"] == 1

    weekdays = {"name": "weekend", "rules": [{"type": "weekly", "days": ["sun"]}]}
    changed = _planned(client, {"calendars": [weekdays], "schedules": [schedule]})
    (entry,) = changed["calendars"]["changed"]
    assert entry["name"] == "weekend" and [c["field"] for c in entry["changes"]] == ["rules"]
    assert entry["changes"][0]["after"][0]["days"] == ["sun"]
    assert changed["calendars"]["rearmed"] == ["s"] and "s" in notifier.changed
    # Saturday is allowed now: the next hour after T0 fires.
    preview = client.get("/v1/schedules/s/preview", params={"count": 1}).json()
    assert preview["fire_times"] == ["2026-11-21T13:00:00Z"]


def test_an_invalid_calendar_changes_nothing_and_names_the_calendar_and_field(
    client: TestClient, engine: Engine
) -> None:
    bad = {"name": "bad", "rules": [{"type": "holidays", "country": "Atlantis"}]}
    schedule = {"id": "s", **schedule_body(trigger=HOURLY)}

    response = _apply(client, {"calendars": [WEEKEND, bad], "schedules": [schedule]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "calendars", 1, "rules"]
    assert _count(engine, calendars) == 0 and count_schedules(engine) == 0


def test_a_schedule_error_rolls_back_the_calendars_too(client: TestClient, engine: Engine) -> None:
    schedule = {"id": "s", **schedule_body(trigger=HOURLY, exclude_calendars=["missing"])}

    response = _apply(client, {"calendars": [WEEKEND], "schedules": [schedule]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "schedules", 0, "exclude_calendars"]
    assert _count(engine, calendars) == 0 and _count(engine, changes) == 0


def test_duplicate_calendar_names_are_422_and_a_dry_run_creates_none(
    client: TestClient, engine: Engine
) -> None:
    duplicate = _apply(client, {"calendars": [WEEKEND, WEEKEND], "schedules": []})
    assert duplicate.status_code == 422
    assert duplicate.json()["detail"][0]["loc"] == ["body", "calendars", 1, "name"]

    dry = _planned(client, {"calendars": [WEEKEND], "schedules": [], "dry_run": True})
    assert _names(dry["calendars"]["created"]) == ["weekend"]
    assert _count(engine, calendars) == 0


def test_a_fetched_calendar_applies_as_unchanged_and_calendars_are_never_pruned(
    client: TestClient,
) -> None:
    _planned(client, {"calendars": [WEEKEND], "schedules": []})
    fetched = client.get("/v1/calendars/weekend").json()  # version, used_by, … are ignored

    plan = _planned(client, {"calendars": [fetched], "schedules": [], "prune": True})

    assert _names(plan["calendars"]["unchanged"]) == ["weekend"]
    assert client.get("/v1/calendars/weekend").status_code == 200
