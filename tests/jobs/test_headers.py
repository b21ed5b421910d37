"""``dispatch_headers`` on request contexts shaped the way Celery builds them."""

from __future__ import annotations

from celery.app.task import Context

from jobs.headers import dispatch_headers

SENT = {
    "sundial_schedule_id": "nightly",
    "sundial_scheduled_for": "2026-11-22T02:00:00Z",
    "sundial_run_id": "run-1",
}


def test_headers_merged_into_the_request_are_read():
    request = Context({"id": "run-1", "task": "sundial.echo", **SENT})
    assert dispatch_headers(request) == SENT


def test_headers_nested_under_headers_key_are_read():
    request = Context({"id": "run-1", "headers": dict(SENT)})
    assert dispatch_headers(request) == SENT


def test_run_id_falls_back_to_the_task_id():
    request = Context({"id": "task-7"})
    assert dispatch_headers(request) == {"sundial_run_id": "task-7"}
