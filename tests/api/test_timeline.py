"""The fire timeline: each planned instant joined with its run, or why there is none,
from the records (runs, pauses in the history, leadership terms)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from scheduler.firing.claim import claim_due
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.runs.outcomes import record_outcome
from scheduler.store.models import RunState
from tests.api.support import T0, FakeClock, TestClient, put, z

HOURLY = {"type": "cron", "expression": "0 * * * *", "timezone": "UTC"}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _timeline(
    client: TestClient, since: datetime, until: datetime, **params: Any
) -> dict[str, Any]:
    response = client.get(
        "/v1/schedules/s/timeline", params={"since": z(since), "until": z(until), **params}
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_each_instant_says_what_happened_or_why_not(
    client: TestClient, clock: FakeClock, engine: Engine
) -> None:
    lease = SqlLease(engine, Replica("r", "h", 1), ttl_s=600, clock=lambda: clock.now)
    assert lease.acquire() and lease.token is not None
    put(client, "s", trigger=HOURLY)
    (first,) = claim_due(engine, at(1) + timedelta(seconds=1), lease.token, 10).dispatches
    record_outcome(engine, first.run_id, RunState.SUCCEEDED, {"finished_at": at(1.01)}, at(1.01))
    clock.now = at(1.5)
    client.post("/v1/schedules/s/pause", headers={"X-Sundial-Reason": "deploy freeze"})
    clock.now = at(3.5)
    client.post("/v1/schedules/s/resume")
    claim_due(engine, at(4) + timedelta(minutes=10), lease.token, 10)  # 10 minutes late
    clock.now = at(4.25)
    lease.release()
    clock.now = at(6.5)

    items = _timeline(client, T0, at(8))["items"]
    seen = [(i["scheduled_for"], i["status"], i["cause"]) for i in items]
    assert seen == [
        (z(at(1)), "succeeded", None),
        (z(at(2)), "not_fired", "paused"),
        (z(at(3)), "not_fired", "paused"),
        (z(at(4)), "missed", "late"),
        (z(at(5)), "not_fired", "no_leader"),
        (z(at(6)), "not_fired", "no_leader"),
        (z(at(7)), "upcoming", "not_due"),
    ]
    assert items[0]["run"]["id"] == first.run_id and items[0]["schedule_version"] == 1
    assert items[1]["paused"]["actor"] == "anonymous"
    assert items[1]["paused"]["reason"] == "deploy freeze"
    assert "deploy freeze" in items[1]["detail"]
    assert items[3]["late_seconds"] == 600
    assert items[4]["leader_gap"] == {"start": z(at(4.25)), "end": None}


def test_coalesced_excluded_and_out_of_window_instants(
    client: TestClient, clock: FakeClock, engine: Engine
) -> None:
    lease = SqlLease(engine, Replica("r", "h", 1), ttl_s=600, clock=lambda: T0)
    assert lease.acquire() and lease.token is not None
    token = lease.token
    client.put(
        "/v1/calendars/c",
        json={
            "rules": [
                {"type": "weekly", "days": ["sat"], "start_time": "15:00", "end_time": "16:00"}
            ]
        },
    )
    put(
        client,
        "s",
        trigger=HOURLY,
        exclude_calendars=["c"],
        end_at=z(at(5)),
        misfire_grace_seconds=None,
    )
    claim_due(engine, at(2.5), token, 10)  # 13:00 and 14:00: one outage, one run
    claim_due(engine, at(3) + timedelta(seconds=1), token, 10)  # 15:00 is excluded
    clock.now = at(3.5)
    items = _timeline(client, T0, at(7))["items"]
    seen = [(i["scheduled_for"], i["status"], i["cause"]) for i in items]
    assert seen == [
        (z(at(1)), "skipped", "coalesced"),
        (z(at(2)), "pending", None),
        (z(at(3)), "skipped", "calendar"),
        (z(at(4)), "upcoming", "not_due"),
        (z(at(5)), "upcoming", "not_due"),
        (z(at(6)), "not_planned", "outside_window"),
    ]
    assert "'c'" in items[2]["detail"] and items[2]["calendar"] == "c"


def test_a_changed_trigger_plans_each_window_with_the_version_then_in_force(
    client: TestClient, clock: FakeClock
) -> None:
    put(client, "s", trigger=HOURLY)
    clock.now = at(2.5)
    put(client, "s", trigger={"type": "cron", "expression": "30 * * * *", "timezone": "UTC"})
    clock.now = at(5)
    times = [i["scheduled_for"] for i in _timeline(client, T0, at(5))["items"]]
    assert times == [z(at(h)) for h in (1, 2, 3.5, 4.5)]  # re-armed strictly after 14:30


def test_pages_follow_each_other_and_the_window_is_bounded(client: TestClient) -> None:
    put(client, "s", trigger={"type": "interval", "seconds": 60})
    first = _timeline(client, T0, at(1), limit=25)
    assert len(first["items"]) == 25 and first["next_cursor"]
    second = _timeline(client, T0, at(1), limit=50, cursor=first["next_cursor"])
    assert len(second["items"]) == 34 and second["next_cursor"] is None
    assert first["items"][-1]["scheduled_for"] < second["items"][0]["scheduled_for"]
    too_long = client.get(
        "/v1/schedules/s/timeline", params={"since": z(T0), "until": z(at(24 * 400))}
    )
    assert too_long.status_code == 422
    assert client.get("/v1/schedules/nope/timeline").status_code == 404
