"""The alert repository: alerts raised (a missed success deadline, a final failure, an
automatic pause), resolved when the schedule next succeeds, and their webhook deliveries.

An alert is raised at most once per subject (a fire, a failed run, a paused version): the
unique key holds across leaders and restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.store.db import among
from scheduler.store.models import RunState, alerts, runs
from scheduler.store.reads import newest_first, one_row

log = logging.getLogger("sundial.alerts")


class AlertKind(StrEnum):
    DEADLINE = "deadline"
    FAILURE = "failure"
    PAUSED = "paused"


class Notify(StrEnum):
    """The webhook event an alert waits to send."""

    RAISED = "raised"
    RESOLVED = "resolved"


def raise_alert(
    conn: Connection,
    *,
    schedule_id: str,
    kind: AlertKind,
    subject: str,
    message: str,
    now: datetime,
    scheduled_for: datetime | None = None,
    run_id: str | None = None,
) -> bool:
    """Record an alert unless one was raised for the same subject; True when new."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(alerts).values(
                    schedule_id=schedule_id,
                    kind=kind.value,
                    subject=subject,
                    message=message,
                    raised_at=now,
                    scheduled_for=scheduled_for,
                    run_id=run_id,
                    notify=Notify.RAISED.value,
                    notify_attempts=0,
                )
            )
    except IntegrityError:
        return False
    log.warning("alerts: %s alert for schedule %s: %s", kind.value, schedule_id, message)
    return True


def _resolve(conn: Connection, condition: Any, now: datetime, resolution: str) -> int:
    result = conn.execute(
        update(alerts)
        .where(alerts.c.resolved_at.is_(None), condition)
        .values(
            resolved_at=now,
            resolution=resolution,
            notify=Notify.RESOLVED.value,
            notify_attempts=0,
            notify_next_at=None,
            notify_error=None,
        )
    )
    return int(result.rowcount or 0)


def resolve_deleted(conn: Connection, schedule_id: str, now: datetime) -> int:
    """Resolve a deleted schedule's open alerts."""
    return resolve_all_deleted(conn, [schedule_id], now)


def resolve_all_deleted(conn: Connection, schedule_ids: Sequence[str], now: datetime) -> int:
    """Resolve the open alerts of deleted schedules, in one statement."""
    deleted = among(conn, alerts.c.schedule_id, list(schedule_ids))
    return _resolve(conn, deleted, now, "schedule deleted")


def resolve_succeeded(conn: Connection, now: datetime) -> int:
    """Resolve every open alert whose schedule has had a run succeed since it was raised."""
    success = exists().where(
        runs.c.schedule_id == alerts.c.schedule_id,
        runs.c.state == RunState.SUCCEEDED.value,
        runs.c.finished_at >= alerts.c.raised_at,
    )
    return _resolve(conn, success, now, "the schedule succeeded again")


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any]:
    """One alert, or :class:`NotFound`."""
    return one_row(conn, alerts, alerts.c.id, alert_id, f"no alert {alert_id}")


def list_alerts(
    conn: Connection,
    *,
    schedule_id: str | None = None,
    kinds: Sequence[str] = (),
    open_only: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest first, raised in ``[since, until)``, older than ``before_id``."""
    query = newest_first(
        alerts, alerts.c.raised_at, since=since, until=until, before_id=before_id, limit=limit
    )
    if schedule_id is not None:
        query = query.where(alerts.c.schedule_id == schedule_id)
    if kinds:
        query = query.where(alerts.c.kind.in_(kinds))
    if open_only is True:
        query = query.where(alerts.c.resolved_at.is_(None))
    elif open_only is False:
        query = query.where(alerts.c.resolved_at.is_not(None))
    return [dict(row) for row in conn.execute(query).mappings()]


def schedules_in_breach(conn: Connection) -> dict[str, int]:
    """How many schedules have an open alert, by alert kind."""
    query = (
        select(alerts.c.kind, func.count(alerts.c.schedule_id.distinct()))
        .where(alerts.c.resolved_at.is_(None))
        .group_by(alerts.c.kind)
    )
    return {kind: int(n) for kind, n in conn.execute(query)}


def due_notifications(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Alerts with an event to send whose next attempt is due, oldest first."""
    query = (
        select(alerts)
        .where(
            alerts.c.notify.is_not(None),
            or_(alerts.c.notify_next_at.is_(None), alerts.c.notify_next_at <= now),
        )
        .order_by(alerts.c.id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def record_delivery(
    conn: Connection,
    alert: dict[str, Any],
    now: datetime,
    *,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Record one delivery attempt of ``alert``'s pending event: sent (no ``error``), to be
    retried at ``retry_at``, or given up (an error and no ``retry_at``)."""
    same_event = and_(alerts.c.id == alert["id"], alerts.c.notify == alert["notify"])
    if error is None:
        values: dict[str, Any] = {"notify": None, "notified_at": now, "notify_error": None}
    else:
        values = {
            "notify": alert["notify"] if retry_at is not None else None,
            "notify_error": error[:1000],
            "notify_next_at": retry_at,
        }
    values["notify_attempts"] = alert["notify_attempts"] + 1
    # The event may have changed meanwhile (resolved while its raise was being sent).
    conn.execute(update(alerts).where(same_event).values(**values))
