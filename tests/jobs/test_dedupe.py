"""Exactly-once execution for any Celery app: a real worker of an app that is not sundial's
(``tests/jobs/thirdparty_app.py``, with the one-line opt-in) gets the same run delivered
twice and runs it once; and the ledger underneath, against the real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from jobs.ledger import Execution, ExecutionLedger, Seen
from scheduler.runs.execution_ledger import KEY_PREFIX, ledger_key
from tests.services import unique_name, wait_for
from tests.worker import WorkerProcess, running_app_worker

pytestmark = pytest.mark.services

MODULE = "tests.jobs.thirdparty_app"  # not imported here: it builds its app from the env
COUNT = "thirdparty.count"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    made: list[str] = []
    try:
        yield client
    finally:
        for pattern in (f"{KEY_PREFIX}dedupe_run_*", "dedupe_executions_*"):
            made += [key.decode() for key in client.scan_iter(pattern)]
        if made:
            client.delete(*made)
        client.close()


@pytest.fixture
def publisher(redis_url: str) -> Iterator[Celery]:
    """The scheduler's side: a bare Celery app that only sends."""
    app = Celery("publisher", broker=redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    try:
        yield app
    finally:
        app.close()


def _env(redis_url: str, acks_late: bool = False) -> dict[str, str]:
    return {
        "THIRDPARTY_BROKER_URL": redis_url,
        "THIRDPARTY_LEDGER_URL": redis_url,
        "THIRDPARTY_ACKS_LATE": "1" if acks_late else "0",
    }


def _deliver(
    app: Celery, queue: str, run_id: str, key: str, *, sundial: bool = True, **options: Any
) -> None:
    """One message of ``run_id``, as sundial publishes it (or without its headers)."""
    kwargs = options.pop("kwargs", {})
    headers = {
        "sundial_schedule_id": "nightly",
        "sundial_scheduled_for": "2026-11-22T02:00:00Z",
        "sundial_run_id": run_id,
    }
    app.send_task(
        COUNT,
        args=[key],
        kwargs=kwargs,
        task_id=run_id,
        queue=queue,
        headers=headers if sundial else None,
        **options,
    )


def _executions(client: redis.Redis, key: str) -> list[str]:
    items: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
    return [item.decode() for item in items]


def _wait_executed(client: redis.Redis, key: str, entry: str) -> list[str]:
    def ran() -> list[str] | None:
        got = _executions(client, key)
        return got if entry in got else None

    return wait_for(ran, 20, f"{entry} to run")


def _worker(
    redis_url: str, queue: str, acks_late: bool = False, concurrency: int = 1
) -> Callable[[], Any]:
    return lambda: running_app_worker(
        MODULE, _env(redis_url, acks_late), queues=queue, concurrency=concurrency
    )


def test_a_third_party_worker_runs_a_run_delivered_twice_once(
    redis_url: str, redis_client: redis.Redis, publisher: Celery
) -> None:
    queue, key = unique_name("q"), unique_name("dedupe_executions")
    run, sentinel = unique_name("dedupe_run"), unique_name("dedupe_run")
    with _worker(redis_url, queue)() as worker:
        _deliver(publisher, queue, run, key)
        _deliver(publisher, queue, run, key)  # re-published after a scheduler crash
        _deliver(publisher, queue, sentinel, key)  # one worker slot: runs after both
        got = _wait_executed(redis_client, key, f"{sentinel}:0")
        log = worker.log()
    assert got == [f"{run}:0", f"{sentinel}:0"]
    assert f"dedupe: run {run} (retry 0) already ran; duplicate dropped" in log


def test_messages_without_sundial_headers_are_left_alone(
    redis_url: str, redis_client: redis.Redis, publisher: Celery
) -> None:
    queue, key = unique_name("q"), unique_name("dedupe_executions")
    task_id, sentinel = unique_name("dedupe_run"), unique_name("dedupe_run")
    with _worker(redis_url, queue)():
        _deliver(publisher, queue, task_id, key, sundial=False)
        _deliver(publisher, queue, task_id, key, sundial=False)
        _deliver(publisher, queue, sentinel, key)
        got = _wait_executed(redis_client, key, f"{sentinel}:0")
    assert got == [f"{task_id}:0", f"{task_id}:0", f"{sentinel}:0"]


def test_each_celery_retry_of_a_run_runs_once(
    redis_url: str, redis_client: redis.Redis, publisher: Celery
) -> None:
    queue, key = unique_name("q"), unique_name("dedupe_executions")
    run, retried, sentinel = (
        unique_name("dedupe_run"),
        unique_name("dedupe_run"),
        unique_name("dedupe_run"),
    )
    with _worker(redis_url, queue)():
        for retries in (0, 0, 1, 1):  # each attempt delivered twice
            _deliver(publisher, queue, run, key, retries=retries)
        # A task retrying itself: Celery's retry is a new attempt, so it runs.
        _deliver(publisher, queue, retried, key, kwargs={"retry_once": True})
        _wait_executed(redis_client, key, f"{retried}:1")
        _deliver(publisher, queue, retried, key)  # the first attempt again: dropped
        _deliver(publisher, queue, sentinel, key)
        got = _wait_executed(redis_client, key, f"{sentinel}:0")
    assert got == [f"{run}:0", f"{run}:1", f"{retried}:0", f"{retried}:1", f"{sentinel}:0"]


def test_with_acks_late_a_duplicate_of_a_running_run_waits_and_is_then_dropped(
    redis_url: str, redis_client: redis.Redis, publisher: Celery
) -> None:
    queue, key = unique_name("q"), unique_name("dedupe_executions")
    run = unique_name("dedupe_run")
    with _worker(redis_url, queue, acks_late=True, concurrency=2)() as worker:
        _deliver(publisher, queue, run, key, kwargs={"seconds": 2.5})
        _deliver(publisher, queue, run, key, kwargs={"seconds": 2.5})
        dropped = f"dedupe: run {run} (retry 0) already ran; duplicate dropped"
        wait_for(lambda: dropped in worker.log(), 30, "the duplicate to be dropped")
        log = worker.log()
    assert _executions(redis_client, key) == [f"{run}:0"]
    # It was not dropped while the first delivery ran: it was requeued, then found done.
    assert f"dedupe: run {run} (retry 0) is running elsewhere; requeued" in log
    assert _log_position(worker, "requeued") < _log_position(worker, "duplicate dropped")


def _log_position(worker: WorkerProcess, needle: str) -> int:
    return worker.log().index(needle)


def _key(run_id: str) -> str:
    return ledger_key(run_id, 0)


def test_a_claim_not_renewed_lapses_so_a_redelivery_after_a_crash_runs(
    redis_client: redis.Redis,
) -> None:
    ledger = ExecutionLedger(redis_client, running_ttl_s=0.3)
    run = unique_name("dedupe_run")
    crashed = ledger.start(run, 0)  # the worker dies: never entered, never settled
    assert isinstance(crashed, Execution)
    assert ledger.start(run, 0) is Seen.RUNNING

    def lapsed() -> Execution | None:
        got = ledger.start(run, 0)
        return got if isinstance(got, Execution) else None

    with wait_for(lapsed, 5, "the claim to lapse"):
        pass
    assert ledger.start(run, 0) is Seen.DONE
    assert 0 < redis_client.ttl(_key(run)) <= ledger.done_ttl_s


def test_a_running_claim_is_renewed_until_the_body_returns(redis_client: redis.Redis) -> None:
    ledger = ExecutionLedger(redis_client, running_ttl_s=0.3)
    run = unique_name("dedupe_run")
    execution = ledger.start(run, 0)
    assert isinstance(execution, Execution)
    with execution:
        threading.Event().wait(1.0)  # a body running for three times the claim's TTL
        assert ledger.start(run, 0) is Seen.RUNNING
    assert ledger.start(run, 0) is Seen.DONE


def test_a_task_that_requeues_its_own_message_leaves_the_run_to_the_next_delivery(
    redis_client: redis.Redis,
) -> None:
    ledger = ExecutionLedger(redis_client)
    run = unique_name("dedupe_run")
    execution = ledger.start(run, 0)
    assert isinstance(execution, Execution)
    execution.settle(requeued=True)
    assert isinstance(ledger.start(run, 0), Execution)
