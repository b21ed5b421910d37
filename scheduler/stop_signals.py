"""SIGTERM and SIGINT, acted on outside the signal handler.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread
is, possibly holding a lock that is not re-entrant. A loop that sleeps in ``Event.wait``
(APScheduler's, or ours) holds that event's lock for moments at a time, and setting the
event from a handler that interrupted it there waits on its own thread for good. It
happened: a leader that got SIGTERM logged its shutdown, then hung while its lease keeper
went on renewing, so no replica could take over. Here the handler does nothing; the
signal's number reaches a thread of its own through Python's wakeup file descriptor, and
that thread calls ``on_stop``.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("sundial.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# What signal.signal takes and returns (typeshed's private alias).
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """Python's C handler has already written the signal's number to the wakeup fd."""


class StopSignals:
    """While entered, calls ``on_stop(signum)`` from the ``sundial-signals`` thread for each
    SIGTERM or SIGINT. Enter it in the main thread (Python sets handlers only there), once."""

    def __init__(self, on_stop: Callable[[int], None]) -> None:
        self._on_stop = on_stop
        self._previous: dict[int, Handler] = {}
        self._previous_fd = -1
        self._reader, self._writer = socket.socketpair()
        self._thread = threading.Thread(target=self._watch, name="sundial-signals", daemon=True)

    def __enter__(self) -> StopSignals:
        # The C handler writes without blocking; a full buffer only drops repeated signals.
        self._writer.setblocking(False)
        try:
            self._previous_fd = signal.set_wakeup_fd(
                self._writer.fileno(), warn_on_full_buffer=False
            )
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, _noted)
        except BaseException:
            self._restore()
            self._writer.close()
            self._reader.close()
            raise
        # Started last: a signal that came meanwhile waits in the socket for it.
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._restore()
        self._writer.close()  # the watching thread reads the end of the stream and returns
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # else still in on_stop: a daemon, left to finish
            self._reader.close()

    def _restore(self) -> None:
        # Handlers first: until the fd is restored, a stop still reaches the thread.
        try:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        finally:
            signal.set_wakeup_fd(self._previous_fd)

    def _watch(self) -> None:
        while numbers := self._reader.recv(64):
            for signum in numbers:
                if signum not in STOP_SIGNALS:
                    continue
                try:
                    self._on_stop(signum)
                except Exception:  # the next signal must still be heard
                    log.exception("signals: stopping on signal %d failed", signum)
