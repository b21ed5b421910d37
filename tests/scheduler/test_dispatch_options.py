"""Celery dispatch options per schedule, against the real brokers and a real worker: time
limits end the task as Celery's own limits do and the run records how, extra headers reach
the task, and an exchange with a routing key delivers to the queue bound that way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from sqlalchemy import Engine

from scheduler.firing.claim import Dispatch
from scheduler.firing.dispatch import (
    CeleryPublisher,
    RedisPublisher,
    create_publisher,
    create_publisher_app,
)
from scheduler.firing.messages import MessageBuilder
from scheduler.store.models import run_id_for
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule, runs_of
from tests.scheduler.conftest import LiveLeader, leading
from tests.services import unique_name
from tests.worker import running_worker

PROBES = ["--include", "tests.jobs.probe_tasks"]
HEADERS = {"tenant": "acme", "attempt-budget": 3, "ratio": 0.5, "dry_run": False}


def _dispatch(queue: str, **options: Any) -> Dispatch:
    when = utcnow()
    return Dispatch(
        run_id=unique_name("run"),
        schedule_id="s",
        scheduled_for=when,
        task="reports.generate",
        args=[1, "x"],
        kwargs={"format": "pdf"},
        queue=queue,
        priority=None,
        expires_at=when + timedelta(seconds=30),
        **options,
    )


def _fire_now(leader: LiveLeader, schedule_id: str, **fields: Any) -> str:
    now = utcnow()
    run_at = now - timedelta(milliseconds=1)
    fields.setdefault("queue", leader.queue)
    add_schedule(
        leader.engine, schedule_id, {"type": "date", "run_at": run_at.isoformat()}, now, **fields
    )
    return run_id_for(schedule_id, run_at)


def _finished(leader: LiveLeader, schedule_id: str) -> dict[str, Any] | None:
    found = runs_of(leader.engine, schedule_id)
    done = [run for run in found if run["state"] in ("succeeded", "failed")]
    return done[0] if done else None


def test_fast_path_message_is_the_one_celery_sends_with_the_options(
    settings_factory: Any, redis_url: str
) -> None:
    queue = unique_name("q")
    item = _dispatch(queue, time_limit=60.0, soft_time_limit=30.5, headers=HEADERS)
    app = create_publisher_app(settings_factory(redis_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    try:
        assert CeleryPublisher(app).publish([item]) == [item.run_id]
        raw = client.lpop(queue)
    finally:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
        app.close()
    assert isinstance(raw, bytes)
    theirs = json.loads(raw)
    ours = json.loads(MessageBuilder().envelope(item))

    # send_task leaves ignore_result unset (None) where a task's apply_async sends its
    # own (False); the worker treats both as the task's default.
    assert theirs["headers"].pop("ignore_result") is None
    assert ours["headers"].pop("ignore_result") is False
    assert theirs["headers"]["timelimit"] == [60.0, 30.5]
    assert list(ours["headers"].items()) == list(theirs["headers"].items())
    assert ours["body"] == theirs["body"]
    for name in ("reply_to", "delivery_tag", "expiration"):
        ours["properties"].pop(name, None)
        theirs["properties"].pop(name, None)
    assert ours["properties"] == theirs["properties"]


def test_no_limits_is_the_header_celery_sends_without_them() -> None:
    headers = MessageBuilder().task_headers(_dispatch("q"))

    assert headers["timelimit"] == [None, None]
    assert list(headers)[-3:] == ["sundial_schedule_id", "sundial_scheduled_for", "sundial_run_id"]


def test_on_redis_a_routed_message_goes_by_the_binding_and_a_plain_one_by_the_fast_path(
    settings_factory: Any, redis_url: str
) -> None:
    exchange, bound, own, plain_queue = (unique_name(p) for p in ("ex", "bound", "own", "plain"))
    with Connection(redis_url) as conn:
        Queue(bound, Exchange(exchange, "direct"), routing_key="reports.pdf")(conn).declare()
    publisher = create_publisher(create_publisher_app(settings_factory(redis_url=redis_url)))
    assert isinstance(publisher, RedisPublisher)
    client = redis.Redis.from_url(redis_url)
    routed = _dispatch(own, exchange=exchange, routing_key="reports.pdf")
    plain = _dispatch(plain_queue)
    try:
        assert sorted(publisher.publish([routed, plain])) == sorted([routed.run_id, plain.run_id])
        delivered = client.lrange(bound, 0, -1)
        stray = client.llen(own)
        pushed = client.lrange(plain_queue, 0, -1)
    finally:
        keys = client.keys(f"*{exchange}*") + client.keys(f"*{bound}*") + client.keys(f"*{own}*")
        client.delete(plain_queue, *keys)
        client.close()
        publisher.close()
    (message,) = (json.loads(m) for m in delivered)
    assert message["headers"]["id"] == routed.run_id
    assert message["properties"]["delivery_info"] == {
        "exchange": exchange,
        "routing_key": "reports.pdf",
    }
    assert stray == 0
    assert [json.loads(m)["headers"]["id"] for m in pushed] == [plain.run_id]


def test_limits_end_the_task_and_headers_reach_it(live_leader: LiveLeader) -> None:
    leader = live_leader
    with running_worker(
        leader.settings, queues=leader.queue, argv=PROBES, pool="prefork", concurrency=3
    ):
        _fire_now(
            leader,
            "soft",
            task="sundial_test.sleep",
            kwargs={"seconds": 60},
            soft_time_limit_seconds=1.0,
            time_limit_seconds=30.0,
        )
        _fire_now(
            leader,
            "hard",
            task="sundial_test.sleep",
            kwargs={"seconds": 60},
            time_limit_seconds=1.5,
        )
        _fire_now(
            leader,
            "headers",
            task="sundial_test.request_view",
            kwargs={"names": [*HEADERS, "sundial_run_id"]},
            headers=HEADERS,
            time_limit_seconds=20.0,
            soft_time_limit_seconds=10.0,
        )
        names = ("soft", "hard", "headers")
        leader.drive(
            lambda: all(_finished(leader, sid) for sid in names), 45, "the three runs finished"
        )
    soft, hard, seen = (_finished(leader, sid) or {} for sid in names)
    assert (soft["state"], soft["error"]["type"]) == ("failed", "SoftTimeLimitExceeded")
    assert (hard["state"], hard["error"]["type"]) == ("failed", "TimeLimitExceeded")
    assert hard["error"]["message"] == "1.5"
    assert seen["state"] == "succeeded", seen["error"]
    assert seen["result"]["attributes"] == {**HEADERS, "sundial_run_id": seen["id"]}
    assert seen["result"]["headers"] == {**HEADERS, "sundial_run_id": seen["id"]}
    assert seen["result"]["timelimit"] == [20.0, 10.0]


@pytest.fixture(params=["redis", "amqp"])
def broker_leader(
    request: pytest.FixtureRequest, engine: Engine, settings_factory: Any, redis_url: str
) -> Iterator[LiveLeader]:
    """A live leader on the Redis broker, then on RabbitMQ (events and all)."""
    broker_url = redis_url if request.param == "redis" else request.getfixturevalue("amqp_url")
    with leading(engine, settings_factory(redis_url=redis_url, broker_url=broker_url)) as leader:
        yield leader


def _forget(url: str, queues: list[str], exchanges: list[str]) -> None:
    """Remove what the test declared at the broker (the machine's broker is shared)."""
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        try:
            keys = [k for name in (*queues, *exchanges) for k in client.keys(f"*{name}*")]
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        return
    with Connection(url) as conn:
        channel = conn.default_channel
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)


