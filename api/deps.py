"""Request dependencies: the collaborators ``create_app`` built, reached through ``app.state``.

Dependencies that do no I/O (this one, the key check, the audit record, the dashboard's
viewer) are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per dependency per request, which was a quarter of a create's CPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from sqlalchemy import Engine

from api.group_commit import GroupCommitter
from api.metrics import Metrics
from scheduler.leadership.notices import ChangeNotifier
from scheduler.settings import Settings
from scheduler.timing.clock import Clock


@dataclass(frozen=True)
class AppContext:
    """Everything a route needs, built once per app."""

    settings: Settings
    engine: Engine
    notifier: ChangeNotifier
    clock: Clock
    redis: redis.Redis | None
    metrics: Metrics
    # Single creates of concurrent requests share transactions.
    committer: GroupCommitter


async def get_context(request: Request) -> AppContext:
    """The app's :class:`AppContext`."""
    context: AppContext = request.app.state.sundial
    return context


Context = Annotated[AppContext, Depends(get_context)]
