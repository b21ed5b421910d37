"""The built-in tasks run by a real worker process on the real Redis broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult

from jobs.tasks import ECHO, WEBHOOK
from tests.jobs.probe_tasks import REQUEST_HEADERS
from tests.services import unique_name
from tests.worker import running_worker

pytestmark = pytest.mark.services

RESULT_TIMEOUT_S = 20.0
SCHEDULED_FOR = "2026-11-22T02:00:00Z"


@pytest.fixture
def redis_settings(settings_factory, redis_url):
    """Factory: settings on the test Redis as broker and result backend."""

    def make(**overrides: Any):
        return settings_factory(
            redis_url=redis_url, broker_url=redis_url, result_backend=redis_url, **overrides
        )

    return make


def publish(
    app: Celery,
    task: str,
    queue: str,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> AsyncResult:
    """Publish the way the scheduler does: run id as task id, sundial_* headers."""
    run_id = run_id or unique_name("run")
    return app.send_task(
        task,
        args=args or [],
        kwargs=kwargs or {},
        task_id=run_id,
        queue=queue,
        headers={
            "sundial_schedule_id": "sched-1",
            "sundial_scheduled_for": SCHEDULED_FOR,
            "sundial_run_id": run_id,
        },
    )


def outcome(result: AsyncResult) -> tuple[str, Any]:
    """Wait for the run to finish; its state and result (the exception if it failed)."""
    try:
        value = result.get(timeout=RESULT_TIMEOUT_S, propagate=False)
        return result.state, value
    finally:
        result.forget()


def test_echo_returns_its_args_and_kwargs(redis_settings, celery_client):
    settings = redis_settings()
    queue = unique_name("q")
    app = celery_client(settings)
    with running_worker(settings, queues=queue):
        result = publish(app, ECHO, queue, args=[1, "two"], kwargs={"three": [3]})
        assert outcome(result) == (
            "SUCCESS",
            {"args": [1, "two"], "kwargs": {"three": [3]}},
        )


def test_task_reads_the_sundial_headers_from_its_request(redis_settings, celery_client):
    settings = redis_settings()
    queue = unique_name("q")
    app = celery_client(settings)
    with running_worker(settings, queues=queue, argv=["--include", "tests.jobs.probe_tasks"]):
        result = publish(app, REQUEST_HEADERS, queue)
        state, seen = outcome(result)
    expected = {
        "sundial_schedule_id": "sched-1",
        "sundial_scheduled_for": SCHEDULED_FOR,
        "sundial_run_id": result.id,
    }
    assert state == "SUCCESS"
    assert seen["task_id"] == result.id
    assert seen["dispatch_headers"] == expected
    # Both documented ways work on a real worker: attributes and request.headers.
    assert seen["attributes"] == expected
    assert seen["request_headers"] == expected


def test_webhook_carries_run_id_sundial_headers_and_json(
    redis_settings, celery_client, http_receiver
):
    receiver = http_receiver(status=200, body=b"thanks")
    settings = redis_settings(webhook_allowed_hosts=["127.0.0.1"])
    queue = unique_name("q")
    app = celery_client(settings)
    with running_worker(settings, queues=queue):
        result = publish(
            app,
            WEBHOOK,
            queue,
            kwargs={
                "url": f"{receiver.url}/hooks/in",
                "headers": {"X-Team": "billing"},
                "json": {"report": "nightly"},
            },
        )
        assert outcome(result) == ("SUCCESS", {"status": 200, "body": "thanks"})
    [received] = receiver.requests
    assert received.method == "POST"
    assert received.path == "/hooks/in"
    assert received.headers["Idempotency-Key"] == result.id
    assert received.headers["X-Sundial-Schedule-Id"] == "sched-1"
    assert received.headers["X-Sundial-Scheduled-For"] == SCHEDULED_FOR
    assert received.headers["X-Team"] == "billing"
    assert json.loads(received.body) == {"report": "nightly"}


def test_webhook_to_loopback_without_allow_list_is_refused(
    redis_settings, celery_client, http_receiver
):
    receiver = http_receiver()
    settings = redis_settings()
    queue = unique_name("q")
    app = celery_client(settings)
    with running_worker(settings, queues=queue):
        result = publish(app, WEBHOOK, queue, kwargs={"url": f"{receiver.url}/in"})
        state, error = outcome(result)
    assert state == "FAILURE"
    assert type(error).__name__ == "WebhookRefused"
    assert "loopback" in str(error)
    assert receiver.requests == []


def test_webhook_non_2xx_fails_with_status_and_body_start(
    redis_settings, celery_client, http_receiver
):
    receiver = http_receiver(status=500, body=b"database on fire " + b"." * 5000)
    settings = redis_settings(webhook_allowed_hosts=["127.0.0.1"])
    queue = unique_name("q")
    app = celery_client(settings)
    with running_worker(settings, queues=queue):
        result = publish(app, WEBHOOK, queue, kwargs={"url": receiver.url, "body": "hi"})
        state, error = outcome(result)
    assert state == "FAILURE"
    assert type(error).__name__ == "WebhookFailed"
    assert "500" in str(error)
    assert "database on fire" in str(error)
    assert len(str(error)) < 3000
    assert len(receiver.requests) == 1


def test_a_run_delivered_twice_is_executed_once(redis_settings, celery_client, http_receiver):
    receiver = http_receiver(status=200, body=b"ok")
    settings = redis_settings(webhook_allowed_hosts=["127.0.0.1"])
    queue = unique_name("q")
    app = celery_client(settings)
    kwargs = {"url": f"{receiver.url}/hooks/in"}
    with running_worker(settings, queues=queue):
        first = publish(app, WEBHOOK, queue, kwargs=kwargs)
        assert outcome(first)[0] == "SUCCESS"
        # A scheduler that crashed between publishing and recording it publishes again,
        # with the same run id.
        again = publish(app, WEBHOOK, queue, kwargs=kwargs, run_id=first.id)
        other = publish(app, WEBHOOK, queue, kwargs=kwargs)
        assert outcome(other)[0] == "SUCCESS"
        assert again.id == first.id
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [first.id, other.id]
