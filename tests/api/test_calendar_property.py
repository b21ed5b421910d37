"""Property: for schedules with exclusion calendars, the preview lists exactly what the
leader's claim fires (and what it records skipped), across DST changes and both policies.

The preview is the API's; the fires are the claim's, stepped a day at a time with an
injected now. SQLite only: the code under test is the same on both
stores, and each example builds calendars and a schedule from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from scheduler.firing.claim import claim_due
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.store.models import RunState
from tests.api.support import FakeClock, TestClient, z
from tests.conftest import reset_database
from tests.factories import runs_of, schedule
from tests.services import unique_name

FIRES = 25
STARTS = [
    datetime(2026, 3, 26, tzinfo=UTC),  # Europe springs forward on the 29th
    datetime(2026, 10, 22, tzinfo=UTC),  # and falls back on the 25th
    datetime(2026, 9, 3, tzinfo=UTC),  # Santiago springs forward at midnight on 6 Sept
    datetime(2026, 12, 20, tzinfo=UTC),
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago"]
CRONS = ["0 * * * *", "*/20 * * * *", "30 2 * * *", "0 9 * * 1-5", "15 */3 * * *", "0 0 * * *"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(scope="module")
def database_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("sqlite")


@st.composite
def rules(draw: st.DrawFn, start: date) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in draw(
        st.lists(st.sampled_from(["dates", "range", "weekly"]), min_size=1, max_size=3)
    ):
        day = lambda: start + timedelta(days=draw(st.integers(0, 12)))  # noqa: E731
        if kind == "dates":
            out.append({"type": "dates", "dates": sorted({day().isoformat() for _ in range(3)})})
        elif kind == "range":
            first = day()
            last = first + timedelta(days=draw(st.integers(0, 2)))
            out.append({"type": "date_range", "start": first.isoformat(), "end": last.isoformat()})
        else:
            days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
            begin = draw(st.integers(0, 22))
            end = draw(st.integers(begin + 1, 24))
            out.append(
                {
                    "type": "weekly",
                    "days": days,
                    "start_time": f"{begin:02d}:00",
                    "end_time": f"{end:02d}:00",
                }
            )
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    created = draw(st.sampled_from(STARTS)) + timedelta(minutes=draw(st.integers(0, 2880)))
    trigger: dict[str, Any]
    if draw(st.booleans()):
        trigger = {
            "type": "cron",
            "expression": draw(st.sampled_from(CRONS)),
            "timezone": draw(st.sampled_from(ZONES)),
        }
    else:
        trigger = {"type": "interval", "seconds": draw(st.sampled_from([900, 3600, 5400]))}
    calendars = draw(st.lists(rules(created.date()), min_size=1, max_size=2))
    return {
        "created": created,
        "trigger": trigger,
        "calendars": calendars,
        "on_excluded": draw(st.sampled_from(["skip", "next_allowed"])),
        "jitter_seconds": draw(st.sampled_from([0, 30])),
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_preview_is_what_the_claim_fires(
    case: dict[str, Any],
    engine: Engine,
    make_client: Callable[..., TestClient],
    clock: FakeClock,
) -> None:
    reset_database(engine)
    lease = SqlLease(engine, Replica("p", "h", 1), ttl_s=600, clock=lambda: case["created"])
    assert lease.acquire() and lease.token is not None
    client = make_client()
    clock.now = case["created"]
    names = []
    for rules_ in case["calendars"]:
        name = unique_name("cal")
        assert client.put(f"/v1/calendars/{name}", json={"rules": rules_}).status_code == 201
        names.append(name)
    body = {
        "task": "sundial.echo",
        "trigger": case["trigger"],
        "exclude_calendars": names,
        "on_excluded": case["on_excluded"],
        "jitter_seconds": case["jitter_seconds"],
        "misfire_grace_seconds": None,
        "coalesce": False,
    }
    assert client.put("/v1/schedules/p", json=body).status_code == 201
    preview = client.get(
        "/v1/schedules/p/preview", params={"count": FIRES, "after": z(case["created"])}
    ).json()

    # Claimed a day at a time (nothing coalesced, nothing too late): each claim takes up
    # where the last one left the schedule, as the leader's would.
    fired: list[datetime] = []
    now = case["created"]
    while schedule(engine, "p")["next_due_at"] is not None and len(fired) < FIRES:
        now += timedelta(days=1)
        fired += [d.scheduled_for for d in claim_due(engine, now, lease.token, 1000).dispatches]

    expected = [datetime.fromisoformat(t) for t in preview["fire_times"]]
    assert expected, preview
    assert fired[: len(expected)] == expected
    skipped = [
        r["scheduled_for"]
        for r in runs_of(engine, "p")
        if r["state"] == RunState.SKIPPED and r["scheduled_for"] <= expected[-1]
    ]
    listed = [
        datetime.fromisoformat(e["scheduled_for"])
        for e in preview["excluded"]
        if datetime.fromisoformat(e["scheduled_for"]) <= expected[-1]
    ]
    assert skipped == listed
