"""A worker-side execution ledger: a run delivered twice (a re-publish after a scheduler
crash, at-least-once by contract) is executed once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery.exceptions import Ignore

from scheduler.settings import Settings

KEY_PREFIX = "sundial:executed:"
# Long enough to outlive any redelivery; short enough that the ledger does not grow forever.
TTL_S = 7 * 86400

R = TypeVar("R")


class ExecutionLedger:
    """Remembers which (run id, Celery retry) pairs have started, in Redis."""

    def __init__(self, client: redis.Redis, ttl_s: int = TTL_S) -> None:
        self._client = client
        self._ttl_s = ttl_s

    def first_start(self, run_id: str, retries: int) -> bool:
        """True for the first delivery of this attempt; False for a duplicate."""
        key = f"{KEY_PREFIX}{run_id}:{retries}"
        return bool(self._client.set(key, "1", nx=True, ex=self._ttl_s))


def ledger_for(settings: Settings) -> ExecutionLedger | None:
    """A ledger on the configured Redis, or None in embedded mode (nothing redelivers)."""
    url = settings.redis_url or settings.broker_url
    if not url or not url.startswith(("redis://", "rediss://")):
        return None
    return ExecutionLedger(redis.Redis.from_url(url, socket_timeout=5))


def once(ledger: ExecutionLedger | None, fn: Callable[..., R]) -> Callable[..., R]:
    """Wrap a bound task body so a duplicate delivery is ignored instead of run again."""

    @functools.wraps(fn)
    def run(task: Any, *args: Any, **kwargs: Any) -> R:
        request = task.request
        if ledger is not None and not ledger.first_start(str(request.id), request.retries or 0):
            raise Ignore()
        return fn(task, *args, **kwargs)

    return run
