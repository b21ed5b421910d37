"""The embedded broker as workers use it: no broker configured anywhere, yet a worker in
another process consumes, and a backlog is worked off once each, across restarts."""

from __future__ import annotations

import re
import uuid

import pytest
import redis
from celery import Celery

from jobs.tasks import ECHO
from scheduler.firing.broker import embedded_broker
from tests.services import wait_for
from tests.worker import WorkerProcess, running_worker

pytestmark = pytest.mark.services

BACKLOG = 1000
SUCCEEDED = re.compile(r"Task sundial\.echo\[([0-9a-f-]+)\] succeeded in")


def _succeeded(*workers: WorkerProcess) -> list[str]:
    return [run_id for worker in workers for run_id in SUCCEEDED.findall(worker.log())]


def _queue_depth(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen("celery")) + int(client.hlen("unacked"))
    finally:
        client.close()


def _publish(app: Celery, n: int) -> set[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with app.producer_or_acquire() as producer:
        for i, run_id in enumerate(ids):
            app.send_task(ECHO, args=[i], task_id=run_id, producer=producer)
    return set(ids)


def test_worker_consumes_message_published_by_another_process(
    settings_factory, celery_client, tmp_path
):
    results = tmp_path / "results"
    results.mkdir()
    settings = settings_factory(result_backend=f"file://{results}")
    assert settings.embedded_broker
    app = celery_client(settings)

    with running_worker(settings) as worker:
        result = app.send_task(
            ECHO, args=["hello"], kwargs={"n": 1}, headers={"sundial_run_id": "x"}
        )
        assert result.get(timeout=20) == {"args": ["hello"], "kwargs": {"n": 1}}

    assert embedded_broker(settings).folder.is_relative_to(tmp_path)
    assert f"{ECHO}[{result.id}] succeeded" in worker.log()


def test_backlog_is_worked_off_once_each_across_a_worker_and_broker_restart(
    settings_factory, celery_client
):
    settings = settings_factory()
    broker = embedded_broker(settings)
    app = celery_client(settings)
    expected = _publish(app, BACKLOG)
    app.close()

    # Like `sundial dev`'s worker; stopped (Ctrl-C) a third of the way through.
    with running_worker(settings, concurrency=4) as first:
        wait_for(lambda: len(_succeeded(first)) >= BACKLOG // 3, 120, "a third of the backlog")
    broker.stop()

    url, started = broker.ensure_running()
    assert started
    left = _queue_depth(url)
    assert 0 < left <= BACKLOG - BACKLOG // 3, "the rest of the backlog survived the restart"

    with running_worker(settings, concurrency=4) as second:
        wait_for(lambda: len(_succeeded(first, second)) >= BACKLOG, 120, "the whole backlog to run")
        wait_for(lambda: _queue_depth(url) == 0, 30, "the queue to be empty")

    done = _succeeded(first, second)
    assert len(done) == len(set(done)) == BACKLOG
    assert set(done) == expected
