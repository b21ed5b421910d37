"""Test-only tasks, loaded into a worker with ``argv=["--include", "tests.jobs.probe_tasks"]``."""

from __future__ import annotations

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
