"""The bodies of calendars, restores and applies are as strict about JSON types as the
schedule bodies: a string is not a number, a number is not a date, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from scheduler.store.models import calendars, changes
from tests.api.support import TestClient, put

JSON = {"content-type": "application/json"}


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _calendar(rule: str, extra: str = "") -> bytes:
    return f'{{"rules": [{rule}]{extra}}}'.encode()


# (name, method, path, body, loc of the error)
COERCED: list[tuple[str, str, str, bytes, list[Any]]] = [
    (
        "number for a date",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "dates", "dates": [1766534400]}'),
        ["body", "rules", 0, "dates", "dates", 0],
    ),
    (
        "zero for a date",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "dates", "dates": [0]}'),
        ["body", "rules", 0, "dates", "dates", 0],
    ),
    (
        "a time for a date",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "dates", "dates": ["2026-12-24T00:00:00"]}'),
        ["body", "rules", 0, "dates", "dates", 0],
    ),
    (
        "number for a range end",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "date_range", "start": "2026-01-01", "end": 20260102}'),
        ["body", "rules", 0, "date_range", "end"],
    ),
    (
        "number for a time of day",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "weekly", "days": ["sat"], "start_time": 12}'),
        ["body", "rules", 0, "weekly", "start_time"],
    ),
    (
        "number for a country",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "holidays", "country": 49}'),
        ["body", "rules", 0, "holidays", "country"],
    ),
    (
        "number for a description",
        "PUT",
        "/v1/calendars/c",
        _calendar('{"type": "weekly", "days": ["sat"]}', ', "description": 5'),
        ["body", "description"],
    ),
    (
        "number for a restore reason",
        "POST",
        "/v1/schedules/s/history/1/restore",
        b'{"reason": 5}',
        ["body", "reason"],
    ),
    (
        "number for an apply calendar's name",
        "POST",
        "/v1/apply",
        b'{"source": "ci", "schedules": [], "calendars": '
        b'[{"name": 5, "rules": [{"type": "weekly", "days": ["sun"]}]}]}',
        ["body", "calendars", 0, "name"],
    ),
    (
        "number for a date in an applied calendar",
        "POST",
        "/v1/apply",
        b'{"source": "ci", "schedules": [], "calendars": '
        b'[{"name": "c", "rules": [{"type": "dates", "dates": [20261224]}]}]}',
        ["body", "calendars", 0, "rules", 0, "dates", "dates", 0],
    ),
    (
        '"true" for apply\'s prune',
        "POST",
        "/v1/apply",
        b'{"source": "ci", "schedules": [], "prune": "true"}',
        ["body", "prune"],
    ),
    (
        "string seconds in an applied schedule",
        "POST",
        "/v1/apply",
        b'{"source": "ci", "schedules": [{"id": "a", "task": "t", '
        b'"trigger": {"type": "interval", "seconds": "60"}}]}',
        ["body", "schedules", 0, "trigger", "interval", "seconds"],
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "loc"), COERCED, ids=[c[0] for c in COERCED]
)
def test_a_value_of_the_wrong_json_type_is_refused_and_nothing_is_stored(
    client: TestClient,
    engine: Engine,
    name: str,
    method: str,
    path: str,
    body: bytes,
    loc: list[Any],
) -> None:
    before = put(client, "s")
    recorded = _count(engine, changes)

    response = client.request(method, path, content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]], response.text
    assert _count(engine, calendars) == 0 and _count(engine, changes) == recorded
    assert client.get("/v1/schedules/s").json() == before


def test_dates_and_times_of_day_are_still_read_from_their_strings(client: TestClient) -> None:
    body = {
        "rules": [
            {"type": "dates", "dates": ["2026-12-24"]},
            {"type": "date_range", "start": "2026-08-01", "end": "2026-08-15"},
            {"type": "weekly", "days": ["mon-fri"], "start_time": "12:00", "end_time": "13:00"},
        ]
    }

    response = client.put("/v1/calendars/c", json=body)

    assert response.status_code == 201, response.text
    assert response.json()["rules"] == body["rules"]
