"""Wall-clock times in a time zone mapped to instants, across DST changes (pure functions).

A wall time inside a DST gap does not exist: it maps to the first instant after the gap. A
wall time in a repeated hour exists twice: ``first_instant`` takes the earlier occurrence,
``last_instant`` the later one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def exists(local: datetime) -> bool:
    """True when the aware local time ``local`` occurs (is not inside a DST gap)."""
    tz = local.tzinfo
    assert tz is not None
    back = local.astimezone(UTC).astimezone(tz)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def is_ambiguous(local: datetime) -> bool:
    """True when the aware local time ``local`` occurs twice (a repeated hour)."""
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


def transition(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """The instant in ``(lo, hi]`` where the UTC offset in ``tz`` changes from that of ``lo``."""
    offset = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    # Transitions fall on whole seconds: the one in (lo, hi] is hi rounded down.
    return hi.replace(microsecond=0)


def gap_exit(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant after the DST gap that swallowed the naive ``wall`` time."""
    # In a gap, fold=1 reads the wall time with the offset after the transition, which
    # gives an instant before it; fold=0 gives one after it (PEP 495).
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return transition(before, after, tz)


def first_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant the naive ``wall`` time occurs in ``tz`` (or the gap's end), UTC."""
    first = wall.replace(tzinfo=tz, fold=0)
    if exists(first):
        return first.astimezone(UTC)
    return gap_exit(wall, tz)


def last_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The last instant the naive ``wall`` time occurs in ``tz`` (or the gap's end), UTC."""
    second = wall.replace(tzinfo=tz, fold=1)
    if exists(second):
        return second.astimezone(UTC)
    return gap_exit(wall, tz)
