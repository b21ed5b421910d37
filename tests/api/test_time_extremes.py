"""Backfill and previews anywhere in the representable time range: an answer, never a 5xx."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.support import TestClient, put

TRIGGERS: dict[str, dict[str, Any]] = {
    "cron": {"type": "cron", "expression": "0 3 * * *", "timezone": "Pacific/Kiritimati"},
    "seconds": {"type": "cron", "expression": "*/7 * * * * *"},
    "interval": {"type": "interval", "seconds": 1},
    "date": {"type": "date", "run_at": "2026-01-01T00:00:00Z"},
}
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)


def test_extreme_times_are_answered_without_a_server_error(client: TestClient) -> None:
    for name, trigger in TRIGGERS.items():
        put(client, name, trigger=trigger, jitter_seconds=86400)

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        name=st.sampled_from(list(TRIGGERS)),
        start=INSTANTS,
        end=INSTANTS,
        count=st.integers(1, 1000),
    )
    def check(name: str, start: datetime, end: datetime, count: int) -> None:
        backfill = {"start": start.isoformat(), "end": end.isoformat()}
        after = {"after": start.isoformat(), "count": count}
        jittered = {**after, "trigger": TRIGGERS[name], "schedule_id": name, "jitter_seconds": 9}

        answers = [
            client.post(f"/v1/schedules/{name}/backfill", json=backfill).status_code,
            client.get(f"/v1/schedules/{name}/preview", params=after).status_code,
            client.post("/v1/triggers/preview", json=jittered).status_code,
        ]

        assert answers[0] in (202, 422)
        assert set(answers[1:]) <= {200, 422}

    check()
