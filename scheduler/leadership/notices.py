"""Change notices: the API tells the leader a schedule changed, so it re-reads at once."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import redis

log = logging.getLogger("sundial.notices")

CHANNEL = "sundial:changes"


@dataclass(frozen=True)
class Notice:
    """A change to announce: the schedule, and the earliest instant the change can need the
    leader when that is known (a new schedule's first fire), so a leader already planning to
    look by then need not look now. ``due`` None: look now."""

    schedule_id: str
    due: datetime | None = None

    def joined(self, other: Notice) -> Notice:
        """One notice standing for both changes: look by the earlier of their instants."""
        if self.due is None or other.due is None:
            return Notice(self.schedule_id)
        return Notice(self.schedule_id, min(self.due, other.due))

    def encode(self) -> str:
        """The message sent on the channel."""
        due = None if self.due is None else self.due.isoformat()
        return json.dumps({"id": self.schedule_id, "due": due})

    @classmethod
    def decode(cls, data: str) -> Notice:
        """A message from the channel; one in another form (an older API sends the bare
        schedule id) asks the leader to look now."""
        try:
            message = json.loads(data)
            due = message["due"]
            return cls(str(message["id"]), None if due is None else datetime.fromisoformat(due))
        except (ValueError, KeyError, TypeError):
            return cls(data)


class ChangeNotifier(Protocol):
    """Announces that a schedule (or a run waiting to be published) changed."""

    def schedule_changed(self, schedule_id: str, due: datetime | None = None) -> None:
        """Best effort: the leader's periodic re-read covers a lost notice. ``due``: the
        earliest instant the change can need the leader (see :class:`Notice`)."""


class NullNotifier:
    """Embedded mode: no Redis; the leader's short store poll picks changes up."""

    def schedule_changed(self, schedule_id: str, due: datetime | None = None) -> None:
        """Nothing to send."""


class RedisNotifier:
    """Publishes change notices on a Redis channel, at most one per ``min_interval_s``.

    A notice only wakes the leader to re-read the store, so one notice stands for every
    change committed before it is sent. The first change after a quiet spell is announced
    at once; changes within ``min_interval_s`` of a notice share one more notice at the end
    of that interval (sent from a timer thread), due by the earliest of their instants.
    Under 1,000 creates a second that is 50 notices instead of 1,000, and a change is
    announced at most ``min_interval_s`` late.
    """

    def __init__(
        self,
        client: redis.Redis,
        channel: str = CHANNEL,
        min_interval_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._channel = channel
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent = -math.inf
        self._pending: Notice | None = None

    def schedule_changed(self, schedule_id: str, due: datetime | None = None) -> None:
        """Announce now, or join the notice already due at the end of the interval."""
        notice = Notice(schedule_id, due)
        with self._lock:
            if self._pending is not None:
                self._pending = self._pending.joined(notice)
                return
            wait = self._last_sent + self._min_interval_s - self._clock()
            if wait > 0:
                self._pending = notice
                timer = threading.Timer(wait, self._send_pending)
                timer.daemon = True
                timer.start()
                return
            self._last_sent = self._clock()
        self._publish(notice)

    def _send_pending(self) -> None:
        with self._lock:
            notice, self._pending = self._pending, None
            self._last_sent = self._clock()
        if notice is not None:
            self._publish(notice)

    def _publish(self, notice: Notice) -> None:
        """Publish; a Redis failure is logged, never raised into the API request."""
        try:
            self._client.publish(self._channel, notice.encode())
        except redis.RedisError as exc:
            log.warning("notices: publish failed for schedule %s: %s", notice.schedule_id, exc)


class NoticeListener:
    """Calls ``on_notice`` from a thread of its own for every notice on the channel."""

    def __init__(
        self,
        client: redis.Redis,
        on_notice: Callable[[Notice], None],
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
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        self._on_notice(Notice.decode(text))
            except redis.RedisError as exc:
                self.subscribed.clear()
                log.warning("notices: subscription lost (%s); retrying", exc)
                self._stop.wait(self._retry_s)
            finally:
                pubsub.close()
