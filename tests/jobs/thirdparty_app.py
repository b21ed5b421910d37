"""A Celery app that is not sundial's, as a third-party shop would write it, with sundial's
one-line exactly-once opt-in. Run by ``tests.worker.running_app_worker``.

It is configured from the environment (``THIRDPARTY_BROKER_URL``, ``THIRDPARTY_LEDGER_URL``,
``THIRDPARTY_ACKS_LATE``) and records every execution of its task by appending to a Redis
list, so a test can count side effects.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from jobs.dedupe import install

COUNT = "thirdparty.count"

app = Celery("thirdparty", broker=os.environ["THIRDPARTY_BROKER_URL"], set_as_current=False)
app.conf.update(
    task_acks_late=os.environ.get("THIRDPARTY_ACKS_LATE") == "1",
    task_serializer="json",
    accept_content=["json"],
)
install(app, redis_url=os.environ["THIRDPARTY_LEDGER_URL"])


def count(task: Any, key: str, seconds: float = 0, retry_once: bool = False) -> int:
    """Append ``<task id>:<retry number>`` to the list ``key``; optionally sleep or retry."""
    client = redis.Redis.from_url(os.environ["THIRDPARTY_LEDGER_URL"])
    try:
        client.rpush(key, f"{task.request.id}:{task.request.retries}")
    finally:
        client.close()
    time.sleep(seconds)
    if retry_once and not task.request.retries:
        raise task.retry(countdown=0, max_retries=1)
    return 1


app.task(name=COUNT, bind=True)(count)
