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
            schedule_id = str(message["id"])
            due = None if message["due"] is None else datetime.fromisoformat(message["due"])
        except (ValueError, KeyError, TypeError):
            return cls(data)
        if due is not None and due.tzinfo is None:  # not ours: no instant to trust
            due = None
        return cls(schedule_id, due)


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
    """Publishes change notices on a Redis channel, at most one per ``min_interval_s``, from
    a sender thread of its own: announcing a change never waits on Redis, so a slow or
    unreachable Redis delays no request (nor the API's group commit).

    A notice only wakes the leader to re-read the store, so one notice stands for every
    change committed before it is sent. The first change after a quiet spell is announced
    at once; changes made meanwhile or within ``min_interval_s`` of a notice share the next
    one, due by the earliest of their instants. Under 1,000 creates a second that is 50
    notices instead of 1,000, and a change is announced at most ``min_interval_s`` late
    (plus a Redis round trip).
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
        self._changed = threading.Condition()
        self._last_sent = -math.inf
        self._pending: Notice | None = None
        self._sender: threading.Thread | None = None

    @property
    def pending(self) -> bool:
        """Whether a change waits for its notice to be sent."""
        with self._changed:
            return self._pending is not None

    def schedule_changed(self, schedule_id: str, due: datetime | None = None) -> None:
        """Join the next notice (the sender thread starts with the first change)."""
        notice = Notice(schedule_id, due)
        with self._changed:
            self._pending = notice if self._pending is None else self._pending.joined(notice)
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_forever, name="sundial-notices-send", daemon=True
                )
                self._sender.start()
            self._changed.notify()

    def _send_forever(self) -> None:
        while True:
            with self._changed:
                while self._pending is None:
                    self._changed.wait()
                wait = self._last_sent + self._min_interval_s - self._clock()
            if wait > 0:
                # The rate limit itself: changes made meanwhile join this notice.
                time.sleep(wait)
            with self._changed:
                notice, self._pending = self._pending, None
                self._last_sent = self._clock()
            if notice is not None:
                self._publish(notice)

    def _publish(self, notice: Notice) -> None:
        """Publish; a failure is logged: the leader's periodic re-read covers it, and the
        sender thread lives on (a client closed at shutdown raises ``OSError`` too)."""
        try:
            self._client.publish(self._channel, notice.encode())
        except (redis.RedisError, OSError, ValueError) as exc:
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
            # Untyped in older redis-py releases, typed in 8.2: the ignore holds for either.
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
            try:
                pubsub.subscribe(self._channel)
                self.subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        self._heard(Notice.decode(text))
            except redis.RedisError as exc:
                self.subscribed.clear()
                log.warning("notices: subscription lost (%s); retrying", exc)
                self._stop.wait(self._retry_s)
            finally:
                pubsub.close()

    def _heard(self, notice: Notice) -> None:
        try:
            self._on_notice(notice)
        except Exception:  # one bad notice must not end the listening for good
            log.exception("notices: handling the notice of %s failed", notice.schedule_id)
