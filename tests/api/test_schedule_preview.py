"""Previews with jitter: GET /v1/schedules/{id}/preview and POST /v1/triggers/preview agree
with the scheduler on every fire time and on when each is published."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from scheduler.store.models import schedules
from scheduler.timing.fire_policy import arm
from scheduler.timing.triggers import jitter
from tests.api.support import T0, FakeClock, TestClient, assert_invalid, put, z

EVERY_5_MIN = {"type": "cron", "expression": "*/5 * * * *", "timezone": "UTC"}


def schedule_preview(client: TestClient, schedule_id: str = "s1", **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/schedules/{schedule_id}/preview", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def times(values: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(value) for value in values]


def test_due_times_are_fire_times_plus_the_schedules_jitter(client: TestClient) -> None:
    put(client, "s1", trigger=EVERY_5_MIN, jitter_seconds=240)

    body = schedule_preview(client, count=20)

    fires, due = times(body["fire_times"]), times(body["due_times"])
    assert fires == [T0 + timedelta(minutes=5 * n) for n in range(1, 21)]
    assert due == [fire + jitter("s1", fire, 240) for fire in fires]
    delays = {d - f for f, d in zip(fires, due, strict=True)}
    assert len(delays) > 1
    assert all(timedelta(0) <= delay < timedelta(seconds=240) for delay in delays)


def test_the_first_preview_is_what_the_scheduler_arms(
    client: TestClient, engine: Engine, clock: FakeClock
) -> None:
    put(client, "s1", trigger=EVERY_5_MIN, jitter_seconds=240)
    clock.advance(7)
    with engine.connect() as conn:
        row = dict(conn.execute(select(schedules).where(schedules.c.id == "s1")).mappings().one())

    body = schedule_preview(client, count=1)
    armed = arm(row, clock.now)

    assert times(body["fire_times"]) == [armed.next_run_at]
    assert times(body["due_times"]) == [armed.next_due_at]
    # ... and what it stored when the schedule was created.
    assert times(body["fire_times"]) == [row["next_run_at"]]
    assert times(body["due_times"]) == [row["next_due_at"]]


def test_the_same_schedule_id_and_jitter_preview_alike_on_both_endpoints(
    client: TestClient,
) -> None:
    put(client, "s1", trigger=EVERY_5_MIN, jitter_seconds=90)

    by_schedule = schedule_preview(client, count=5, after=z(T0))
    by_trigger = client.post(
        "/v1/triggers/preview",
        json={
            "trigger": EVERY_5_MIN,
            "count": 5,
            "after": z(T0),
            "schedule_id": "s1",
            "jitter_seconds": 90,
        },
    ).json()

    assert by_trigger == by_schedule
    assert by_trigger["due_times"] != by_trigger["fire_times"]


def test_a_trigger_preview_without_jitter_is_due_at_its_fire_times(client: TestClient) -> None:
    plain = {"trigger": EVERY_5_MIN, "count": 3}
    zero = {**plain, "schedule_id": "s1", "jitter_seconds": 0}

    for body in (plain, zero):
        result = client.post("/v1/triggers/preview", json=body).json()
        assert result["due_times"] == result["fire_times"]
        assert len(result["fire_times"]) == 3


def test_a_schedule_preview_defaults_to_ten_after_now_and_honours_after(
    client: TestClient,
) -> None:
    put(client, "s1", trigger=EVERY_5_MIN)

    default = schedule_preview(client)
    later = schedule_preview(client, after="2026-11-21T14:02:00+01:00", count=2)

    assert times(default["fire_times"]) == [T0 + timedelta(minutes=5 * n) for n in range(1, 11)]
    assert default["due_times"] == default["fire_times"]
    assert later["fire_times"] == ["2026-11-21T13:05:00Z", "2026-11-21T13:10:00Z"]
    assert len(schedule_preview(client, count=1000)["fire_times"]) == 1000


def test_an_interval_previews_on_its_grid_anchored_at_creation(
    client: TestClient, clock: FakeClock
) -> None:
    put(client, "s1", trigger={"type": "interval", "seconds": 3600})
    clock.advance(90 * 60)

    body = schedule_preview(client, count=2)

    assert times(body["fire_times"]) == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]


def test_a_paused_schedule_previews_what_resuming_would_fire(client: TestClient) -> None:
    put(client, "s1", trigger=EVERY_5_MIN, paused=True)

    assert len(schedule_preview(client)["fire_times"]) == 10


def test_a_one_off_previews_its_time_until_it_passes(client: TestClient) -> None:
    run_at = T0 + timedelta(minutes=30)
    put(client, "once", trigger={"type": "date", "run_at": z(run_at)}, jitter_seconds=60)

    ahead = schedule_preview(client, "once")
    after = schedule_preview(client, "once", after=z(run_at))

    assert ahead["fire_times"] == [z(run_at)]
    assert times(ahead["due_times"]) == [run_at + jitter("once", run_at, 60)]
    assert after == {"fire_times": [], "due_times": [], "excluded": []}


def test_preview_of_an_unknown_schedule_is_404(client: TestClient) -> None:
    assert client.get("/v1/schedules/nope/preview").status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"after": "2026-11-21T12:00:00"}, "after"),
        ({"after": "soon"}, "after"),
    ],
)
def test_an_invalid_schedule_preview_is_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    put(client, "s1")

    assert_invalid(client.get("/v1/schedules/s1/preview", params=params), "query", field)


def test_a_preview_past_the_representable_times_is_422_naming_after(client: TestClient) -> None:
    put(client, "s1", trigger=EVERY_5_MIN, jitter_seconds=86400)

    response = client.get("/v1/schedules/s1/preview", params={"after": "9999-12-31T23:50:00Z"})

    assert_invalid(response, "query", "after")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"jitter_seconds": 30}, "jitter_seconds"),
        ({"schedule_id": "-bad", "jitter_seconds": 30}, "schedule_id"),
        ({"schedule_id": "s1", "jitter_seconds": -1}, "jitter_seconds"),
        ({"schedule_id": "s1", "jitter_seconds": 86401}, "jitter_seconds"),
    ],
)
def test_a_jittered_trigger_preview_needs_a_valid_schedule_id(
    client: TestClient, fields: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/triggers/preview", json={"trigger": EVERY_5_MIN, **fields})

    assert_invalid(response, "body", field)


def test_a_read_key_may_preview(make_client: Any) -> None:
    secured: TestClient = make_client(api_keys=["w-secret", "r-secret:read"])
    write, read = ({"Authorization": f"Bearer {key}"} for key in ("w-secret", "r-secret"))
    body = {"task": "reports.generate", "trigger": EVERY_5_MIN}
    assert secured.put("/v1/schedules/s1", json=body, headers=write).status_code == 201
    jittered = {"trigger": EVERY_5_MIN, "schedule_id": "s1", "jitter_seconds": 5}

    by_schedule = secured.get("/v1/schedules/s1/preview", headers=read)
    by_trigger = secured.post("/v1/triggers/preview", json=jittered, headers=read)
    anonymous = secured.get("/v1/schedules/s1/preview")

    assert (by_schedule.status_code, by_trigger.status_code) == (200, 200)
    assert anonymous.status_code == 401
