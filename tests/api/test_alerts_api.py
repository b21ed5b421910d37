"""Alerts over the API, and the bounded breach gauge on /metrics."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from scheduler.runs.alerts import AlertKind, raise_alert, resolve_deleted
from tests.api.support import T0, TestClient, z


def _raise(engine: Engine, schedule_id: str, kind: AlertKind, subject: str, minutes: int) -> None:
    with engine.begin() as conn:
        assert raise_alert(
            conn,
            schedule_id=schedule_id,
            kind=kind,
            subject=subject,
            message=f"{schedule_id} {kind.value}",
            now=T0 + timedelta(minutes=minutes),
        )


def test_alerts_are_listed_filtered_and_counted_per_kind(
    client: TestClient, engine: Engine
) -> None:
    _raise(engine, "a", AlertKind.DEADLINE, "f1", 0)
    _raise(engine, "a", AlertKind.DEADLINE, "f2", 1)
    _raise(engine, "b", AlertKind.FAILURE, "r1", 2)
    _raise(engine, "c", AlertKind.PAUSED, "v2", 3)
    with engine.begin() as conn:
        resolve_deleted(conn, "c", T0 + timedelta(minutes=4))

    items = client.get("/v1/alerts").json()["items"]
    assert [(i["schedule_id"], i["kind"]) for i in items] == [
        ("c", "paused"),
        ("b", "failure"),
        ("a", "deadline"),
        ("a", "deadline"),
    ]
    assert items[0]["resolution"] == "schedule deleted"
    assert items[0]["delivery"]["pending"] == "resolved"
    open_ = client.get("/v1/alerts", params={"state": "open"}).json()["items"]
    assert {i["schedule_id"] for i in open_} == {"a", "b"}
    page = client.get("/v1/alerts", params={"schedule_id": "a", "limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    since = client.get("/v1/alerts", params={"since": z(T0 + timedelta(minutes=1, seconds=30))})
    assert [i["schedule_id"] for i in since.json()["items"]] == ["c", "b"]
    one = client.get(f"/v1/alerts/{items[1]['id']}").json()
    assert one["message"] == "b failure"
    assert client.get("/v1/alerts/999999").status_code == 404

    metrics = client.get("/metrics").text
    assert 'sundial_schedules_in_breach{kind="deadline"} 1.0' in metrics  # one schedule, two fires
    assert 'sundial_schedules_in_breach{kind="failure"} 1.0' in metrics
    assert 'sundial_schedules_in_breach{kind="paused"} 0.0' in metrics
    assert "schedule_id" not in metrics
