"""Celery dispatch options of a schedule through the API: time limits, exchange and routing
key, extra headers. Stored, returned, merged by PATCH, diffed by apply, refused with a 422
naming the field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from celery.app.task import Context
from sqlalchemy import Engine

from api.dispatch_schemas import HEADER_NAME_PATTERN
from scheduler.firing.messages import PROTOCOL_HEADERS, reserved_header
from tests.api.support import (
    TestClient,
    assert_invalid,
    count_schedules,
    create,
    put,
    schedule_body,
)

OPTIONS: dict[str, Any] = {
    "time_limit_seconds": 300,
    "soft_time_limit_seconds": 240.5,
    "exchange": "reports",
    "routing_key": "reports.pdf",
    "headers": {"tenant": "acme", "attempt-budget": 3, "ratio": 0.5, "dry_run": False},
}


def test_options_round_trip_and_default_to_none(client: TestClient) -> None:
    plain = create(client)
    made = create(client, **OPTIONS)

    assert {k: plain[k] for k in OPTIONS} == {
        "time_limit_seconds": None,
        "soft_time_limit_seconds": None,
        "exchange": None,
        "routing_key": None,
        "headers": {},
    }
    assert {k: made[k] for k in OPTIONS} == OPTIONS
    assert client.get(f"/v1/schedules/{made['id']}").json() == made


def test_patch_merges_headers_and_null_removes_one(client: TestClient) -> None:
    put(client, "s1", headers={"tenant": "acme", "region": "eu"}, time_limit_seconds=60)

    response = client.patch(
        "/v1/schedules/s1",
        json={"headers": {"region": None, "trace": "on"}, "soft_time_limit_seconds": 30},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["headers"] == {"tenant": "acme", "trace": "on"}
    assert (body["time_limit_seconds"], body["soft_time_limit_seconds"]) == (60, 30)


def test_put_without_options_clears_them(client: TestClient) -> None:
    put(client, "s1", **OPTIONS)

    body = put(client, "s1")

    assert {k: body[k] for k in OPTIONS} == {
        "time_limit_seconds": None,
        "soft_time_limit_seconds": None,
        "exchange": None,
        "routing_key": None,
        "headers": {},
    }


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"time_limit_seconds": 0}, ("time_limit_seconds",)),
        ({"time_limit_seconds": -5}, ("time_limit_seconds",)),
        ({"time_limit_seconds": 8 * 86400}, ("time_limit_seconds",)),
        ({"time_limit_seconds": "60"}, ("time_limit_seconds",)),
        ({"soft_time_limit_seconds": 0}, ("soft_time_limit_seconds",)),
        (
            {"time_limit_seconds": 60, "soft_time_limit_seconds": 60},
            ("soft_time_limit_seconds",),
        ),
        (
            {"time_limit_seconds": 60, "soft_time_limit_seconds": 90},
            ("soft_time_limit_seconds",),
        ),
        ({"exchange": "", "routing_key": "rk"}, ("exchange",)),
        ({"exchange": "e" * 256, "routing_key": "rk"}, ("exchange",)),
        ({"exchange": "é" * 128, "routing_key": "rk"}, ("exchange",)),
        ({"exchange": "e", "routing_key": "r" * 256}, ("routing_key",)),
        ({"exchange": "e", "routing_key": 5}, ("routing_key",)),
        ({"exchange": "e"}, ("routing_key",)),
        ({"routing_key": "rk"}, ("routing_key",)),
        ({"headers": {"task": "other.task"}}, ("headers",)),
        ({"headers": {"ID": "x"}}, ("headers",)),
        ({"headers": {"timelimit": [1, 2]}}, ("headers",)),
        ({"headers": {"delivery_info": "x"}}, ("headers",)),
        ({"headers": {"sundial_run_id": "forged"}}, ("headers",)),
        ({"headers": {"Sundial_Extra": "x"}}, ("headers",)),
        ({"headers": {"has space": "x"}}, ("headers",)),
        ({"headers": {"-dash": "x"}}, ("headers",)),
        ({"headers": {"n" * 65: "x"}}, ("headers",)),
        ({"headers": {"big": "v" * 1025}}, ("headers", "big")),
        ({"headers": {"nested": {"a": 1}}}, ("headers", "nested")),
        ({"headers": {"list": [1]}}, ("headers", "list")),
        ({"headers": {"none": None}}, ("headers", "none")),
        ({"headers": {f"h{i}": i for i in range(33)}}, ("headers",)),
        ({"headers": ["tenant"]}, ("headers",)),
    ],
)
def test_invalid_option_is_422_naming_it_and_stores_nothing(
    client: TestClient, engine: Engine, fields: dict[str, Any], loc: tuple[str, ...]
) -> None:
    response = client.post("/v1/schedules", json=schedule_body(**fields))

    assert_invalid(response, *loc)
    assert count_schedules(engine) == 0


def test_a_patch_that_breaks_the_limits_is_422_and_changes_nothing(client: TestClient) -> None:
    before = put(client, "s1", time_limit_seconds=60, soft_time_limit_seconds=30)

    response = client.patch("/v1/schedules/s1", json={"time_limit_seconds": 20})
    forged = client.patch("/v1/schedules/s1", json={"headers": {"sundial_run_id": "x"}})

    assert_invalid(response, "soft_time_limit_seconds")
    assert_invalid(forged, "headers")
    assert client.get("/v1/schedules/s1").json() == before


def test_every_field_celery_sets_on_the_request_is_reserved() -> None:
    # The worker merges headers into the task request: one named like a field Celery
    # sets there would shadow it (or be shadowed), so each must be refused.
    names = {n for n in vars(Context) if not n.startswith("_")} | PROTOCOL_HEADERS

    settable = {n for n in names if re.fullmatch(HEADER_NAME_PATTERN[1:-1], n)}
    assert settable, "the pattern admits none of Celery's names: the check proves nothing"
    assert [n for n in sorted(settable) if reserved_header(n) is None] == []
    assert reserved_header("tenant") is None


def test_apply_reports_a_changed_header_and_the_same_file_again_changes_nothing(
    client: TestClient,
) -> None:
    entry = {"id": "a", **schedule_body(**OPTIONS)}
    first = client.post("/v1/apply", json={"source": "ci", "schedules": [entry]})
    again = client.post("/v1/apply", json={"source": "ci", "schedules": [entry]})
    changed_entry = {**entry, "headers": {"tenant": "globex"}, "time_limit_seconds": 600}
    changed = client.post("/v1/apply", json={"source": "ci", "schedules": [changed_entry]})

    assert first.status_code == again.status_code == changed.status_code == 200
    assert [e["id"] for e in again.json()["unchanged"]] == ["a"]
    (plan,) = changed.json()["changed"]
    assert plan["changes"] == [
        {"field": "time_limit_seconds", "before": 300, "after": 600},
        {"field": "headers", "before": OPTIONS["headers"], "after": {"tenant": "globex"}},
    ]
