"""Publisher confirms on an AMQP channel: which messages RabbitMQ took responsibility for.

A channel in confirm mode numbers every message published on it (1, 2, …) and the broker
answers each with ``basic.ack`` (it holds the message: queued, persisted for a durable
queue) or ``basic.nack`` (it could not take it), often several at once (``multiple``). A
message published ``mandatory`` that no queue would receive comes back as ``basic.return``
before its ack: it counts as refused too. The publisher sends a whole batch, then waits for
the answers, so a batch costs one round trip rather than one per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# The answers a batch waits for; what is still unanswered then counts as not published.
CONFIRM_TIMEOUT_S = 5.0


class Confirms:
    """Puts ``channel`` (a py-amqp channel) in confirm mode and keeps its answers by run id."""

    def __init__(self, channel: Any) -> None:
        self._next_tag = 1
        self._waiting: dict[int, str] = {}  # delivery tag -> run id, published, unanswered
        self._answers: dict[str, bool] = {}
        self._returned: set[str] = set()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)

    def published(self, run_id: str) -> None:
        """The message of ``run_id`` was just written to the channel."""
        self._waiting[self._next_tag] = run_id
        self._next_tag += 1

    def wait(
        self, drain: Callable[..., Any], timeout_s: float = CONFIRM_TIMEOUT_S
    ) -> dict[str, bool]:
        """Read the broker's answers (``drain(timeout=…)`` reads the connection) until each
        message published since the last call has one or ``timeout_s`` passed; per run id,
        True when the broker took it. Runs without an answer are left out."""
        deadline = time.monotonic() + timeout_s
        while self._waiting and (left := deadline - time.monotonic()) > 0:
            try:
                drain(timeout=left)
            except TimeoutError:  # socket.timeout: no frame in time
                break
        answers, self._answers = self._answers, {}
        self._waiting.clear()
        self._returned.clear()
        return answers

    def _settle(self, tag: int, multiple: bool, taken: bool) -> None:
        tags = [t for t in self._waiting if t <= tag] if multiple else [tag]
        for settled in tags:
            run_id = self._waiting.pop(settled, None)
            if run_id is not None:
                self._answers[run_id] = taken and run_id not in self._returned

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, taken=True)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, taken=False)

    def _on_return(self, _exc: Exception, _exchange: str, _key: str, message: Any) -> None:
        # Celery's correlation id is the task id, which is the run id.
        run_id = message.properties.get("correlation_id")
        if run_id is not None:
            self._returned.add(str(run_id))


@contextmanager
def one_write(transport: Any) -> Iterator[None]:
    """Hold back what py-amqp writes to ``transport`` in the block, then send it with one
    write: a batch of messages costs one system call rather than one per message, which is
    most of a publish's cost on a busy machine. Nothing in the block may wait for a reply.

    py-amqp sends every frame through the transport's ``_write`` (the socket's ``sendall``,
    or the TLS write), so that one attribute is swapped for the block."""
    held = bytearray()
    original = transport._write
    transport._write = held.extend  # copies: py-amqp reuses its frame buffer
    try:
        yield
    finally:
        transport._write = original
    if held:
        transport.write(bytes(held))
