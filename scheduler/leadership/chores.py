"""A leader's periodic chore in a thread of its own, off the fire path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from scheduler.timing.clock import Clock

log = logging.getLogger("sundial.scheduler")


class LeaderChore:
    """Calls ``work(now)`` every ``period_s`` while ``leading()`` holds, and ``idle()``
    while it does not; a failing round (the store is down) is reported and retried."""

    def __init__(
        self,
        name: str,
        period_s: float,
        work: Callable[[datetime], None],
        clock: Clock,
        idle: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = name
        self._period_s = period_s
        self._work = work
        self._clock = clock
        self._idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, leading: Callable[[], bool]) -> None:
        """Begin the rounds."""

        def loop() -> None:
            while not self._stop.wait(self._period_s):
                if not leading():
                    self._idle()
                    continue
                try:
                    self._work(self._clock())
                except Exception as exc:  # the store is down: the next round tries again
                    log.warning("%s: %s: %s", self._name, type(exc).__name__, exc)

        self._thread = threading.Thread(target=loop, name=f"sundial-{self._name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the round in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
