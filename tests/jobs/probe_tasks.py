"""Test-only tasks, loaded into a worker with ``argv=["--include", "tests.jobs.probe_tasks"]``."""

from __future__ import annotations

import json
import time
from typing import Any

from celery import shared_task

from jobs.headers import DISPATCH_HEADERS, dispatch_headers

REQUEST_HEADERS = "sundial_test.request_headers"


def _request_headers(task: Any) -> dict[str, Any]:
    """Every way a bound task might see the sundial headers, for the tests to compare."""
    request = task.request
    return {
        "dispatch_headers": dispatch_headers(request),
        "attributes": {name: getattr(request, name, None) for name in DISPATCH_HEADERS},
        "request_headers": dict(request.headers or {}),
        "task_id": request.id,
    }


request_headers = shared_task(name=REQUEST_HEADERS, bind=True)(_request_headers)


def _request_view(task: Any, names: list[str]) -> dict[str, Any]:
    """What the task request says of ``names`` (headers), its time limits and its routing."""
    request = task.request
    delivery = request.delivery_info or {}
    return {
        "attributes": {name: getattr(request, name, None) for name in names},
        "headers": {name: (request.headers or {}).get(name) for name in names},
        "timelimit": list(request.timelimit or ()),
        "exchange": delivery.get("exchange"),
        "routing_key": delivery.get("routing_key"),
    }


request_view = shared_task(name="sundial_test.request_view", bind=True)(_request_view)


def _ledger(path: str | None, entry: dict[str, Any]) -> None:
    """Append a line per execution: a worker-side record with no unique constraint."""
    if path:
        with open(path, "a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")


def _fail(message: str = "boom") -> None:
    """Always fails."""
    raise ValueError(message)


def _sleep(task: Any, seconds: float, ledger: str | None = None) -> float:
    """Sleeps, recording start and end in ``ledger``; for overlap and expiry tests."""
    started = time.time()
    _ledger(ledger, {"run": task.request.id, "event": "start", "at": started})
    time.sleep(seconds)
    _ledger(ledger, {"run": task.request.id, "event": "end", "at": time.time()})
    return seconds


def _record(task: Any, ledger: str, seconds: float = 0.0) -> str:
    """Records each execution's start and end (run id, worker) in ``ledger``, working
    ``seconds`` in between. It acknowledges late: a worker killed meanwhile leaves the
    message on the broker, to be delivered again."""
    entry = {"run": task.request.id, "worker": task.request.hostname}
    _ledger(ledger, entry | {"event": "start", "at": time.time()})
    time.sleep(seconds)
    _ledger(ledger, entry | {"event": "end", "at": time.time()})
    return str(task.request.hostname)


def _flaky(task: Any) -> str:
    """Asks Celery to retry once, then succeeds: the run passes through ``retrying``."""
    if task.request.retries == 0:
        raise task.retry(exc=RuntimeError("first attempt fails"), countdown=0.2)
    return "ok on retry"


fail = shared_task(name="sundial_test.fail")(_fail)
sleep = shared_task(name="sundial_test.sleep", bind=True)(_sleep)
record = shared_task(name="sundial_test.record", bind=True, acks_late=True)(_record)
flaky = shared_task(name="sundial_test.flaky", bind=True, max_retries=1)(_flaky)
