"""Publishing fires to Celery by task name, per the SPEC's dispatch contract."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import redis
from celery import Celery
from kombu.connection import Connection
from kombu.messaging import Producer

from scheduler.firing.broker import celery_config
from scheduler.firing.claim import Dispatch
from scheduler.firing.confirms import CONFIRM_TIMEOUT_S, Confirms, one_write
from scheduler.firing.messages import MessageBuilder, message_headers, redis_list_key, routed
from scheduler.firing.push_once import Message, PushOnce
from scheduler.settings import Settings

log = logging.getLogger("sundial.dispatch")

# Messages per broker round trip: kombu pipelines a batch's publishes on Redis (and
# publishes one by one on transports that cannot batch).
BATCH = 500
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
REDIS_SCHEMES = ("redis://", "rediss://")
# A RabbitMQ connection unused this long is replaced before the next batch: well within
# Celery's 120 s heartbeat, which nothing sends while the leader has nothing to publish.
AMQP_IDLE_S = 30.0
# Fail fast when the broker is down: the run stays pending in the database (the outbox)
# and the next cycle tries again, instead of the loop blocking in kombu's retries.
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def _refused(sent: int, total: int, exc: Exception) -> None:
    log.warning(
        "dispatch: broker refused after %d of %d messages (%s: %s); runs stay pending",
        sent,
        total,
        type(exc).__name__,
        exc,
    )


def create_publisher_app(settings: Settings) -> Celery:
    """A bare Celery app for publishing and reading events; it registers no tasks."""
    app = Celery("sundial-scheduler", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.broker_connection_timeout = 2.0
    return app


class Publisher(Protocol):
    """Something that hands dispatches to the broker."""

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        """Publish in order; return the run ids the broker accepted."""

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        """Build these messages now, ahead of their instant, so publishing them only sends."""

    def discard(self, run_ids: Sequence[str]) -> None:
        """Forget messages prepared for runs that will not be published from here."""

    def recorded(self, run_ids: Sequence[str]) -> None:
        """The store now records these runs as dispatched (what the broker kept to recognise
        them may go)."""

    def revoke(self, run_ids: Sequence[str]) -> None:
        """Tell workers to drop (or terminate) these runs."""

    def close(self) -> None:
        """Release the connections it opened."""


class CeleryPublisher:
    """Sends Celery messages whose task id is the run id, over one pooled connection."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        """Publish in order; return the run ids the broker accepted before any failure."""
        sent: list[str] = []
        if not dispatches:
            return sent
        try:
            with self._app.producer_or_acquire() as producer, producer.batch(BATCH) as batch:
                unflushed: list[str] = []
                for item in dispatches:
                    self._send_task(item, producer, retry=True, retry_policy=_RETRY_POLICY)
                    unflushed.append(item.run_id)
                    if len(unflushed) >= BATCH:
                        batch.flush()
                        sent.extend(unflushed)
                        unflushed.clear()
                batch.flush()
                sent.extend(unflushed)
        except Exception as exc:  # kombu raises many types; any of them means "not sent"
            _refused(len(sent), len(dispatches), exc)
        return sent

    def _send_task(self, item: Dispatch, producer: Producer, **options: Any) -> None:
        """One task message, exactly as ``apply_async`` would send it."""
        self._app.send_task(
            item.task,
            args=item.args,
            kwargs=item.kwargs,
            task_id=item.run_id,
            queue=item.queue,
            priority=item.priority,
            expires=item.expires_at,
            time_limit=item.time_limit,
            soft_time_limit=item.soft_time_limit,
            exchange=item.exchange,
            routing_key=item.routing_key,
            headers=message_headers(item),
            producer=producer,
            **options,
        )

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        """Nothing to do: kombu builds each message as it sends it."""

    def discard(self, run_ids: Sequence[str]) -> None:
        """Nothing to do: nothing was prepared."""

    def recorded(self, run_ids: Sequence[str]) -> None:
        """Nothing to do: this path leaves no marker at the broker."""

    def revoke(self, run_ids: Sequence[str]) -> None:
        """Broadcast a revoke; running tasks are terminated (overlap ``cancel_previous``)."""
        try:
            self._app.control.revoke(list(run_ids), terminate=True)
        except Exception as exc:  # the run is already recorded revoked; report the miss
            log.warning("dispatch: revoke of %s failed: %s", ", ".join(run_ids), exc)

    def close(self) -> None:
        """Nothing of its own: the Celery app's connections belong to whoever made it."""


