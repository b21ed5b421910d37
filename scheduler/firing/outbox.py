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
leader claims the next batch while the last one is being published; batches queued behind
each other are pushed first and recorded after (within ``MARK_WITHIN_S``). While an
instant's held runs are released, the thread records nothing until the release is over (or
``MARK_WITHIN_S`` has passed): the checks between its batches would otherwise leave the
queue empty each time, and the records would take the broker's turn and the store's from
the next batch. Once a batch is refused, nothing newer goes out before it: the batches
queued behind it, the rest of the release and the rest of the cycle's claims stay pending,
and the relay sends them all in fire-time order.

**Fire ahead.** A claim may hand over runs prepared ahead of their instant (``due_at`` in
the future): their messages are built at once and held here, and :meth:`Outbox.release_due`
publishes them when their instant comes, after one fenced check in the store that withdraws
those whose schedule was paused, changed or deleted meanwhile. Each cycle releases the held
runs whose instant has come before it relays (the relay would find them pending); runs still
to come do not hold the relay back, so a window longer than the gaps between fires cannot
starve it. Dropped ones (a broker refusal, a new term) stay pending in the store and the
relay sends them, once due, like any other pending run; while older runs wait there (a
refusal), none is released ahead of them. Runs prepared while fires could not go out are
held once the relay has run.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.firing.bulk import mark_dispatched
from scheduler.firing.claim import Claim, Dispatch
from scheduler.firing.dispatch import Publisher
from scheduler.firing.outbox_store import pending_dispatches, prepared_dispatches, release
from scheduler.leadership.lease import Lease
from scheduler.leadership.skew import ClockGuard
from scheduler.metrics import SchedulerMetrics, private
from scheduler.timing.clock import Clock, monotonic

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
# Batches pushed back to back are recorded at the latest this long after the first of them
# (an instant of 10,000 held runs is ~10 checks and pushes of 20 to 50 ms each): what a
# leader killed meanwhile leaves pending, for the next term to relay.
MARK_WITHIN_S = 0.5
# At most this many of an earlier term's prepared runs are taken over; any beyond stay
# pending and the relay sends them once due.
ADOPT_LIMIT = 100_000


