"""The arming rules: the state and next-fire columns a write gives a schedule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection

from scheduler.errors import InvalidSchedule, SundialError
from scheduler.store.calendar_store import load_calendars
from scheduler.store.models import ScheduleState, schedules
from scheduler.store.schedule_spec import Row
from scheduler.timing.exclusions import Calendar
from scheduler.timing.fire_policy import Arming, arm, calendar_names

# A change to any of these moves the next fire, so the schedule is re-armed.
ARMING_FIELDS = (
    "trigger",
    "start_at",
    "end_at",
    "jitter_seconds",
    "exclude_calendars",
    "on_excluded",
)
PAUSED_REASON = "paused through the API"
COMPLETED_REASON = "the trigger has no fire time left"
STATE_COLUMNS = ("state", "state_reason", "next_run_at", "next_due_at")


def paused_values(reason: str, now: datetime) -> Row:
    """The values the paused transition writes, whoever pauses (the API, a failure streak,
    a quarantine): no next fire, the reason, and a new version, so ETags change too."""
    return {
        "state": ScheduleState.PAUSED.value,
        "state_reason": reason,
        "next_run_at": None,
        "next_due_at": None,
        "updated_at": now,
        "version": schedules.c.version + 1,
    }


def arming_columns(
    conn: Connection,
    row: Row,
    *,
    paused: bool,
    current: Row | None,
    now: datetime,
    calendars: Mapping[str, Calendar] | None = None,
) -> Row:
    """State and next-fire columns for ``row``; ``current`` is the row it replaces, if any."""
    keep = STATE_COLUMNS
    if paused:
        if current is not None and current["state"] == ScheduleState.PAUSED:
            return {k: current[k] for k in keep}
        pausing = paused_values(PAUSED_REASON, now)
        return {k: pausing[k] for k in keep}
    timing_changed = current is None or any(row[f] != current[f] for f in ARMING_FIELDS)
    if current is not None and current["state"] != ScheduleState.PAUSED and not timing_changed:
        return {k: current[k] for k in keep}
    arming = _arm(conn, row, now, calendars)
    last = row["last_run_at"]
    if fire_prepared(row, now) and arming.next_run_at is not None and arming.next_run_at <= last:
        # The last fire is prepared ahead of its instant; this write withdraws it (the
        # version moves on), and the schedule goes on after it.
        arming = _arm(conn, row, last, calendars)
    # Never re-arm at or before the last fire: a finished one-off must not fire twice.
    if arming.next_run_at is None or (last is not None and arming.next_run_at <= last):
        return dict(
            zip(keep, (ScheduleState.COMPLETED.value, COMPLETED_REASON, None, None), strict=True)
        )
    return dict(
        zip(
            keep,
            (ScheduleState.ACTIVE.value, None, arming.next_run_at, arming.next_due_at),
            strict=True,
        )
    )


def fire_prepared(row: Row, now: datetime) -> bool:
    """True when the schedule's last fire is still ahead of ``now``: the leader recorded it
    ahead of its instant (fire-ahead) and has not published it yet."""
    last = row["last_run_at"]
    return last is not None and last > now


def _arm(
    conn: Connection, row: Row, now: datetime, calendars: Mapping[str, Calendar] | None
) -> Arming:
    """``calendars``: the ones ``row`` names, loaded already; else read through ``conn``."""
    if calendars is None:
        calendars = load_calendars(conn, calendar_names(row))
    try:
        return arm(row, now, calendars)
    except SundialError:
        raise
    except (OverflowError, ValueError) as exc:
        # Fire times near the end of the datetime range cannot be represented.
        raise InvalidSchedule("trigger", f"no representable fire time: {exc}") from exc
