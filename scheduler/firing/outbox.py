"""The outbox: the one object that hands recorded runs to the broker.

Runs are recorded ``pending`` before they are published (the claim commits first), so
whatever is not sent (broker down, lease lost, process killed) is found again in the store.
This object owns everything after the commit: publishing new fires, relaying runs left
pending, backing off while the broker refuses, keeping older runs ahead of newer fires,
recording what the broker accepted, and revokes.

Two rules keep a run from being published twice:

* **A leader never republishes what it published itself.** Runs the broker accepted but the
  store could not yet record as ``dispatched`` (database away for seconds or minutes) are
  remembered here and their mark retried until it lands. The relay does not run while any
  are remembered, or while batches are on their way out, so it only ever finds runs that
  were never handed to the broker by this process.
* **Only a new term relays what an earlier term may have published.** A leader that died
  between publish and mark left its runs pending; the next term relays them. On a Redis
  broker the publish itself leaves a marker (see :mod:`scheduler.firing.push_once`), so those runs
  are recognised and marked instead of sent again.

With ``threaded=True`` a burst's full batches are sent from a thread of their own, so the
leader claims the next batch while the last one is being published.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.firing.bulk import mark_dispatched
from scheduler.firing.claim import Claim, Dispatch, pending_dispatches
from scheduler.firing.dispatch import Publisher
from scheduler.leadership.lease import Lease
from scheduler.leadership.skew import ClockGuard
from scheduler.timing.clock import Clock

log = logging.getLogger("sundial.outbox")

# After the broker refused a message, wait this long before publishing again; fires keep
# being recorded as pending meanwhile, and go out in order once the broker is back.
BROKER_BACKOFF_S = 1.0
# Runs left pending (a manual trigger, a retry's backoff) are looked for this often, and
# at once at a new term, after a change notice or once a refusal's backoff has passed.
RELAY_EVERY_S = 0.5
# A relay held back by batches still on their way out is tried again this soon.
BUSY_RELAY_S = 0.05
# Published runs whose mark did not land are tried again this often.
MARK_RETRY_S = 0.5
# Batches claimed ahead of the broker: enough to overlap, few enough to bound memory.
QUEUE_BATCHES = 2


class Outbox:
    """Publishes recorded runs in fire-time order, once per term, and records them sent."""

    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        lease: Lease,
        clock: Clock,
        batch_size: int,
        threaded: bool = False,
        guard: ClockGuard | None = None,
    ) -> None:
        self._engine = engine
        self._guard = guard
        self._publisher = publisher
        self._lease = lease
        self._clock = clock
        self._batch = batch_size
        self._lock = threading.Lock()
        # Accepted by the broker, not yet recorded: an ordered set, oldest first.
        self._unmarked: dict[str, None] = {}
        self._mark_failures = 0
        self._retry_at: datetime | None = None  # end of the broker backoff
        self._term: int | None = None
        # Runs may wait in the store that must go out before any newer fire.
        self._backlog = True
        self._next_relay: datetime | None = None
        self._open = False  # this cycle's new fires may be published
        self._queue: queue.Queue[Sequence[Dispatch] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=QUEUE_BATCHES)
            self._thread = threading.Thread(target=self._run, name="sundial-outbox", daemon=True)
            self._thread.start()

    def begin(self, token: int) -> None:
        """Start a leader's cycle under ``token``: record what the broker accepted earlier,
        then relay pending runs if it is time to.

        Raises what the relay's store access raises (``SQLAlchemyError``,
        :class:`~scheduler.errors.LeadershipLost`); the cycle deals with those.
        """
        if token != self._term:
            # A new term relays first: the last one may have left runs pending.
            self._term = token
            self._backlog = True
            self._next_relay = None
        self._retry_marks()
        self._open = self._relay_when_due(token)

    def publish(self, claim: Claim) -> None:
        """Publish a claim's fires, unless older runs must go first (then they stay pending
        and the relay sends them in order); send its revokes."""
        if claim.revoke:
            self._publisher.revoke(claim.revoke)
        if not self._open:
            return
        # A full batch means a burst: it goes to the sending thread while the next is claimed.
        self._send(claim.dispatches, background=len(claim.dispatches) >= self._batch)

    def request_relay(self) -> None:
        """Look for pending runs at the next cycle (a change notice: maybe a manual run)."""
        self._next_relay = None

    def wake_at(self, waiting: datetime | None = None) -> datetime | None:
        """When the outbox needs the next cycle: a relay due (after a backoff ends), a mark
        to retry; ``waiting`` is when the earliest run waiting in the store may go out."""
        now = self._clock()
        ready = max(self._retry_at or now, now)
        if self._busy():
            # Batches still on their way out hold the relay back: look again shortly.
            ready = max(ready, now + timedelta(seconds=BUSY_RELAY_S))
        times: list[datetime] = []
        if self._backlog or self._next_relay is None:
            times.append(ready)
        elif waiting is not None:
            times.append(max(waiting, self._next_relay, ready))
        if self._unmarked:
            times.append(now + timedelta(seconds=MARK_RETRY_S))
        return min(times) if times else None

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, try once more to record what was sent, release the broker."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout_s)
        self._retry_marks()
        if self._unmarked:
            log.warning(
                "outbox: %d published runs could not be recorded before exit; they stay "
                "pending for the next term (a Redis broker recognises them)",
                len(self._unmarked),
            )
        self._publisher.close()

    # -- relay

    def _relay_when_due(self, token: int) -> bool:
        """Relay if it is time to; True when new fires may be published behind it."""
        now = self._clock()
        if self._backing_off(now):
            return False
        if self._busy():
            # What is pending in the store now includes runs this process is sending or
            # has sent: relaying would publish them twice. Relay at a later cycle.
            return not self._backlog
        if not self._backlog and self._next_relay is not None and now < self._next_relay:
            return True
        self._next_relay = now + timedelta(seconds=RELAY_EVERY_S)
        self._backlog = not self._relay(token)
        return not self._backlog

    def _relay(self, token: int) -> bool:
        """Publish runs left pending, oldest fire first; True when none is left waiting."""
        while True:
            pending = pending_dispatches(
                self._engine, token, self._batch, self._clock(), self._guard
            )
            if not pending:
                return True
            if not self._send(pending, background=False) or self._unmarked:
                # Refused (or the lease ran out), or sent but not recorded: the store would
                # show these runs again.
                return False
            if len(pending) < self._batch:
                return True

    def _busy(self) -> bool:
        # Idle first: a batch finishing now adds to _unmarked before it counts as done.
        idle = self._queue is None or self._queue.unfinished_tasks == 0
        with self._lock:
            return not idle or bool(self._unmarked)

    # -- sending

    def _backing_off(self, now: datetime) -> bool:
        return self._retry_at is not None and now < self._retry_at

    def _send(self, dispatches: Sequence[Dispatch], *, background: bool) -> bool:
        """Publish now, or hand to the sending thread; False when not all went out now."""
        if not dispatches:
            return True
        if self._backing_off(self._clock()):
            return False
        if self._queue is None:
            return self._send_now(dispatches)
        if background:
            self._queue.put(dispatches)
            return False
        # Steady load: a thread hand-off only adds latency. Order is kept by letting the
        # queued batches go out first.
        self._queue.join()
        return self._send_now(dispatches)

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._send_now(batch)
            except Exception:  # this thread must survive; unsent runs stay pending
                log.exception("outbox: sending a batch of %d runs failed", len(batch or ()))
            finally:
                self._queue.task_done()

    def _send_now(self, dispatches: Sequence[Dispatch]) -> bool:
        if self._backing_off(self._clock()):
            return False
        if not self._lease.held():
            # Frozen or cut off past our deadline: a follower may lead by now and relay
            # these runs itself. They stay pending; publishing late could send them twice.
            return False
        sent = self._publisher.publish(dispatches)
        complete = len(sent) == len(dispatches)
        if complete:
            self._retry_at = None
        else:
            self._retry_at = self._clock() + timedelta(seconds=BROKER_BACKOFF_S)
            self._backlog = True
        self._mark(sent)
        return complete

    # -- recording

    def _mark(self, sent: list[str]) -> None:
        if not sent:
            return
        try:
            mark_dispatched(self._engine, sent, self._clock())
        except SQLAlchemyError as exc:
            # The broker holds these messages: remember them, never publish them again,
            # and record them once the store answers.
            with self._lock:
                self._unmarked.update(dict.fromkeys(sent))
            log.warning(
                "outbox: recording %d published runs failed (%s); retrying until it lands",
                len(sent),
                type(exc).__name__,
            )
            return
        self._publisher.recorded(sent)

    def _retry_marks(self) -> None:
        with self._lock:
            ids = list(self._unmarked)
        if not ids:
            return
        try:
            mark_dispatched(self._engine, ids, self._clock())
        except SQLAlchemyError as exc:
            self._mark_failures += 1
            if self._mark_failures % 20 == 1:  # about every 10 s while the store is away
                log.warning(
                    "outbox: %d published runs still unrecorded (%s); retrying",
                    len(ids),
                    type(exc).__name__,
                )
            return
        with self._lock:
            for run_id in ids:
                self._unmarked.pop(run_id, None)
        log.info(
            "outbox: recorded %d published runs after %d failed attempts",
            len(ids),
            self._mark_failures + 1,
        )
        self._mark_failures = 0
        self._publisher.recorded(ids)
