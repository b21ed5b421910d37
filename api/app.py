"""The FastAPI application, built from settings and collaborators passed in."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import redis
from fastapi import FastAPI
from sqlalchemy import Engine

from api.body_limit import BodyLimitMiddleware
from api.deps import AppContext
from api.errors import install_error_handlers
from api.group_commit import GroupCommitter
from api.metrics import Metrics, MetricsMiddleware
from api.routes import (
    alerts,
    apply,
    calendars,
    health,
    history,
    previews,
    runs,
    schedule_actions,
    scheduler_status,
    schedules,
    timeline,
)
from api.ui.mount import mount_dashboard
from scheduler.leadership.notices import ChangeNotifier, NullNotifier, RedisNotifier
from scheduler.settings import Settings
from scheduler.store.db import make_engine
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.api")


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    notifier: ChangeNotifier | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """The sundial API over ``engine`` (default: one made from ``settings.database_url``)."""
    owns_engine = engine is None
    store = engine if engine is not None else make_engine(settings.database_url)
    client = (
        redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        if settings.redis_url
        else None
    )
    if notifier is None:
        notifier = RedisNotifier(client) if client is not None else NullNotifier()
    if not settings.api_keys:
        log.warning("api: SUNDIAL_API_KEYS is unset; every request is allowed without a key")
    metrics = Metrics(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if client is not None:
            client.close()
        if owns_engine:
            store.dispose()

    app = FastAPI(
        title="sundial",
        version="0.1.0",
        summary="Scheduled and delayed jobs over REST, fired by Celery workers.",
        lifespan=lifespan,
    )
    app.state.sundial = AppContext(
        settings,
        store,
        notifier,
        clock,
        client,
        metrics,
        GroupCommitter(store, announce=partial(schedules.announce_created, notifier)),
    )
    install_error_handlers(app)
    for module in (
        schedules,
        schedule_actions,
        runs,
        previews,
        apply,
        history,
        timeline,
        calendars,
        alerts,
        scheduler_status,
        health,
    ):
        app.include_router(module.router)
    mount_dashboard(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
