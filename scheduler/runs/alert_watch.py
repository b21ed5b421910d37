"""The leader's alert chores, in a thread of their own and off the fire path: raise
deadline alerts, resolve alerts whose schedule succeeded again, deliver webhook events.

Only the lease holder works, so one process raises each alert (the unique key holds even
if two briefly overlap) and one sends it. Delivery is retried with exponential backoff and
given up after :data:`MAX_ATTEMPTS`; what was sent is recorded before the next is tried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from scheduler.leadership.chores import LeaderChore
from scheduler.runs.alert_webhook import AlertWebhook, DeliveryFailed
from scheduler.runs.alerts import due_notifications, record_delivery, resolve_succeeded
from scheduler.runs.deadlines import check_deadlines
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.alerts")

# A new leader looks back this far for deadlines that passed while nobody watched.
LOOKBACK = timedelta(days=1)
MAX_ATTEMPTS = 10
MAX_BACKOFF = timedelta(minutes=10)
BATCH = 100


def retry_delay(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed delivery: 2, 4, 8 … seconds, capped."""
    return min(timedelta(seconds=2**attempts), MAX_BACKOFF)


class AlertWatcher:
    """Checks deadlines, resolves and delivers alerts while this replica leads."""

    def __init__(
        self,
        engine: Engine,
        interval: timedelta,
        webhook: AlertWebhook | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._webhook = webhook
        self._clock = clock
        self._since: datetime | None = None
        self._chore: LeaderChore | None = None

    def step(self, now: datetime) -> None:
        """One round; the thread calls it while leading, tests call it directly."""
        since = self._since if self._since is not None else now - LOOKBACK
        raised = check_deadlines(self._engine, since, now)
        self._since = now
        with self._engine.begin() as conn:
            resolved = resolve_succeeded(conn, now)
        if raised or resolved:
            log.info("alerts: %d deadline alerts raised, %d alerts resolved", raised, resolved)
        if self._webhook is not None:
            self.deliver(now)

    def deliver(self, now: datetime) -> int:
        """Send the events that are due; how many were delivered."""
        assert self._webhook is not None
        with self._engine.connect() as conn:
            due = due_notifications(conn, now, BATCH)
        delivered = 0
        for alert in due:
            event = alert["notify"]
            error: str | None = None
            retry_at: datetime | None = None
            try:
                self._webhook.send(alert, event, now)
                delivered += 1
            except DeliveryFailed as exc:
                error = str(exc)
                attempts = alert["notify_attempts"] + 1
                if exc.retry and attempts < MAX_ATTEMPTS:
                    retry_at = now + retry_delay(attempts)
                log.warning(
                    "alerts: delivering %s of alert %s (schedule %s) failed (%s)%s",
                    event,
                    alert["id"],
                    alert["schedule_id"],
                    error,
                    "" if retry_at else "; giving up",
                )
            with self._engine.begin() as conn:
                record_delivery(conn, alert, now, error=error, retry_at=retry_at)
        return delivered

    def start(self, leading: Callable[[], bool]) -> None:
        """Work in the background whenever ``leading()`` holds."""
        self._chore = LeaderChore(
            "alerts", self._interval.total_seconds(), self.step, self._clock, idle=self._follow
        )
        self._chore.start(leading)

    def _follow(self) -> None:
        self._since = None  # a later term looks back for what it missed

    def stop(self) -> None:
        """Stop the background work."""
        if self._chore is not None:
            self._chore.stop()
