"""The one place that reads the wall clock; everything else takes ``now`` as an argument."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def monotonic() -> float:
    """Seconds from an arbitrary start that never jump; for lease deadlines."""
    return time.monotonic()


def ensure_utc(value: datetime) -> datetime:
    """Reject naive datetimes and convert aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime; an offset or Z is required")
    return value.astimezone(UTC)
