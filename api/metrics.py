"""Prometheus metrics: request counts and latency, and store gauges computed at scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.runs.alerts import AlertKind, schedules_in_breach
from scheduler.store.models import RunState, ScheduleState
from scheduler.store.schedule_reads import count_by_state
from scheduler.timing.clock import monotonic

log = logging.getLogger("sundial.api.metrics")


class StoreCollector(Collector):
    """Schedules and runs per state, read from the store at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        """One gauge family per table, plus whether the store could be read."""
        up = GaugeMetricFamily("sundial_store_up", "1 when the job store answered the scrape")
        try:
            with self._engine.connect() as conn:
                by_schedule_state, by_run_state = count_by_state(conn)
                breaches = schedules_in_breach(conn)
        except SQLAlchemyError as exc:
            log.warning("api: metrics scrape could not read the store: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, help_text, counts, states in (
            ("sundial_schedules", "Schedules by state", by_schedule_state, ScheduleState),
            ("sundial_runs", "Runs by state", by_run_state, RunState),
        ):
            family = GaugeMetricFamily(name, help_text, labels=["state"])
            for state in states:
                family.add_metric([state.value], counts.get(state.value, 0))
            yield family
        # Bounded: one series per alert kind, never one per schedule.
        breach = GaugeMetricFamily(
            "sundial_schedules_in_breach",
            "Schedules with an open alert (missed deadline, final failure, automatic pause)",
            labels=["kind"],
        )
        for kind in AlertKind:
            breach.add_metric([kind.value], breaches.get(kind.value, 0))
        yield breach


class Metrics:
    """A registry of its own per app, so apps (and tests) never share counters."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sundial_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sundial_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(engine))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template, not raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, recording its status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = monotonic()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(monotonic() - started)
