"""The stretch of the fire timeline a schedule's page shows by default."""

from __future__ import annotations

from datetime import timedelta

from api.routes.timeline import MAX_WINDOW
from api.ui.timeline_window import TimelineWindow, default_window, window_of
from tests.api.support import T0

MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)


def test_about_twenty_past_fires_and_the_next_one() -> None:
    fires = [T0 + timedelta(seconds=20) + MINUTE * n for n in range(10)]

    window = default_window(fires, T0 - DAY, T0)

    assert window.since <= T0 - 20 * MINUTE + timedelta(seconds=20)
    assert window.since > T0 - 21 * MINUTE
    assert fires[0] < window.until <= fires[1]


def test_a_rare_schedule_is_bounded_by_the_longest_window() -> None:
    yearly = [T0 + DAY * 365 * n for n in range(1, 4)]

    window = default_window(yearly, T0 - DAY * 3000, T0)

    assert window.span == MAX_WINDOW and window.until > T0


def test_a_one_off_spans_from_its_creation() -> None:
    window = default_window([], T0 - timedelta(hours=5), T0)

    assert window.since == T0 - timedelta(hours=5) and window.until == T0 + MINUTE


def test_a_window_asked_for_by_one_end_keeps_the_default_span() -> None:
    default = TimelineWindow(T0 - DAY, T0)

    assert window_of(T0, None, default) == TimelineWindow(T0, T0 + DAY)
    assert window_of(None, T0, default) == TimelineWindow(T0 - DAY, T0)
    assert default.earlier() == TimelineWindow(T0 - 2 * DAY, T0 - DAY)
    assert default.later() == TimelineWindow(T0, T0 + DAY)
