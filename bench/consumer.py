"""The fast consumer: takes Celery messages straight off the broker (a Redis list, or a
RabbitMQ queue) and notes when each arrived. It is not a Celery worker; it reads Celery's
protocol-2 headers, ``id`` and our ``sundial_*`` ones (on Redis, from kombu's JSON
envelope)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import redis
from kombu.connection import Connection

POP_BATCH = 5000
IDLE_BLOCK_S = 0.02
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Receipt:
    """One message as the consumer saw it."""

    task_id: str
    schedule_id: str
    due_us: int  # sundial_scheduled_for in epoch microseconds (jitter is 0 in every case)
    received: float  # epoch seconds when it was popped

    @property
    def key(self) -> tuple[str, int]:
        """The fire it stands for: (schedule, nominal time)."""
        return (self.schedule_id, self.due_us)

    @property
    def due(self) -> float:
        """The nominal fire time in epoch seconds."""
        return self.due_us / 1e6

    @property
    def lateness(self) -> float:
        """Seconds from due to popped off the broker."""
        return self.received - self.due


def epoch_us(instant: datetime) -> int:
    """An aware datetime as whole epoch microseconds: exact, so usable as a key."""
    return (instant - EPOCH) // timedelta(microseconds=1)


def parse(raw: bytes, received: float) -> Receipt:
    """A kombu Redis envelope to a :class:`Receipt`."""
    return _receipt(json.loads(raw)["headers"], received)


def _receipt(headers: dict[str, Any], received: float) -> Receipt:
    return Receipt(
        task_id=headers["id"],
        schedule_id=headers["sundial_schedule_id"],
        due_us=epoch_us(datetime.fromisoformat(headers["sundial_scheduled_for"])),
        received=received,
    )


class Consumer:
    """Takes one queue's messages from a thread and notes when each arrived; subclasses
    read one broker. Parsing waits until :meth:`receipts`, so the consuming thread does as
    little as it can."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-consumer", daemon=True)
        self.count = 0
        self.error: BaseException | None = None

    def __enter__(self) -> Consumer:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._close()

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release the broker connection."""

    def receipts(self) -> list[Receipt]:
        """Every message taken so far, in arrival order."""
        raise NotImplementedError

    def wait_count(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` messages were popped; False when the timeout came first."""
        deadline = time.monotonic() + timeout
        while self.count < n:
            if self.error is not None:
                raise self.error
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_quiet(self, quiet_s: float, timeout: float) -> None:
        """Wait until nothing arrived for ``quiet_s`` (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        last, since = self.count, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.count != last:
                last, since = self.count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return


class QueueConsumer(Consumer):
    """Pops one queue's Redis list: RPOP of up to 5,000 at a time (kombu LPUSHes, so this
    is FIFO), BRPOP for a moment when the list is empty."""

    def __init__(
        self,
        redis_url: str,
        queue: str,
        on_batch: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        super().__init__(queue)
        # When given, each popped batch goes to it instead of being kept for receipts().
        self._on_batch = on_batch
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._batches: list[tuple[float, list[bytes]]] = []

    def _close(self) -> None:
        self._client.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                items: Any = self._client.rpop(self.queue, POP_BATCH)
                if not items:
                    popped: Any = self._client.brpop([self.queue], timeout=IDLE_BLOCK_S)
                    items = [popped[1]] if popped else []
                if items:
                    if self._on_batch is not None:
                        self._on_batch(list(items))
                    else:
                        self._batches.append((time.time(), list(items)))
                    self.count += len(items)
        except BaseException as exc:  # surfaced by wait_count and receipts
            self.error = exc

    def receipts(self) -> list[Receipt]:
        """Every message popped so far, in arrival order."""
        if self.error is not None:
            raise self.error
        return [parse(raw, at) for at, batch in list(self._batches) for raw in batch]


class AmqpConsumer(Consumer):
    """Consumes one RabbitMQ queue (declared as Celery declares it, so it exists before the
    first publish) with automatic acks and no prefetch limit: RabbitMQ pushes as fast as
    this thread reads. Only the headers are kept."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        super().__init__(queue)
        self._url = amqp_url
        self._seen: list[tuple[float, dict[str, Any]]] = []
        self._ready = threading.Event()

    def __enter__(self) -> Consumer:
        super().__enter__()
        if not self._ready.wait(10):
            raise RuntimeError(f"AMQP consumer of {self.queue} not ready: {self.error!r}")
        return self

    def _on_message(self, message: Any) -> None:
        self._seen.append((time.time(), message.headers))
        self.count += 1

    def _run(self) -> None:
        try:
            with Connection(self._url, connect_timeout=5) as conn:
                channel = conn.default_channel
                channel.queue_declare(self.queue, durable=True, auto_delete=False)
                tag = channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)
                self._ready.set()
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=IDLE_BLOCK_S)
                # Stop deliveries before the channel closes: those in flight are still read.
                channel.basic_cancel(tag)
        except BaseException as exc:  # surfaced by wait_count and receipts
            self.error = exc

    def receipts(self) -> list[Receipt]:
        """Every message consumed so far, in arrival order."""
        if self.error is not None:
            raise self.error
        return [_receipt(headers, at) for at, headers in list(self._seen)]
