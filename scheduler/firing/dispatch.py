"""Publishing fires to Celery by task name, per the SPEC's dispatch contract."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import redis
from celery import Celery

from scheduler.firing.broker import celery_config
from scheduler.firing.claim import Dispatch
from scheduler.firing.messages import MessageBuilder, redis_list_key, sundial_headers
from scheduler.firing.push_once import Message, PushOnce
from scheduler.settings import Settings

log = logging.getLogger("sundial.dispatch")

# Messages per broker round trip: kombu pipelines a batch's publishes on Redis (and
# publishes one by one on transports that cannot batch).
BATCH = 500
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
                    self._app.send_task(
                        item.task,
                        args=item.args,
                        kwargs=item.kwargs,
                        task_id=item.run_id,
                        queue=item.queue,
                        priority=item.priority,
                        expires=item.expires_at,
                        headers=sundial_headers(item),
                        producer=producer,
                        retry=True,
                        retry_policy=_RETRY_POLICY,
                    )
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

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        """Publish in order, one round trip per batch; return what the broker holds."""
        sent: list[str] = []
        already = 0
        try:
            for start in range(0, len(dispatches), BATCH):
                chunk = dispatches[start : start + BATCH]
                pushed = self._once.push(
                    [
                        Message(
                            redis_list_key(item.queue, item.priority),
                            item.run_id,
                            self._builder.envelope(item),
                        )
                        for item in chunk
                    ]
                )
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


def create_publisher(app: Celery) -> Publisher:
    """The Redis fast path when the broker is Redis, kombu's generic path otherwise."""
    url = app.conf.broker_url or ""
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        return RedisPublisher(app, client)
    return CeleryPublisher(app)
