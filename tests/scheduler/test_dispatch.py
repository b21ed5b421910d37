"""Dispatch contract against the real Redis broker and a real Celery worker process:
the message carries the run id and headers, and task events bring the outcome back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from scheduler.claim import Dispatch
from scheduler.clock import utcnow
from scheduler.dispatch import CeleryPublisher, create_publisher_app
from scheduler.models import run_id_for
from tests.factories import add_schedule, runs_of
from tests.scheduler.conftest import LiveLeader
from tests.services import free_port, wait_for
from tests.worker import running_worker


def _fire_now(engine: Engine, schedule_id: str, queue: str, **fields: Any) -> str:
    now = utcnow()
    run_at = now - timedelta(milliseconds=1)
    add_schedule(
        engine,
        schedule_id,
        {"type": "date", "run_at": run_at.isoformat()},
        now,
        queue=queue,
        **fields,
    )
    return run_id_for(schedule_id, run_at)


def _run(engine: Engine, schedule_id: str) -> dict[str, Any]:
    (run,) = runs_of(engine, schedule_id)
    return run


def test_worker_runs_the_fire_and_its_success_is_recorded(live_leader: LiveLeader) -> None:
    engine, settings, queue, cycle = (
        live_leader.engine,
        live_leader.settings,
        live_leader.queue,
        live_leader.cycle,
    )
    with running_worker(settings, queues=queue) as worker:
        run_id = _fire_now(engine, "echo", queue, args=[1, "a"], kwargs={"k": "v"})
        cycle()
        assert _run(engine, "echo")["id"] == run_id
        done = wait_for(
            lambda: (r := _run(engine, "echo"))["state"] == "succeeded" and r, 20, "success"
        )
    assert done["worker"] == worker.hostname
    assert done["result"] == {"args": [1, "a"], "kwargs": {"k": "v"}}
    assert done["dispatched_at"] <= done["started_at"] <= done["finished_at"]


def test_task_sees_dispatch_headers_and_failure_is_recorded(live_leader: LiveLeader) -> None:
    engine, settings, queue, cycle = (
        live_leader.engine,
        live_leader.settings,
        live_leader.queue,
        live_leader.cycle,
    )
    with running_worker(settings, queues=queue):
        # Loopback is refused without the allow-list: the task raises, the run fails.
        _fire_now(
            engine,
            "hook",
            queue,
            task="sundial.webhook",
            kwargs={"url": "http://127.0.0.1:9/x"},
        )
        cycle()
        failed = wait_for(
            lambda: (r := _run(engine, "hook"))["state"] == "failed" and r, 20, "failure"
        )
    assert failed["error"]["type"]
    assert "127.0.0.1" in failed["error"]["message"]
    assert failed["finished_at"] is not None


def test_publisher_reports_nothing_sent_when_the_broker_is_down(settings_factory: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_publisher_app(settings_factory(broker_url=dead))
    now = utcnow()
    item = Dispatch(
        run_id="r1",
        schedule_id="s",
        scheduled_for=now,
        task="sundial.echo",
        args=[],
        kwargs={},
        queue="celery",
        priority=None,
        expires_at=None,
    )
    try:
        assert CeleryPublisher(app).publish([item]) == []
    finally:
        app.close()