class RedisPublisher(CeleryPublisher):
    """The fast path for a Redis broker: protocol-2 messages in kombu's Redis transport
    format, pushed by one script call per batch that publishes each run at most once
    (:mod:`scheduler.firing.push_once`): a new leader relaying runs a dead one published but never
    recorded finds them at the broker and records them instead of sending them twice.
    Revokes still go through Celery's control."""

    def __init__(self, app: Celery, client: redis.Redis) -> None:
        super().__init__(app)
        self._redis = client
        self._builder = MessageBuilder()
        self._once = PushOnce(client)
        # Messages built ahead of their instant, by run id; taken when published.
        self._built: dict[str, Message] = {}

    def _message(self, item: Dispatch) -> Message:
        return Message(
            redis_list_key(item.queue, item.priority), item.run_id, self._builder.envelope(item)
        )

    def _take(self, item: Dispatch) -> Message:
        built = self._built.pop(item.run_id, None)
        return self._message(item) if built is None else built

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        """Build the messages now; :meth:`publish` then only pushes them."""
        for item in dispatches:
            self._built[item.run_id] = self._message(item)

    def discard(self, run_ids: Sequence[str]) -> None:
        """Drop prepared messages that will not be sent from here."""
        for run_id in run_ids:
            self._built.pop(run_id, None)

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        """Publish in order, one round trip per batch; return what the broker holds.

        A message with its own exchange and routing key goes through kombu after the
        others, which routes it by the binding table kombu keeps in Redis exactly as
        ``apply_async`` does (the script here only pushes onto a queue's list)."""
        if not any(routed(item) for item in dispatches):
            return self._push(dispatches)
        plain = [item for item in dispatches if not routed(item)]
        return self._push(plain) + super().publish([item for item in dispatches if routed(item)])

    def _push(self, dispatches: Sequence[Dispatch]) -> list[str]:
        sent: list[str] = []
        already = 0
        try:
            for start in range(0, len(dispatches), BATCH):
                chunk = dispatches[start : start + BATCH]
                pushed = self._once.push([self._take(item) for item in chunk])
                already += pushed.count(False)
                sent.extend(item.run_id for item in chunk)
        except redis.RedisError as exc:
            _refused(len(sent), len(dispatches), exc)
        if already:
            log.info(
                "dispatch: %d of %d runs were already at the broker (published by an earlier "
                "term); recorded, not sent again",
                already,
                len(dispatches),
            )
        return sent

    def recorded(self, run_ids: Sequence[str]) -> None:
        """Let the broker forget these runs soon (it keeps unrecorded ones for a day)."""
        try:
            for start in range(0, len(run_ids), BATCH):
                self._once.recorded(run_ids[start : start + BATCH])
        except redis.RedisError as exc:
            log.warning("dispatch: recording %d runs at the broker failed: %s", len(run_ids), exc)

    def close(self) -> None:
        """Release its broker connection."""
        self._redis.close()


class AmqpPublisher(CeleryPublisher):
    """RabbitMQ: Celery's own messages, a batch at a time on a channel in confirm mode, and
    a run counts as published only once RabbitMQ confirmed its message
    (:mod:`scheduler.firing.confirms`). Messages go ``mandatory``: one no queue would receive
    comes back and its run stays pending instead of being recorded as dispatched.

    Unlike the Redis path nothing at the broker recognises a run published twice: a leader
    that dies between the confirm and recording the run leaves it pending, and the next
    term publishes it again. The workers' execution ledger (:mod:`jobs.dedupe`) runs such a
    duplicate once.
    """

    def __init__(self, app: Celery, confirm_timeout_s: float = CONFIRM_TIMEOUT_S) -> None:
        super().__init__(app)
        self._timeout = confirm_timeout_s
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: Confirms | None = None
        self._last_used = 0.0

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        """Publish in order, batch by batch; return the run ids RabbitMQ confirmed."""
        sent: list[str] = []
        try:
            for start in range(0, len(dispatches), BATCH):
                chunk = dispatches[start : start + BATCH]
                answers = self._publish_batch(chunk)
                taken = [item.run_id for item in chunk if answers.get(item.run_id)]
                sent.extend(taken)
                if len(taken) < len(chunk):
                    unanswered = sum(item.run_id not in answers for item in chunk)
                    _refused(
                        len(sent),
                        len(dispatches),
                        PublishNotConfirmed(
                            f"{len(chunk) - len(taken) - unanswered} refused, "
                            f"{unanswered} unconfirmed after {self._timeout:g}s"
                        ),
                    )
                    if unanswered:
                        # Answers may still come on this channel: start clean next time.
                        self._disconnect()
                    break
        except Exception as exc:  # kombu and py-amqp raise many types: none confirmed
            _refused(len(sent), len(dispatches), exc)
            self._disconnect()
        return sent

    def _publish_batch(self, chunk: Sequence[Dispatch]) -> dict[str, bool]:
        connection, producer, confirms = self._connect()
        # Queues are declared (once per connection) before the batch: a declare waits for
        # its reply, which it could not while the batch's writes are held back.
        for queue in dict.fromkeys(item.queue for item in chunk):
            producer.maybe_declare(self._app.amqp.queues[queue])  # type: ignore[no-untyped-call]
        with one_write(connection.connection.transport):
            for item in chunk:
                # No kombu retries: a retry reopens the channel, leaving confirm mode.
                self._send_task(item, producer, retry=False, mandatory=True, declare=[])
                confirms.published(item.run_id)
        return confirms.wait(connection.drain_events, self._timeout)

    def _connect(self) -> tuple[Connection, Producer, Confirms]:
        now = time.monotonic()
        if now - self._last_used > AMQP_IDLE_S:
            # Heartbeats are not sent while idle: RabbitMQ (or a NAT on the way) may have
            # dropped the connection, and finding out costs a failed batch and a backoff.
            self._disconnect()
        self._last_used = now
        if self._connection is None or self._producer is None or self._confirms is None:
            connection = self._app.connection_for_write()
            try:
                connection.connect()  # one attempt: a refusal goes back to the outbox
                channel = connection.channel()
                self._confirms = Confirms(channel)
                self._producer = Producer(channel)  # type: ignore[no-untyped-call]
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._connection, self._producer, self._confirms

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._producer = self._confirms = None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken, most likely
                connection.release()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Close its confirm-mode connection."""
        self._disconnect()


class PublishNotConfirmed(Exception):
    """RabbitMQ refused messages, or did not answer for them in time."""


def create_publisher(app: Celery) -> Publisher:
    """The Redis fast path on Redis, confirmed batches on RabbitMQ, kombu's generic path
    otherwise."""
    url = app.conf.broker_url or ""
    if url.startswith(REDIS_SCHEMES):
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        return RedisPublisher(app, client)
    if url.startswith(AMQP_SCHEMES):
        return AmqpPublisher(app)
    return CeleryPublisher(app)
