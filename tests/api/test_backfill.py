"""POST /v1/schedules/{id}/backfill: the fires of a past range, recorded once each."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.api.support import (
    T0,
    RecordingNotifier,
    TestClient,
    add_run,
    assert_invalid,
    count_runs,
    put,
    z,
)

HOURLY = {"type": "cron", "expression": "0 * * * *", "timezone": "UTC"}
# Five fires: 07:00 to 11:00, both ends included.
RANGE = {"start": z(T0 - timedelta(hours=5)), "end": z(T0 - timedelta(hours=1))}
FIRES = [z(T0 - timedelta(hours=h)) for h in range(5, 0, -1)]


def backfill(client: TestClient, schedule_id: str = "s1", **body: Any) -> Any:
    return client.post(f"/v1/schedules/{schedule_id}/backfill", json={**RANGE, **body})


def runs_of(client: TestClient, schedule_id: str = "s1", **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/schedules/{schedule_id}/runs", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return sorted(items, key=lambda run: run["scheduled_for"])


def test_backfill_records_every_fire_in_the_range_as_a_pending_backfill_run(
    client: TestClient,
) -> None:
    put(client, "s1", trigger=HOURLY)

    response = backfill(client)

    assert response.status_code == 202
    assert response.json() == {"count": 5}
    runs = runs_of(client)
    assert [run["scheduled_for"] for run in runs] == FIRES
    assert {(run["trigger"], run["state"], run["attempt"]) for run in runs} == {
        ("backfill", "pending", 1)
    }


def test_the_same_backfill_twice_records_nothing_the_second_time(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    put(client, "s1", trigger=HOURLY)

    first = backfill(client)
    notices = list(notifier.changed)
    second = backfill(client)

    assert (first.json(), second.json()) == ({"count": 5}, {"count": 0})
    assert second.status_code == 202
    assert count_runs(engine) == 5
    # The leader is told of new runs at once; a backfill that recorded none tells nothing.
    assert notices == ["s1", "s1"]
    assert notifier.changed == notices


def test_a_fire_already_recorded_is_not_repeated(client: TestClient, engine: Engine) -> None:
    put(client, "s1", trigger=HOURLY)
    recorded = add_run(engine, "s1", T0 - timedelta(hours=3), "succeeded", run_id="ran")

    response = backfill(client)

    assert response.json() == {"count": 4}
    runs = runs_of(client)
    assert [run["scheduled_for"] for run in runs] == FIRES
    kept = client.get(f"/v1/runs/{recorded}").json()
    assert (kept["trigger"], kept["state"]) == ("schedule", "succeeded")
    assert [run["id"] for run in runs_of(client, trigger="backfill")] == [
        run["id"] for run in runs if run["id"] != recorded
    ]


def test_an_overlapping_backfill_records_only_the_new_fires(client: TestClient) -> None:
    put(client, "s1", trigger=HOURLY)
    backfill(client)

    wider = backfill(client, start=z(T0 - timedelta(hours=7)))

    assert wider.json() == {"count": 2}
    assert len(runs_of(client)) == 7


def test_allow_paces_the_runs_from_now(client: TestClient) -> None:
    put(client, "s1", trigger=HOURLY, overlap="skip")

    backfill(client, overlap="allow")

    due = [datetime.fromisoformat(run["due_at"]) for run in runs_of(client)]
    assert due[0] == T0
    assert due == sorted(set(due))  # strictly increasing


@pytest.mark.parametrize("overlap", ["skip", "buffer_one", "cancel_previous", None])
def test_other_policies_release_the_runs_one_at_a_time(
    client: TestClient, overlap: str | None
) -> None:
    # With no overlap in the body, the schedule's own (skip here) applies.
    put(client, "s1", trigger=HOURLY, overlap="skip")

    response = backfill(client, overlap=overlap)

    assert response.json() == {"count": 5}
    assert {run["due_at"] for run in runs_of(client)} == {None}


def test_a_one_off_backfills_its_single_fire(client: TestClient) -> None:
    run_at = T0 - timedelta(hours=2)
    put(client, "once", trigger={"type": "date", "run_at": z(run_at)})

    response = backfill(client, "once")

    assert response.json() == {"count": 1}
    assert [run["scheduled_for"] for run in runs_of(client, "once")] == [z(run_at)]


def test_a_range_without_fires_records_nothing(client: TestClient) -> None:
    put(client, "s1", trigger=HOURLY)

    response = backfill(
        client, start=z(T0 - timedelta(minutes=50)), end=z(T0 - timedelta(minutes=10))
    )

    assert (response.status_code, response.json()) == (202, {"count": 0})


def test_backfill_of_an_unknown_schedule_is_404(client: TestClient) -> None:
    assert backfill(client, "nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": RANGE["end"], "end": RANGE["start"]}, "end"),
        ({"end": z(T0 + timedelta(hours=1))}, "end"),
        ({"start": "2026-11-21T07:00:00"}, "start"),
        ({"end": "2026-11-21T11:00:00"}, "end"),
        ({"start": None}, "start"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"extra": 1}, "extra"),
    ],
)
def test_an_invalid_backfill_is_422_naming_the_field_and_records_nothing(
    client: TestClient, engine: Engine, body: dict[str, Any], field: str
) -> None:
    put(client, "s1", trigger=HOURLY)

    assert_invalid(backfill(client, **body), "body", field)
    assert count_runs(engine) == 0


def test_a_range_of_too_many_fires_is_422_naming_end(client: TestClient, engine: Engine) -> None:
    # Every second for three hours: 10,801 fires, over the cap of 10,000.
    put(client, "s1", trigger={"type": "cron", "expression": "* * * * * *"})

    response = backfill(client, start=z(T0 - timedelta(hours=3)), end=z(T0))

    assert_invalid(response, "body", "end")
    assert count_runs(engine) == 0


def test_a_read_key_may_not_backfill(make_client: Any, engine: Engine) -> None:
    secured: TestClient = make_client(api_keys=["w-secret", "r-secret:read"])
    put_response = secured.put(
        "/v1/schedules/s1",
        json={"task": "reports.generate", "trigger": HOURLY},
        headers={"Authorization": "Bearer w-secret"},
    )
    assert put_response.status_code == 201

    read = secured.post(
        "/v1/schedules/s1/backfill", json=RANGE, headers={"Authorization": "Bearer r-secret"}
    )
    anonymous = secured.post("/v1/schedules/s1/backfill", json=RANGE)

    assert (read.status_code, anonymous.status_code) == (403, 401)
    assert count_runs(engine) == 0


def test_the_openapi_schema_shows_backfill_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    operation = schema["paths"]["/v1/schedules/{schedule_id}/backfill"]["post"]
    assert "202" in operation["responses"]
    assert schema["components"]["schemas"]["BackfillRequest"]["examples"]
    assert schema["components"]["schemas"]["BackfillResponse"]["examples"] == [{"count": 20}]


def test_a_dry_run_counts_the_new_fires_and_records_nothing(
    client: TestClient, engine: Engine, notifier: RecordingNotifier
) -> None:
    put(client, "s1", trigger=HOURLY)
    add_run(engine, "s1", T0 - timedelta(hours=3), "succeeded", run_id="ran by hand")
    notices = len(notifier.changed)

    dry = backfill(client, dry_run=True)
    real = backfill(client)

    assert (dry.status_code, dry.json()) == (202, {"count": 4})
    assert real.json() == {"count": 4}
    assert len(notifier.changed) == notices + 1  # the real one only
    assert backfill(client, dry_run=True).json() == {"count": 0}
