"""A clock the test sets, for everything that takes a clock (a callable returning now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    """Returns ``now`` until the test sets or advances it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
