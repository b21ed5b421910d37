"""The worker's consumer: Celery's, with task events published in batches."""

from __future__ import annotations

from jobs.collected_close import CollectedCloseConsumer

# How long a task event may wait for others to share its publish. Run tracking sees each
# outcome at most this much later; the SPEC allows 2 s.
EVENT_FLUSH_S = 0.05


class BatchingConsumer(CollectedCloseConsumer):
    """Celery's consumer, but buffered task events go out at most every ``EVENT_FLUSH_S``
    (or as soon as Celery's buffer of 24 is full) rather than after every turn of the event
    loop. Celery then publishes each batch as one ``task.multi`` message, which every event
    receiver reads; the stock consumer sends one publish, and with a thread pool one wake-up
    of the loop, per event: the largest per-task cost of a worker working off a backlog.
    """

    _flush_pending = False

    def on_send_event_buffered(self) -> None:
        """Called (from any thread) after an event was buffered: arm one timed flush."""
        if self.hub is None or self._flush_pending:
            return
        self._flush_pending = True
        # Timers belong to the loop's thread; call_soon is the thread-safe way in.
        self.hub.call_soon(self._arm_flush)

    def _arm_flush(self) -> None:
        self.hub.call_later(EVENT_FLUSH_S, self._flush_batch)

    def _flush_batch(self) -> None:
        # Cleared before the flush: an event buffered meanwhile arms the next one.
        self._flush_pending = False
        self._flush_events()

    def shutdown(self) -> None:
        """Send what the timer has not sent yet, then shut down as Celery does."""
        self._flush_events()
        super().shutdown()
