"""The worker consumer's workaround for celery/celery#10302 and the Redis sweep options,
without a broker (the real thing: tests/faults/test_broker_faults.py)."""

from __future__ import annotations

from typing import Any

import pytest
from celery.worker.consumer import Consumer

from jobs.app import REDIS_RESTORE_OPTIONS, create_celery
from jobs.collected_close import CollectedCloseConsumer
from scheduler.settings import Settings

DETACHED = "'NoneType' object has no attribute 'hostname'"


class _Channel:
    """A kombu Redis channel of a collected connection: reaching Redis raises."""

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        raise AttributeError(DETACHED)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        raise AttributeError(DETACHED)


class _Connection:
    def __init__(self, channel: _Channel) -> None:
        self._transport: Any = type("Transport", (), {"channels": [channel]})()
        self._default_channel = channel

    def close(self) -> None:
        raise AttributeError(DETACHED)


def _celery_57(consumer: Any, exc: Exception, detach: bool = True) -> None:
    """What Celery 5.7.0's handler does with the lost connection, in the same order."""
    connection, consumer.connection = consumer.connection, None
    if detach:
        connection._transport = None  # collect() detaches the transport
    connection.close()


def _consumer(connection: _Connection, task_channel: _Channel | None) -> Any:
    consumer: Any = CollectedCloseConsumer.__new__(CollectedCloseConsumer)
    consumer.connection = connection
    consumer.task_consumer = type("TaskConsumer", (), {"channel": task_channel})()
    return consumer


def test_the_lost_connections_close_and_acks_no_longer_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", _celery_57)
    default, task_channel = _Channel(), _Channel()
    consumer = _consumer(_Connection(default), task_channel)
    consumer.on_connection_error_after_connected(ConnectionError("cut"))
    # Acks of tasks that were running at the cut, made after the reconnect.
    for channel in (default, task_channel):
        channel.basic_ack("tag")
        channel.basic_reject("tag", requeue=True)


def test_a_close_failing_on_an_attached_transport_still_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def keeps_transport(consumer: Any, exc: Exception) -> None:
        _celery_57(consumer, exc, detach=False)

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", keeps_transport)
    consumer = _consumer(_Connection(_Channel()), None)
    with pytest.raises(AttributeError):
        consumer.on_connection_error_after_connected(ConnectionError("cut"))


def test_redis_workers_sweep_for_unacked_messages_often_and_configured_options_win() -> None:
    app = create_celery(
        Settings(
            _env_file=None,
            broker_url="redis://127.0.0.1:1/0",
            broker_transport_options={"visibility_timeout": 10, "unacked_mutex_expire": 60},
        )
    )
    options = app.conf.broker_transport_options
    assert options["unacked_restore_interval"] == REDIS_RESTORE_OPTIONS["unacked_restore_interval"]
    assert options["unacked_restore_throttle"] == 1
    assert options["visibility_timeout"] == 10
    assert options["unacked_mutex_expire"] == 60


def test_amqp_workers_get_no_redis_options() -> None:
    app = create_celery(Settings(_env_file=None, broker_url="amqp://guest@127.0.0.1:1//"))
    assert "unacked_restore_interval" not in (app.conf.broker_transport_options or {})