def test_exchange_and_routing_key_deliver_to_the_queue_bound_that_way(
    broker_leader: LiveLeader,
) -> None:
    leader = broker_leader
    url = leader.settings.broker_url
    assert url is not None
    # A fresh publisher on Redis knows no exchange's type and routes as direct (kombu keeps
    # types per process); RabbitMQ knows the declared type, so a topic pattern works there.
    kind, pattern = (
        ("direct", "reports.pdf.daily") if url.startswith("redis") else ("topic", "reports.#")
    )
    exchange, bound, own = (unique_name(p) for p in ("ex", "bound", "own"))
    with Connection(url) as conn:
        # Declared here, as a deployment's worker config would: the schedule's own queue
        # is consumed by no one, so the run can only succeed through the binding.
        Queue(bound, Exchange(exchange, kind), routing_key=pattern)(conn).declare()
    try:
        with running_worker(leader.settings, queues=bound, argv=PROBES):
            _fire_now(
                leader,
                "routed",
                queue=own,
                task="sundial_test.request_view",
                kwargs={"names": []},
                exchange=exchange,
                routing_key="reports.pdf.daily",
            )
            run = leader.drive(lambda: _finished(leader, "routed"), 30, "the routed run")
    finally:
        _forget(url, [bound, own], [exchange, own])
    assert run["state"] == "succeeded", run["error"]
    assert (run["result"]["exchange"], run["result"]["routing_key"]) == (
        exchange,
        "reports.pdf.daily",
    )
