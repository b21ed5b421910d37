"""Where workers record which runs they executed (the execution ledger of
:mod:`jobs.ledger`), and the leader's read of it.

The workers write; the scheduler only asks whether a run was begun, to tell a message the
broker lost from a run that executed with its task events lost
(:mod:`scheduler.firing.lost_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from scheduler.firing.dispatch import REDIS_SCHEMES
from scheduler.settings import Settings

KEY_PREFIX = "sundial:executed:"


def ledger_key(run_id: str, retries: int) -> str:
    """The key of one attempt of a run (per Celery retry)."""
    return f"{KEY_PREFIX}{run_id}:{retries}"


def ledger_url(settings: Settings) -> str | None:
    """The Redis that holds the ledger of sundial's workers: ``ledger_url``, else the Redis
    URL, else a Redis broker's; None in embedded mode, where nothing redelivers."""
    url = settings.ledger_url or settings.redis_url or settings.broker_url
    if not url or not url.startswith(REDIS_SCHEMES):
        return None
    return url


def begun(client: redis.Redis, run_ids: Sequence[str]) -> set[str]:
    """Of these runs, those a worker began executing (first delivery, retry 0)."""
    if not run_ids:
        return set()
    with client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.exists(ledger_key(run_id, 0))
        found = pipe.execute()
    return {run_id for run_id, exists in zip(run_ids, found, strict=True) if exists}
