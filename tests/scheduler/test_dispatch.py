"""Dispatch contract against the real Redis broker and a real Celery worker process:
the message carries the run id and headers, and task events bring the outcome back."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from scheduler.firing.claim import Dispatch
from scheduler.firing.dispatch import (
    CeleryPublisher,
    RedisPublisher,
    create_publisher,
    create_publisher_app,
)
from scheduler.firing.messages import MessageBuilder, redis_list_key, sundial_headers
from scheduler.store.models import run_id_for
from scheduler.timing.clock import utcnow
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


def _echo() -> Dispatch:
    return Dispatch(
        run_id="r1",
        schedule_id="s",
        scheduled_for=utcnow(),
        task="sundial.echo",
        args=[],
        kwargs={},
        queue="celery",
        priority=None,
        expires_at=None,
    )


def test_publisher_reports_nothing_sent_when_the_broker_is_down(settings_factory: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_publisher_app(settings_factory(broker_url=dead))
    try:
        assert CeleryPublisher(app).publish([_echo()]) == []
    finally:
        app.close()


def test_fast_path_builds_the_message_celery_would(settings_factory: Any) -> None:
    when = utcnow()
    item = Dispatch(
        run_id="r1",
        schedule_id="s",
        scheduled_for=when,
        task="reports.generate",
        args=[1, "x"],
        kwargs={"format": "pdf"},
        queue="reports",
        priority=None,
        expires_at=when + timedelta(seconds=30),
    )
    app = create_publisher_app(settings_factory())
    theirs = app.amqp.create_task_message(
        item.run_id,
        item.task,
        item.args,
        item.kwargs,
        expires=item.expires_at,
        headers=sundial_headers(item),
    )
    ours = json.loads(MessageBuilder().envelope(item))

    ours_headers = dict(ours["headers"])
    assert {k: ours_headers.pop(k) for k in sundial_headers(item)} == sundial_headers(item)
    assert ours_headers.pop("origin") and theirs.headers.pop("origin")
    assert ours_headers == theirs.headers
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(json.dumps(theirs.body))
    assert ours["properties"]["correlation_id"] == theirs.properties["correlation_id"]
    assert ours["headers"]["sundial_scheduled_for"].endswith("Z")
    app.close()


@pytest.mark.parametrize(
    ("priority", "key"), [(None, "q"), (0, "q"), (2, "q"), (3, "q\x06\x163"), (9, "q\x06\x169")]
)
def test_fast_path_uses_kombus_priority_lists(priority: int | None, key: str) -> None:
    assert redis_list_key("q", priority) == key


def test_fast_path_reports_nothing_sent_when_the_broker_is_down(settings_factory: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    publisher = create_publisher(create_publisher_app(settings_factory(broker_url=dead)))
    assert isinstance(publisher, RedisPublisher)
    try:
        assert publisher.publish([_echo()]) == []
    finally:
        publisher.close()


def test_priority_message_is_consumed_by_a_real_worker(live_leader: LiveLeader) -> None:
    with running_worker(live_leader.settings, queues=live_leader.queue):
        _fire_now(live_leader.engine, "urgent", live_leader.queue, priority=9)
        live_leader.drive(
            lambda: _run(live_leader.engine, "urgent")["state"] == "succeeded", 20, "success"
        )
