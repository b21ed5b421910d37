"""Workaround: after a broker connection is lost, Celery 5.7 keeps using it once kombu has
detached it from its transport, and with the Redis transport that raises ``AttributeError``,
which stops the worker for good.

Upstream: https://github.com/celery/celery/issues/10302 (reopened #10205: "worker stops
consuming Redis tasks after broker connection reset").

When the consumer loses its broker connection, Celery 5.7.0
(``Consumer.on_connection_error_after_connected``) calls ``connection.collect()``, which
closes the channels and then detaches the transport (``transport.client = None``) whether
or not they closed. Anything that later reaches Redis through one of those channels has
kombu build a client from the detached transport and fails with ``AttributeError: 'NoneType'
object has no attribute 'hostname'``. That is not a connection error, so nothing on the way
ignores it; it ends as "Unrecoverable error" and the worker process exits (sundial's chaos
soak: 2,481 runs never executed after one broker cut). Two calls do that:

* Celery's ``connection.close()`` right after ``collect()``: with the broker unreachable,
  kombu's Redis ``Channel.close()`` inside ``collect()`` fails half-way (reading the reply of
  its in-flight ``BRPOP`` raises) and leaves the channel open; the second close gets as far
  as putting back the unacknowledged messages, from the detached transport.
* The acknowledgement of a task that was running at the cut (``acks_late``): it finishes
  after the reconnect and acks its message on the old channel.

Neither can reach the broker anyway: the messages the close would put back and the ones
those acks would remove stay in the broker's ``unacked`` hash, kombu puts them back on
their queue after ``visibility_timeout`` (sundial workers sweep for them every few seconds,
see ``jobs.app``), and the execution ledger drops a copy whose run already ended. So both
calls are made harmless on the lost connection only. Remove this module once a Celery
release stops touching a collected connection.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger("sundial.worker")

_LOST = "lost broker connection"


class CollectedCloseConsumer(Consumer):  # type: ignore[misc]  # Celery is untyped
    """Celery's consumer, surviving its use of a connection it already collected."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """Celery's handling, with the lost connection's close and acks made safe first."""
        connection = self.connection
        if connection is not None:
            for channel in _channels(connection, self.task_consumer):
                _disarm_acks(channel)
            safe = _tolerate_detached(connection, connection.close)
            # Attributes of these instances only: the next connection is a fresh object.
            connection.close = connection.release = safe
        super().on_connection_error_after_connected(exc)


def _channels(connection: Any, task_consumer: Any) -> set[Any]:
    """The lost connection's channels, taken before ``collect()`` forgets them."""
    transport = getattr(connection, "_transport", None)
    found = set(getattr(transport, "channels", None) or ())
    found.add(getattr(connection, "_default_channel", None))
    found.add(getattr(task_consumer, "channel", None))
    found.discard(None)
    return found


def _disarm_acks(channel: Any) -> None:
    """Acks and rejects on this channel leave the message to the visibility timeout."""

    def not_acked(delivery_tag: Any, *_args: Any, **_kwargs: Any) -> None:
        log.warning(
            "message %s not acknowledged: it came over a %s; the broker delivers it again "
            "after visibility_timeout and the execution ledger drops a run that ended",
            delivery_tag,
            _LOST,
        )

    channel.basic_ack = channel.basic_reject = not_acked


def _tolerate_detached(connection: Any, close: Callable[[], Any]) -> Callable[[], Any]:
    @functools.wraps(close)
    def safe_close() -> Any:
        try:
            return close()
        except AttributeError as error:
            # Only the detached-transport failure is expected; anything else is a bug.
            if getattr(connection, "_transport", None) is not None:
                raise
            log.warning(
                "closing the %s failed (%r); its unacknowledged messages come back after "
                "visibility_timeout",
                _LOST,
                error,
            )
            return None

    return safe_close
