"""The replica: keeps (or seeks) the lease, and while leader runs APScheduler's loop over
our SQL job store, claiming due fires in batches and publishing them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.exc import SQLAlchemyError

from scheduler.claim import next_due_at, pending_dispatches
from scheduler.clock import Clock, monotonic, utcnow
from scheduler.dispatch import Publisher
from scheduler.errors import LeadershipLost
from scheduler.jobstore import SqlJobStore
from scheduler.lease import Lease, Replica
from scheduler.models import replicas
from scheduler.outbox import Outbox

log = logging.getLogger("sundial.scheduler")

# After a store error, look again this soon rather than a whole poll interval later.
STORE_RETRY_S = 0.5
# Runs left pending (a crash, a manual trigger, a retry's backoff) are looked for this
# often, and at once after the broker refused; not at every cycle of a busy leader.
RELAY_EVERY_S = 0.5
# After a cycle that fired something, wait at least this long: fires a few milliseconds
# apart are claimed together instead of one cycle (and its fixed cost) each.
BUSY_GAP_S = 0.02


class FireCycle:
    """One pass of the leader's work; APScheduler's loop calls it and sleeps as it says."""

    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        publisher: Publisher,
        jobstore: SqlJobStore,
        poll_s: float,
        batch_size: int,
        clock: Clock = utcnow,
        threaded_publish: bool = False,
    ) -> None:
        self.outbox = Outbox(engine, publisher, lease, clock, threaded=threaded_publish)
        self._engine = engine
        self._lease = lease
        self._jobstore = jobstore
        self._poll_s = poll_s
        self._batch = batch_size
        self._clock = clock
        self._next_relay: datetime | None = None
        self._backlog = True  # a new leader first publishes what the last one left
        self._fired = False

    def __call__(self) -> float:
        """Claim and publish everything due; return seconds until the next look."""
        token = self._lease.token
        if token is None or not self._lease.held():
            return self._poll_s
        try:
            drained = self._maybe_relay(token)
            self._fired = False
            while True:
                now = self._clock()
                claim = self._jobstore.claim_due(now, token, self._batch)
                self._fired = self._fired or bool(claim.dispatches)
                if drained:
                    # Older runs still pending go first: these wait for the next relay.
                    # A full batch means a burst: publish it while the next is claimed.
                    full = len(claim.dispatches) == self._batch
                    self.outbox.send(claim.dispatches, background=full)
                if claim.revoke:
                    self.outbox.publisher.revoke(claim.revoke)
                if len(claim.dispatches) < self._batch or not self._lease.held():
                    break
        except LeadershipLost as exc:
            log.error("scheduler: fenced off, stepping down: %s", exc)
            self._step_down()
            return self._poll_s
        except SQLAlchemyError as exc:
            # The store is down: nothing can be claimed, so nothing is fired twice or lost;
            # the fires stay due and are claimed when it returns.
            log.error("scheduler: store unavailable (%s); retrying", type(exc).__name__)
            return min(STORE_RETRY_S, self._poll_s)
        return self._wait_s()

    def _step_down(self) -> None:
        try:
            self._lease.release()
        except Exception as exc:  # the term is stale anyway; its lease simply expires
            log.warning("scheduler: release after fencing failed: %s", exc)

    def _wait_s(self) -> float:
        try:
            nxt = next_due_at(self._engine)
        except SQLAlchemyError as exc:
            # Raised out of the cycle, this would end APScheduler's loop and the process.
            log.error("scheduler: store unavailable (%s); retrying", type(exc).__name__)
            return min(STORE_RETRY_S, self._poll_s)
        # A backlog is relayed as soon as the broker backoff (if any) allows.
        relay_at = self.outbox.retry_at if self.outbox.backing_off() else None
        if relay_at is None and self._backlog:
            relay_at = self._next_relay
        wakes = [t for t in (nxt, relay_at) if t is not None]
        if not wakes:
            return self._poll_s
        wait = max(0.0, min(self._poll_s, (min(wakes) - self._clock()).total_seconds()))
        return max(wait, BUSY_GAP_S) if self._fired else wait

    def request_relay(self) -> None:
        """Look for pending runs at the next cycle (a change notice: maybe a manual run)."""
        self._next_relay = None

    def _maybe_relay(self, token: int) -> bool:
        """Relay when it is time to; True when new fires may be published behind it."""
        now = self._clock()
        backlog = self._backlog or self.outbox.retry_at is not None
        # While batches are still on their way out, the runs pending in the store are
        # those batches: the relay would only send them twice.
        if (
            not self.outbox.idle()
            or self.outbox.backing_off()
            or not (backlog or self._next_relay is None or now >= self._next_relay)
        ):
            return not backlog and not self.outbox.backing_off()
        self._next_relay = now + timedelta(seconds=RELAY_EVERY_S)
        drained = self._relay(token)
        self._backlog = not drained
        return drained

    def _relay(self, token: int) -> bool:
        """Publish runs left pending by a crash, a broker outage or a manual trigger;
        True when none is left waiting, so newer fires may follow them out."""
        while True:
            pending = pending_dispatches(self._engine, token, self._batch, self._clock())
            if not pending:
                return True
            self.outbox.send(pending)
            if self.outbox.retry_at is not None:
                return False
            if len(pending) < self._batch:
                return True
            if not self.outbox.idle():
                # More may wait behind the batch on its way out: relay again next cycle.
                return False


class LeaseKeeper:
    """Seeks the lease, renews it every TTL/3 from its own thread, and heartbeats."""

    def __init__(
        self,
        lease: Lease,
        engine: Engine,
        replica: Replica,
        ttl_s: float,
        on_change: Callable[[], None],
        clock: Clock = utcnow,
    ) -> None:
        self._lease = lease
        self._engine = engine
        self._replica = replica
        self._renew_s = ttl_s / 3
        # Followers try often: a crashed leader is replaced within TTL + 2 s, and a lease
        # released on SIGTERM is taken well under a second later. An attempt is one
        # SET NX (or one short SQL transaction); the heartbeat keeps its TTL/3 pace.
        self._acquire_s = min(0.25, ttl_s / 3)
        self._next_heartbeat = 0.0
        self._on_change = on_change
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sundial-lease", daemon=True)

    def start(self) -> None:
        """Register the replica and begin seeking the lease."""
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                insert(replicas).values(
                    replica_id=self._replica.replica_id,
                    hostname=self._replica.hostname,
                    pid=self._replica.pid,
                    started_at=now,
                    last_seen_at=now,
                )
            )
        self._thread.start()

    def stop(self) -> None:
        """Stop, release the lease if held, and deregister."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._lease.release()
            with self._engine.begin() as conn:
                conn.execute(
                    delete(replicas).where(replicas.c.replica_id == self._replica.replica_id)
                )
        except Exception as exc:  # shutting down: report, but let the process exit
            log.warning("lease: clean shutdown incomplete: %s", exc)

    def step(self) -> None:
        """One acquire-or-renew attempt; the thread calls it, tests call it directly."""
        was_leader = self._lease.held()
        try:
            if self._lease.token is None:
                self._lease.acquire()
            else:
                self._lease.renew()
        except Exception as exc:  # Redis or SQL unreachable: the deadline decides, not this
            log.warning("lease: %s attempt failed: %s", type(exc).__name__, exc)
        if self._lease.held() != was_leader:
            log.info(
                "lease: %s is now %s",
                self._replica.replica_id,
                "leader" if self._lease.held() else "follower",
            )
            self._on_change()
        if monotonic() >= self._next_heartbeat:
            self._next_heartbeat = monotonic() + self._renew_s
            self._heartbeat()

    def _heartbeat(self) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    update(replicas)
                    .where(replicas.c.replica_id == self._replica.replica_id)
                    .values(last_seen_at=self._clock())
                )
        except SQLAlchemyError as exc:
            log.warning("lease: heartbeat failed: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # this thread must outlive any surprise, or no one renews
                log.exception("lease: unexpected error in the lease thread")
            self._stop.wait(self._renew_s if self._lease.held() else self._acquire_s)


class SundialScheduler(BlockingScheduler):  # type: ignore[misc]
    """APScheduler's blocking loop, with job processing replaced by our batched claim.

    APScheduler's own ``_process_jobs`` fetches, runs and updates one job at a time; ours
    claims a batch of due schedules in one transaction and publishes them together.
    """

    def __init__(self, cycle: Callable[[], float], jobstore: SqlJobStore) -> None:
        super().__init__(timezone="UTC")
        self._cycle = cycle
        self.add_jobstore(jobstore, "default")

    def _process_jobs(self) -> float:
        return self._cycle()

    def wakeup(self) -> None:
        """Make the loop look at the store now; a no-op until the loop has started."""
        if self._event is not None:
            self._event.set()
