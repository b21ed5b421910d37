"""One ``sundial scheduler`` replica, assembled from settings: lease, store, publisher,
notices and event tracking around APScheduler's loop."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from apscheduler.events import EVENT_SCHEDULER_START
from apscheduler.schedulers import SchedulerNotRunningError
from celery import Celery
from sqlalchemy import Engine

from scheduler.firing.dispatch import create_publisher, create_publisher_app
from scheduler.firing.lost_messages import LostMessages, create_lost_messages
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Lease, RedisLease, Replica, SqlLease
from scheduler.leadership.notices import Notice, NoticeListener
from scheduler.leadership.runloop import FireCycle, LeaseKeeper, SundialScheduler
from scheduler.leadership.skew import ClockGuard
from scheduler.metrics import SchedulerMetrics, private
from scheduler.runs.alert_watch import AlertWatcher
from scheduler.runs.alert_webhook import AlertWebhook
from scheduler.runs.execution_ledger import ledger_url
from scheduler.runs.housekeeping import Housekeeper, Retention
from scheduler.runs.tracking import EventTracker, result_lookup
from scheduler.settings import Settings
from scheduler.stop_signals import StopSignals
from scheduler.store.db import make_engine
from scheduler.store.jobstore import SqlJobStore
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.scheduler")


def this_replica() -> Replica:
    """A fresh identity for this process."""
    return Replica(replica_id=uuid.uuid4().hex[:12], hostname=socket.gethostname(), pid=os.getpid())


@dataclass
class SchedulerReplica:
    """The parts of a replica, built by :func:`build_replica`; ``run`` blocks until stopped."""

    settings: Settings
    engine: Engine
    lease: Lease
    keeper: LeaseKeeper
    scheduler: SundialScheduler
    tracker: EventTracker
    cycle: FireCycle
    outbox: Outbox
    app: Celery
    housekeeper: Housekeeper
    alerts: AlertWatcher
    metrics: SchedulerMetrics
    listener: NoticeListener | None = None
    redis_client: redis.Redis | None = None
    lost_messages: LostMessages | None = None
    _stopping: bool = field(default=False, init=False)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT; on the way out release the lease for a fast handover."""
        with StopSignals(self._on_signal):
            self.start_background()
            try:
                if not self._stopping:
                    # A stop while it starts finds it not running; it is caught at the start.
                    self.scheduler.add_listener(self._stop_if_asked, EVENT_SCHEDULER_START)
                    self.scheduler.start()  # blocks in APScheduler's main loop
            finally:
                self.stop_background()

    def start_background(self) -> None:
        """Start the metrics endpoint, the lease keeper, the notice listener and the event
        tracker."""
        self.metrics.serve(
            self.settings.scheduler_metrics_port, self.settings.scheduler_metrics_addr
        )
        self.keeper.start()
        if self.listener is not None:
            self.listener.start()
        self.tracker.start()
        self.housekeeper.start(self.lease.held)
        self.alerts.start(self.lease.held)
        if self.lost_messages is not None:
            self.lost_messages.start(self.lease.held)

    def stop_background(self) -> None:
        """Stop publishing first, then give the lease up, then the rest."""
        self.outbox.close()
        self.housekeeper.stop()
        self.alerts.stop()
        if self.lost_messages is not None:
            self.lost_messages.stop()
        self.keeper.stop()
        if self.listener is not None:
            self.listener.stop()
        self.tracker.stop()
        self.app.close()
        if self.redis_client is not None:
            self.redis_client.close()
        self.engine.dispose()

    def _on_signal(self, signum: int) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("scheduler: signal %s, shutting down", signum)
        self._stop_if_asked()

    def _stop_if_asked(self, _event: object = None) -> None:
        if self._stopping:
            # Not running yet (then the start's listener stops it) or stopped already.
            with contextlib.suppress(SchedulerNotRunningError):
                self.scheduler.shutdown(wait=False)


