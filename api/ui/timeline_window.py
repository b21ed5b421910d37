"""Which stretch of a schedule's fire timeline its page shows.

By default the page shows the planned instants around now: about the last
:data:`PAST_FIRES` of them and the next one, so a schedule firing every two seconds and
one firing once a month both show a screenful. The spacing comes from the schedule's next
fire times (its trigger and calendars, as the preview computes them). "Earlier" and
"Later" move the window by its own span; a window holding more than a page of instants
continues with the API's cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from api.routes.timeline import MAX_WINDOW

PAST_FIRES = 20
# Without two upcoming fires (a one-off, an ended schedule) the window spans from creation.
_NO_SPACING_LOOKAHEAD = timedelta(minutes=1)
_MIN_SPAN = timedelta(seconds=1)


@dataclass(frozen=True)
class TimelineWindow:
    """``[since, until)`` and the span the page moves it by."""

    since: datetime
    until: datetime

    @property
    def span(self) -> timedelta:
        """Its length."""
        return self.until - self.since

    def earlier(self) -> TimelineWindow:
        """The window just before this one."""
        return TimelineWindow(self.since - self.span, self.since)

    def later(self) -> TimelineWindow:
        """The window just after this one."""
        return TimelineWindow(self.until, self.until + self.span)


def default_window(
    fire_times: Sequence[datetime], created_at: datetime, now: datetime
) -> TimelineWindow:
    """About the last :data:`PAST_FIRES` planned instants and the next one."""
    gaps = [b - a for a, b in pairwise(fire_times) if b > a]
    if not gaps:
        until = now + _NO_SPACING_LOOKAHEAD
        since = max(created_at, until - MAX_WINDOW)
        return TimelineWindow(min(since, until - _MIN_SPAN), until)
    gap = max(sorted(gaps)[len(gaps) // 2], _MIN_SPAN)  # the median spacing
    ahead = fire_times[0] - now if fire_times and fire_times[0] > now else gap
    until = now + min(ahead, gap) + _MIN_SPAN
    span = min(gap * PAST_FIRES + (until - now), MAX_WINDOW)
    return TimelineWindow(until - span, until)


def window_of(
    since: datetime | None, until: datetime | None, default: TimelineWindow
) -> TimelineWindow:
    """The window the page was asked for: either end given, the other from the default's
    span; at most the API's longest window."""
    span = min(default.span, MAX_WINDOW)
    if since is not None and until is not None:
        return TimelineWindow(since, until)
    if since is not None:
        return TimelineWindow(since, since + span)
    if until is not None:
        return TimelineWindow(until - span, until)
    return default