def _due(dispatch: Dispatch) -> datetime:
    assert dispatch.due_at is not None
    return dispatch.due_at


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
        metrics: SchedulerMetrics | None = None,
        guard: ClockGuard | None = None,
    ) -> None:
        self._metrics = metrics or private()
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
        # Runs prepared ahead of their instant, by due time; their messages are built.
        self._prepared: list[Dispatch] = []
        # Runs prepared ahead in the store and not held here (an earlier term's, or this
        # term's claimed while fires could not go out) are to be taken over after a relay.
        self._adopt = False
        # Set while release_due checks and hands over an instant's held runs.
        self._releasing = threading.Event()
        # Batches for the sending thread; None closes it, () asks it to record what it pushed.
        self._queue: queue.Queue[Sequence[Dispatch] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=QUEUE_BATCHES)
            self._thread = threading.Thread(target=self._run, name="sundial-outbox", daemon=True)
            self._thread.start()

    def begin(self, token: int) -> None:
        """Start a leader's cycle under ``token``: record what the broker accepted earlier,
        publish the held runs whose instant has come, then relay pending runs if it is time.

        Raises what the store access of those raises (``SQLAlchemyError``,
        :class:`~scheduler.errors.LeadershipLost`); the cycle deals with those.
        """
        if token != self._term:
            # A new term relays first: the last one may have left runs pending (prepared
            # ones included: their check at the instant was under the old token).
            self._term = token
            self._backlog = True
            self._next_relay = None
            self.drop_prepared()
            self._adopt = True
        self._retry_marks()
        # Held runs whose instant has come go first (or, behind older runs waiting in the
        # store, back to it): a relay would find them pending. Those still to come do not
        # hold the relay back, so a window longer than the gaps between fires cannot
        # starve it. One that comes due while the relay runs may be relayed: its check at
        # the instant then finds it no longer pending.
        self.release_due(token)
        self._open = self._relay_when_due(token)

    def publish(self, claim: Claim) -> None:
        """Publish a claim's fires, unless older runs must go first (then they stay pending
        and the relay sends them in order); send its revokes."""
        if claim.revoke:
            self._publisher.revoke(claim.revoke)
        if not self._open or self._backlog:
            # Pending in the store: the due ones go out with the relay, in order; those
            # prepared ahead are held once it has run, to go out at their instant. A refusal
            # earlier in this cycle counts too: a long burst outlasts the backoff, and its
            # later fires must not go out ahead of the refused ones.
            self._adopt = self._adopt or any(d.due_at is not None for d in claim.dispatches)
            return
        now = self._clock()
        ready = [d for d in claim.dispatches if d.due_at is None or d.due_at <= now]
        ahead = [d for d in claim.dispatches if d.due_at is not None and d.due_at > now]
        self._hold(ahead)
        # A full batch means a burst: it goes to the sending thread while the next is claimed.
        self._send(ready, background=len(ready) >= self._batch)

    def _hold(self, ahead: Sequence[Dispatch]) -> None:
        if ahead:
            self._publisher.prepare(ahead)
            self._prepared.extend(ahead)
            self._prepared.sort(key=_due)

    def release_due(self, token: int) -> None:
        """Publish the prepared runs whose instant has come, never one before it; each batch
        is checked in the store first (:func:`scheduler.firing.outbox_store.release`).

        Raises what that check raises (``SQLAlchemyError``,
        :class:`~scheduler.errors.LeadershipLost`); the runs not yet sent stay pending in
        the store for the relay.
        """
        now = self._clock()
        cut = bisect.bisect_right(self._prepared, now, key=_due)
        if not cut:
            return
        due, self._prepared = self._prepared[:cut], self._prepared[cut:]
        # With older runs waiting in the store (a refusal), these go out behind them: they
        # stay pending and the relay sends them all in fire-time order.
        stale = token != self._term or self._backlog or not self._lease.held()
        if stale or self._backing_off(now):
            self._let_go(due)
            return
        self._releasing.set()
        try:
            self._release(token, due, now)
        finally:
            self._releasing.clear()
            if self._queue is not None:
                self._queue.put(())  # the sending thread records what the release pushed

    def _release(self, token: int, due: list[Dispatch], now: datetime) -> None:
        for start in range(0, len(due), self._batch):
            if self._backlog or self._backing_off(self._clock()):
                # Refused (the sending thread saw it, maybe after a check longer than the
                # backoff): the rest stay pending and go out behind the relay, in order.
                self._let_go(due[start:])
                return
            chunk = due[start : start + self._batch]
            try:
                going = release(self._engine, token, [d.run_id for d in chunk], now, self._guard)
            except BaseException:
                self._let_go(due[start:])
                raise
            if len(going) < len(chunk):
                self._let_go(chunk, going)
                chunk = [d for d in chunk if d.run_id in going]
            # Every batch to the sending thread: a send from here would wait for the marks
            # the thread holds back until this release is over.
            self._send(chunk, background=True)

    def release_at(self) -> datetime | None:
        """The instant of the earliest prepared run, when one is held."""
        return self._prepared[0].due_at if self._prepared else None

    def drop_prepared(self) -> None:
        """Forget the prepared runs held here; they stay pending in the store, for the relay
        (a leader that stepped down, a new term)."""
        self._let_go(self._prepared)
        self._prepared = []

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
        """Send what is queued (unless a refusal came first: then it stays pending), try once
        more to record what was sent, release the broker."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout_s)
        self.drop_prepared()
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
        if self._relay_due(now) and self._queue is not None:
            # Wait for the batches on their way out (an instant's, a burst's) rather than
            # skip the relay: with held instants closer together than BUSY_RELAY_S, every
            # cycle would find some and the relay would never run. Their marks come within
            # MARK_WITHIN_S; one of them may have been refused meanwhile.
            self._queue.join()
            now = self._clock()
            if self._backing_off(now):
                return False
        if self._busy():
            # What is pending in the store now includes runs this process is sending or
            # has sent: relaying would publish them twice. Relay at a later cycle.
            return not self._backlog
        if not self._relay_due(now):
            return True
        self._next_relay = now + timedelta(seconds=RELAY_EVERY_S)
        self._backlog = not self._relay(token)
        if not self._backlog and self._adopt:
            # Fires prepared in the store for instants still to come: held here, they go
            # out at their instant and before any later fire of theirs. The store's list
            # includes the runs held now: it replaces them once it has been read.
            adopted = prepared_dispatches(self._engine, token, ADOPT_LIMIT, now)
            self.drop_prepared()
            self._hold(adopted)
            self._adopt = False
        return not self._backlog

    def _relay_due(self, now: datetime) -> bool:
        return self._backlog or self._next_relay is None or now >= self._next_relay

    def _relay(self, token: int) -> bool:
        """Publish runs left pending, oldest fire first; True when none is left waiting."""
        while True:
            pending = pending_dispatches(
                self._engine, token, self._batch, self._clock(), self._guard
            )
            if not pending:
                return True
            # The sending thread is idle (_relay_when_due saw to it): these go out from here.
            if not self._send_now(pending) or self._unmarked:
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

    def _send(self, dispatches: Sequence[Dispatch], *, background: bool) -> None:
        """Publish new fires now, or hand them to the sending thread; while the broker backs
        off or older runs wait in the store (a refusal, maybe of a batch this waited for)
        they stay pending, to go out behind them with the relay."""
        if not dispatches:
            return
        if self._queue is not None and not background:
            # Steady load: a thread hand-off only adds latency. Order is kept by letting the
            # queued batches go out first.
            self._queue.join()
        if self._backlog or self._backing_off(self._clock()):
            self._let_go(dispatches)
        elif self._queue is not None and background:
            self._queue.put(dispatches)
        else:
            self._send_now(dispatches)

    def _run(self) -> None:
        assert self._queue is not None
        # Batches pushed and not yet recorded: while more wait in the queue (a burst) or an
        # instant's release goes on, they are pushed first and recorded after, so the last
        # message of a burst does not wait for the marks of all before it (~30 ms a
        # thousand). The relay stays off meanwhile: a batch is not done until its mark is.
        # At most MARK_WITHIN_S passes before they are recorded: a leader killed meanwhile
        # leaves them pending, and the next term relays them (a Redis broker recognises
        # them; RabbitMQ would deliver them again).
        unrecorded: list[tuple[list[str], datetime]] = []
        taken = 0  # batches taken and not yet done: their marks are still to come
        since = 0.0  # when the oldest of them was pushed (monotonic)
        while True:
            wait = max(0.0, since + MARK_WITHIN_S - monotonic()) if taken else None
            try:
                batch = self._queue.get(timeout=wait)
                taken += 1
            except queue.Empty:
                batch = ()  # time is up while an instant's check goes on: record
            try:
                if batch and self._backlog:
                    # An earlier batch was refused (or a new term began): this one stays
                    # pending and goes out behind it, with the relay.
                    self._let_go(batch)
                elif batch:
                    if not unrecorded:
                        since = monotonic()
                    unrecorded.append(self._push(batch))
            except Exception:  # this thread must survive; unsent runs stay pending
                log.exception("outbox: sending a batch of %d runs failed", len(batch or ()))
            finally:
                more = not self._queue.empty() or self._releasing.is_set()
                if batch is None or not more or monotonic() - since >= MARK_WITHIN_S:
                    self._mark_all(unrecorded)
                    for _ in range(taken):
                        self._queue.task_done()
                    taken = 0
            if batch is None:
                return

    def _mark_all(self, unrecorded: list[tuple[list[str], datetime]]) -> None:
        while unrecorded:
            sent, handed_at = unrecorded.pop(0)
            try:
                self._mark(sent, handed_at)
            except Exception:  # the runs were sent; the store still shows them pending
                log.exception("outbox: recording a batch of %d sent runs failed", len(sent))

    def _send_now(self, dispatches: Sequence[Dispatch]) -> bool:
        sent, handed_at = self._push(dispatches)
        self._mark(sent, handed_at)
        return len(sent) == len(dispatches)

    def _push(self, dispatches: Sequence[Dispatch]) -> tuple[list[str], datetime]:
        """Hand ``dispatches`` to the broker: the runs it accepted (none when it may not be
        used now) and when they were handed over."""
        # dispatched_at is when the message was handed over: a worker may start the run
        # before the broker's confirmation is back (RabbitMQ), so not the time of the mark.
        handed_at = self._clock()
        if self._backing_off(handed_at) or not self._lease.held():
            # Not held: frozen or cut off past our deadline, a follower may lead by now and
            # relay these runs itself. They stay pending; publishing late could send them
            # twice.
            self._let_go(dispatches)
            return [], handed_at
        with self._metrics.publishing():
            sent = self._publisher.publish(dispatches)
        self._metrics.published_batch(dispatches, sent, self._clock())
        if len(sent) == len(dispatches):
            self._retry_at = None
        else:
            self._retry_at = self._clock() + timedelta(seconds=BROKER_BACKOFF_S)
            self._backlog = True
            self._let_go(dispatches, set(sent))
        return sent, handed_at

    def _let_go(self, dispatches: Sequence[Dispatch], sent: Collection[str] = ()) -> None:
        """Drop the messages built ahead for the runs not sent: they stay pending in the
        store, and the relay builds its own."""
        self._publisher.discard([d.run_id for d in dispatches if d.run_id not in sent])

    # -- recording

    def _mark(self, sent: list[str], handed_at: datetime) -> None:
        if not sent:
            return
        try:
            mark_dispatched(self._engine, sent, handed_at)
        except SQLAlchemyError as exc:
            self._metrics.store_error("mark")
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
            self._metrics.store_error("mark")
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