def build_replica(
    settings: Settings, clock: Clock = utcnow, metrics: SchedulerMetrics | None = None
) -> SchedulerReplica:
    """Wire a replica from settings; nothing runs until ``run`` or ``start_background``.

    ``metrics`` (built by the entry point with its registry) are served on
    ``settings.scheduler_metrics_port`` once started.
    """
    metrics = metrics or private()
    engine = make_engine(settings.database_url, idle_in_transaction_s=settings.lease_ttl_seconds)
    replica = this_replica()
    guard = ClockGuard(timedelta(seconds=settings.max_clock_skew_seconds), clock)
    client: redis.Redis | None = None
    lease: Lease
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        redis_lease = RedisLease(
            client, engine, replica, settings.lease_ttl_seconds, clock=clock, guard=guard
        )
        warning = redis_lease.eviction_risk()
        if warning:
            log.warning("scheduler: %s; set maxmemory-policy to noeviction", warning)
        lease = redis_lease
    else:
        lease = SqlLease(engine, replica, settings.lease_ttl_seconds, clock=clock, guard=guard)
    app = create_publisher_app(settings)
    outbox = Outbox(
        engine,
        create_publisher(app),
        lease,
        clock,
        batch_size=settings.claim_batch_size,
        threaded=True,
        metrics=metrics,
        guard=guard,
    )
    jobstore = SqlJobStore(engine, guard)
    cycle = FireCycle(
        engine,
        lease,
        outbox,
        jobstore,
        poll_s=settings.poll_interval_s,
        batch_size=settings.claim_batch_size,
        clock=clock,
        metrics=metrics,
        ahead=timedelta(milliseconds=settings.fire_ahead_ms),
    )

    def leader_token() -> int | None:
        return lease.token if lease.held() else None

    housekeeper = Housekeeper(
        engine,
        interval=timedelta(seconds=settings.housekeeping_interval_seconds),
        timeout=timedelta(seconds=settings.run_outcome_timeout_seconds),
        retention=Retention(
            max_age=timedelta(days=settings.run_retention_days),
            per_schedule=settings.run_retention_per_schedule,
            one_off_max_age=(
                timedelta(days=settings.one_off_retention_days)
                if settings.one_off_retention_days > 0
                else None
            ),
            batch=settings.retention_batch_size,
        ),
        lookup=result_lookup(app) if settings.result_backend else None,
        clock=clock,
        token=leader_token,
    )
    webhook = None
    if settings.alert_webhook_url:
        webhook = AlertWebhook(
            settings.alert_webhook_url,
            settings.alert_webhook_secret,
            settings.webhook_allowed_hosts,
        )
    alerts = AlertWatcher(
        engine, timedelta(seconds=settings.alert_interval_seconds), webhook, clock=clock
    )
    scheduler = SundialScheduler(cycle, jobstore)

    def relay_now() -> None:
        outbox.request_relay()
        scheduler.wakeup()

    lost_messages = create_lost_messages(
        engine,
        str(app.conf.broker_url or ""),
        ledger_url(settings),
        app.conf.broker_transport_options or {},
        timedelta(seconds=settings.redeliver_lost_after_seconds),
        clock=clock,
        token=leader_token,
        requeued=relay_now,
    )
    keeper = LeaseKeeper(
        lease,
        engine,
        replica,
        settings.lease_ttl_seconds,
        on_change=scheduler.wakeup,
        clock=clock,
        metrics=metrics,
    )
    listener = None
    if client is not None:

        def on_notice(notice: Notice) -> None:
            # A create announces its first fire; when the loop looks by then anyway, that
            # look sees it, and waking the leader now would only cost a cycle.
            if notice.due is None or not cycle.looks_by(notice.due):
                relay_now()

        listener = NoticeListener(client, on_notice)
    tracker = EventTracker(app, engine, active=lease.held, metrics=metrics)
    metrics.watch(lease, engine)
    return SchedulerReplica(
        settings,
        engine,
        lease,
        keeper,
        scheduler,
        tracker,
        cycle,
        outbox,
        app,
        housekeeper,
        alerts,
        metrics,
        listener,
        client,
        lost_messages,
    )
