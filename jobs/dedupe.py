"""Exactly-once execution of sundial runs for any Celery app: the one-line opt-in.

::

    from jobs.dedupe import install

    install(app, redis_url="redis://redis:6379/0")

Every task of ``app`` then runs each sundial run (``sundial_run_id`` header) at most once
per Celery retry, whoever delivers it twice: a scheduler that re-published after a crash,
a broker that redelivered. Messages without sundial's headers run as before. The
bookkeeping is :mod:`jobs.ledger`, the ledger sundial's own tasks use.

Celery cannot skip a task from a signal: an exception raised by a ``task_prerun`` receiver
is logged and the task runs anyway. So each task's ``run`` is wrapped, before the worker
builds its tracers: after the app is finalized (``on_after_finalize``), again when a worker
starts (``worker_init``, for tasks registered later), and at once if the app is already
finalized. A duplicate is dropped by raising Celery's ``Ignore`` (the message is acked, no
result stored). Under ``acks_late``, a duplicate that finds the run still executing elsewhere
is requeued after a pause instead (``Reject(requeue=True)``): should that execution die,
its claim lapses and the requeued copy runs it.

This module imports Celery and redis-py only: neither sundial's Celery app nor its API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, signals
from celery.exceptions import Ignore, Reject

from jobs.headers import header
from jobs.ledger import DONE_TTL_S, RUNNING_TTL_S, Execution, ExecutionLedger, Seen
from scheduler.store.models import HEADER_RUN_ID

log = logging.getLogger("sundial.dedupe")

# A duplicate that finds its run executing elsewhere waits this long before it is requeued,
# so it is looked at again about once a second rather than in a busy loop.
REQUEUE_PAUSE_S = 1.0
_WRAPPED = "_sundial_dedupe"  # set on each task wrapped
_RECEIVER = "_sundial_dedupe_worker_init"  # set on the app


def install(
    app: Celery,
    redis_url: str,
    *,
    done_ttl_s: int = DONE_TTL_S,
    running_ttl_s: float = RUNNING_TTL_S,
) -> None:
    """Run every sundial run at most once (per Celery retry) on every task of ``app``.

    ``redis_url`` holds the ledger (any Redis; the broker's is fine). A finished run is
    remembered ``done_ttl_s``; a running one is claimed for ``running_ttl_s``, renewed
    while it runs, so a worker killed mid-task blocks its run's redelivery that long at most.
    """
    ledger = ExecutionLedger(
        redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5),
        done_ttl_s=done_ttl_s,
        running_ttl_s=running_ttl_s,
    )

    def wrap_all(**_signal: Any) -> None:
        for task in app.tasks.values():
            _wrap(task, ledger)

    def on_worker_init(sender: Any = None, **_signal: Any) -> None:
        if getattr(sender, "app", None) is app:
            wrap_all()

    app.on_after_finalize.connect(wrap_all, weak=False)
    # Held by the app, connected weakly: the receiver goes when the app does.
    setattr(app, _RECEIVER, on_worker_init)
    signals.worker_init.connect(on_worker_init)
    if app.finalized:
        wrap_all()


def _wrap(task: Any, ledger: ExecutionLedger) -> None:
    if getattr(task, _WRAPPED, False) or task.name.startswith("celery."):
        return
    body: Callable[..., Any] = task.run

    def run(*args: Any, **kwargs: Any) -> Any:
        request = task.request
        run_id = header(request, HEADER_RUN_ID)
        if run_id is None or request.called_directly:
            return body(*args, **kwargs)
        retries = int(request.retries or 0)
        claim = ledger.start(run_id, retries)
        if isinstance(claim, Execution):
            with claim:
                return body(*args, **kwargs)
        if claim is Seen.RUNNING and task.acks_late:
            log.info("dedupe: run %s (retry %d) is running elsewhere; requeued", run_id, retries)
            time.sleep(REQUEUE_PAUSE_S)
            raise Reject(f"run {run_id} is running elsewhere", requeue=True)
        log.info("dedupe: run %s (retry %d) already ran; duplicate dropped", run_id, retries)
        raise Ignore()

    # The tracer calls ``task.run`` (or ``task.__call__``, which calls it): an attribute of
    # this instance shadows the class's, and leaves every other task alone.
    task.run = run
    setattr(task, _WRAPPED, True)
