"""Change notices: the API tells the leader a schedule changed, so it re-reads at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import redis

log = logging.getLogger("sundial.notices")

CHANNEL = "sundial:changes"


class ChangeNotifier(Protocol):
    """Announces that a schedule (or a run waiting to be published) changed."""

    def schedule_changed(self, schedule_id: str) -> None:
        """Best effort: the leader's periodic re-read covers a lost notice."""


class NullNotifier:
    """Embedded mode: no Redis; the leader's short store poll picks changes up."""

    def schedule_changed(self, schedule_id: str) -> None:
        """Nothing to send."""


class RedisNotifier:
    """Publishes a notice per change on a Redis channel."""

    def __init__(self, client: redis.Redis, channel: str = CHANNEL) -> None:
        self._client = client
        self._channel = channel

    def schedule_changed(self, schedule_id: str) -> None:
        """Publish; a Redis failure is logged, never raised into the API request."""
        try:
            self._client.publish(self._channel, schedule_id)
        except redis.RedisError as exc:
            log.warning("notices: publish failed for schedule %s: %s", schedule_id, exc)


class NoticeListener:
    """Calls ``on_notice`` from a thread of its own for every notice on the channel."""

    def __init__(
        self,
        client: redis.Redis,
        on_notice: Callable[[str], None],
        channel: str = CHANNEL,
        retry_s: float = 1.0,
    ) -> None:
        self._client = client
        self._on_notice = on_notice
        self._channel = channel
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sundial-notices", daemon=True)
        self.subscribed = threading.Event()

    def start(self) -> None:
        """Begin listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and wait for the thread to end."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                self.subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        self._on_notice(data.decode() if isinstance(data, bytes) else str(data))
            except redis.RedisError as exc:
                self.subscribed.clear()
                log.warning("notices: subscription lost (%s); retrying", exc)
                self._stop.wait(self._retry_s)
            finally:
                pubsub.close()
