"""Words for people: triggers, durations, and the clock changes among next fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.ui.describe import cron_words, duration, every, next_fires, trigger_words, zone_of


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 3 * * *", "At 03:00"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("30 2 * * 1-5", "At 02:30, Monday through Friday"),
        ("0 9 * * 0", "At 09:00, only on Sunday"),
        ("0 9 * * 7", "At 09:00, only on Sunday"),  # standard crontab: 7 is Sunday too
        ("@hourly", "Every hour, on the hour"),
    ],
)
def test_cron_in_words(expression: str, words: str) -> None:
    assert cron_words(expression) == words


def test_other_triggers_in_words() -> None:
    assert every(900) == "every 15 minutes"
    assert every(90) == "every 90 seconds"
    assert every(86400) == "every day"
    assert every(1.5) == "every 1.5 seconds"
    assert trigger_words({"type": "interval", "seconds": 3600}) == "Every hour"
    assert trigger_words({"type": "date", "run_at": "2026-11-22T02:00:00Z"}) == "Once"
    assert zone_of({"type": "cron", "expression": "0 3 * * *", "timezone": "Asia/Tokyo"}) == (
        "Asia/Tokyo"
    )
    assert zone_of({"type": "interval", "seconds": 60}) == "UTC"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "40 ms"), (2.5, "2.5 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"), (-3, "-3 s")],
)
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_next_fires_mark_each_change_of_the_zones_offset() -> None:
    zone = "Europe/Berlin"
    # 01:30 local on the nights around the October 2026 fall-back (25 October).
    fires = [datetime(2026, 10, d, 0, 30, tzinfo=UTC) for d in (23, 24)]
    fires += [datetime(2026, 10, d, 1, 30, tzinfo=UTC) for d in (25, 26)]
    due = [fire + timedelta(seconds=7) for fire in fires]

    marked = next_fires(fires, due, zone, now=datetime(2026, 10, 22, tzinfo=UTC))

    assert [f.local for f in marked] == [
        "Fri 23 Oct 2026 02:30:00 CEST",
        "Sat 24 Oct 2026 02:30:00 CEST",
        "Sun 25 Oct 2026 02:30:00 CET",
        "Mon 26 Oct 2026 02:30:00 CET",
    ]
    assert [f.clock_change for f in marked] == [
        None,
        None,
        "clocks go back: UTC+02:00 → UTC+01:00",
        None,
    ]
    assert {f.jitter_s for f in marked} == {7.0}
