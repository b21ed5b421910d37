"""The outbox's sending side: hand claimed runs to the broker, then record them dispatched.

Runs are recorded ``pending`` before they are published, so whatever this fails to send
(broker down, lease lost, process killed) is found again by the relay. With
``threaded=True`` sending happens in a thread of its own, so the leader claims the next
batch while the last one is being published: the database and the broker work at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.bulk import mark_dispatched
from scheduler.claim import Dispatch
from scheduler.clock import Clock
from scheduler.dispatch import Publisher
from scheduler.lease import Lease

log = logging.getLogger("sundial.scheduler")

# After the broker refused a message, wait this long before publishing again; fires keep
# being recorded as pending meanwhile, and go out in order once the broker is back.
BROKER_BACKOFF_S = 1.0
# Attempts at recording that the broker accepted a batch, before leaving it to the relay.
MARK_ATTEMPTS = 3
# Batches claimed ahead of the broker: enough to overlap, few enough to bound memory.
QUEUE_BATCHES = 2


class Outbox:
    """Publishes batches in order and marks what the broker accepted."""

    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        lease: Lease,
        clock: Clock,
        threaded: bool = False,
    ) -> None:
        self.publisher = publisher
        self._engine = engine
        self._lease = lease
        self._clock = clock
        self.retry_at: datetime | None = None
        self._queue: queue.Queue[Sequence[Dispatch] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=QUEUE_BATCHES)
            self._thread = threading.Thread(target=self._run, name="sundial-outbox", daemon=True)
            self._thread.start()

    def backing_off(self) -> bool:
        """True while the broker recently refused and publishing is paused."""
        return self.retry_at is not None and self._clock() < self.retry_at

    def idle(self) -> bool:
        """True when no batch waits to be sent or is being sent."""
        return self._queue is None or self._queue.unfinished_tasks == 0

    def send(self, dispatches: Sequence[Dispatch], background: bool = False) -> None:
        """Publish unless backing off; what is not sent stays pending.

        ``background`` hands the batch to the sending thread (when there is one) so the
        caller can claim the next; otherwise it is sent now, after whatever is queued.
        """
        if not dispatches or self.backing_off():
            return
        if self._queue is None:
            self._send_now(dispatches)
        elif background:
            self._queue.put(dispatches)
        else:
            # Steady load: a thread hand-off only adds latency. Order is kept by letting
            # the queued batches go out first.
            self._queue.join()
            self._send_now(dispatches)

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then stop the sending thread."""
        if self._queue is None or self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._send_now(batch)
            except Exception:  # this thread must survive; the runs stay pending for the relay
                log.exception("scheduler: sending a batch of %d runs failed", len(batch or ()))
            finally:
                self._queue.task_done()

    def _send_now(self, dispatches: Sequence[Dispatch]) -> None:
        if self.backing_off():
            return
        if not self._lease.held():
            # Frozen or cut off past our deadline: a follower may lead by now and relay
            # these runs itself. They stay pending; publishing late would send them twice.
            return
        sent = self.publisher.publish(dispatches)
        self._mark_dispatched(sent)
        if len(sent) < len(dispatches):
            self.retry_at = self._clock() + timedelta(seconds=BROKER_BACKOFF_S)
        else:
            self.retry_at = None

    def _mark_dispatched(self, sent: list[str]) -> None:
        # The broker holds these messages now: failing to record it would have the relay
        # publish the whole batch again, so a dropped connection gets another try at once
        # (the update only moves runs still pending, so repeating it is harmless).
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                mark_dispatched(self._engine, sent, self._clock())
                return
            except SQLAlchemyError as exc:
                if attempt == MARK_ATTEMPTS:
                    raise
                log.warning(
                    "scheduler: recording %d published runs failed (%s); retrying",
                    len(sent),
                    type(exc).__name__,
                )
