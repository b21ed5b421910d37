"""POST /v1/triggers/preview: the scheduler's own fire times."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.support import T0, FakeClock, TestClient, assert_invalid, z


def preview(client: TestClient, trigger: dict[str, Any], **fields: Any) -> list[str]:
    response = client.post("/v1/triggers/preview", json={"trigger": trigger, **fields})
    assert response.status_code == 200, response.text
    times: list[str] = response.json()["fire_times"]
    return times


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_day_of_week_zero_and_seven_are_sunday(client: TestClient, sunday: str) -> None:
    # T0 is Saturday 2026-11-21.
    times = preview(client, {"type": "cron", "expression": f"0 9 * * {sunday}"}, count=2)

    assert times == ["2026-11-22T09:00:00Z", "2026-11-29T09:00:00Z"]


def test_a_repeated_wall_time_fires_once_on_the_fall_back_day(client: TestClient) -> None:
    trigger = {"type": "cron", "expression": "30 2 * * *", "timezone": "Europe/Berlin"}

    times = preview(client, trigger, after="2026-10-24T00:00:00Z", count=3)

    # 02:30 CEST on the 25th, once; then 02:30 CET.
    assert times == ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]


def test_after_defaults_to_now_and_count_to_ten(client: TestClient) -> None:
    times = preview(client, {"type": "interval", "seconds": 60})

    assert times == [z(T0 + timedelta(minutes=n)) for n in range(1, 11)]


def test_a_delay_resolves_against_now(client: TestClient, clock: FakeClock) -> None:
    clock.advance(0.5)

    times = preview(client, {"type": "delay", "seconds": 90}, after=z(T0))

    assert times == [z(clock.now + timedelta(seconds=90))]


def test_start_and_end_bound_the_fire_times(client: TestClient) -> None:
    times = preview(
        client,
        {"type": "interval", "seconds": 3600},
        start_at="2026-11-22T00:00:00Z",
        end_at="2026-11-22T02:00:00Z",
        count=10,
    )

    assert times == ["2026-11-22T00:00:00Z", "2026-11-22T01:00:00Z", "2026-11-22T02:00:00Z"]


def test_macros_and_seconds_field(client: TestClient) -> None:
    assert preview(client, {"type": "cron", "expression": "@daily"}, count=1) == [
        "2026-11-22T00:00:00Z"
    ]
    assert preview(client, {"type": "cron", "expression": "*/20 * * * * *"}, count=2) == [
        "2026-11-21T12:00:20Z",
        "2026-11-21T12:00:40Z",
    ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"trigger": {"type": "cron", "expression": "0 0 30 2 *"}}, ("trigger", "expression")),
        ({"trigger": {"type": "cron", "expression": "@often"}}, ("trigger", "expression")),
        (
            {"trigger": {"type": "cron", "expression": "* * * * *", "timezone": "X/Y"}},
            ("timezone",),
        ),
        ({"trigger": {"type": "date", "run_at": "2026-12-01T00:00:00"}}, ("run_at",)),
        ({"trigger": {"type": "interval", "seconds": 60}, "count": 1001}, ("count",)),
        ({"trigger": {"type": "interval", "seconds": 60}, "after": "2026-12-01T00:00"}, ("after",)),
        ({"trigger": {"type": "interval", "seconds": 60}, "extra": 1}, ("extra",)),
    ],
)
def test_invalid_preview_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    assert_invalid(client.post("/v1/triggers/preview", json=body), *loc)


def test_a_thousand_fire_times(client: TestClient) -> None:
    times = preview(client, {"type": "cron", "expression": "* * * * *"}, count=1000)

    assert len(times) == 1000
