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

from scheduler.errors import ClockSkew, LeadershipLost
from scheduler.firing.claim import due_times
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Lease, Replica
from scheduler.metrics import SchedulerMetrics, private
from scheduler.store.jobstore import SqlJobStore
from scheduler.store.models import replicas
from scheduler.timing.clock import Clock, monotonic, utcnow

log = logging.getLogger("sundial.scheduler")

# After a store error, look again this soon rather than a whole poll interval later.
STORE_RETRY_S = 0.5
# After a cycle that fired something, wait at least this long: fires a few milliseconds
# apart are claimed together instead of one cycle (and its fixed cost) each.
BUSY_GAP_S = 0.02


class FireCycle:
    """One pass of the leader's work; APScheduler's loop calls it and sleeps as it says.

    It claims what is due and asks the outbox to publish each claim; the outbox decides
    whether older pending runs go first and when it needs the loop back. With ``ahead``,
    fires due within that window are claimed before their instant and held by the outbox,
    which only publishes them when the instant comes.
    """

    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        outbox: Outbox,
        jobstore: SqlJobStore,
        poll_s: float,
        batch_size: int,
        clock: Clock = utcnow,
        metrics: SchedulerMetrics | None = None,
        ahead: timedelta = timedelta(0),
    ) -> None:
        self._metrics = metrics or private()
        self._engine = engine
        self._lease = lease
        self._outbox = outbox
        self._jobstore = jobstore
        self._poll_s = poll_s
        self._batch = batch_size
        self._clock = clock
        self._ahead = ahead
        self._fired = False
        # When the loop will next look unasked; None while a cycle runs, so a change
        # committed after the cycle read the store's due times is never taken as seen.
        self._next_look: datetime | None = None

    def __call__(self) -> float:
        """Claim and publish everything due; return seconds until the next look."""
        self._next_look = None
        wait = self._cycle()
        self._next_look = self._clock() + timedelta(seconds=wait)
        return wait

    def looks_by(self, due: datetime) -> bool:
        """Whether the loop will look unasked in time for a fire due at ``due`` (claimed
        ``ahead`` of it): a change notice due then need not wake it."""
        planned = self._next_look
        return planned is not None and planned <= due - self._ahead

    def _cycle(self) -> float:
        token = self._lease.token
        if token is None or not self._lease.held():
            self._outbox.drop_prepared()
            return self._poll_s
        try:
            self._outbox.begin(token)
            self._fired = False
            while True:
                with self._metrics.claiming():
                    claim = self._jobstore.claim_due(self._clock(), token, self._batch, self._ahead)
                self._metrics.claimed(claim)
                self._fired = self._fired or bool(claim.dispatches)
                self._outbox.publish(claim)
                # A long burst of claims must not hold back fires whose instant came.
                self._outbox.release_due(token)
                if len(claim.dispatches) < self._batch or not self._lease.held():
                    break
        except ClockSkew as exc:
            log.error("scheduler: %s; not firing, stepping down", exc)
            self._step_down()
            return self._poll_s
        except LeadershipLost as exc:
            log.error("scheduler: fenced off, stepping down: %s", exc)
            self._outbox.drop_prepared()
            self._step_down()
            return self._poll_s
        except SQLAlchemyError as exc:
            self._metrics.store_error("cycle")
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
            due = due_times(self._engine)
        except SQLAlchemyError as exc:
            self._metrics.store_error("wait")
            # Raised out of the cycle, this would end APScheduler's loop and the process.
            log.error("scheduler: store unavailable (%s); retrying", type(exc).__name__)
            return min(STORE_RETRY_S, self._poll_s)
        claim_at = None if due.fire is None else due.fire - self._ahead
        now = self._clock()
        wait = self._until(now, claim_at, due.policed, self._outbox.wake_at(due.run))
        if self._fired:
            wait = max(wait, BUSY_GAP_S)
        # A prepared fire's instant is kept to the millisecond: no gap, no polling slack.
        return min(wait, self._until(now, self._outbox.release_at()))

    def _until(self, now: datetime, *instants: datetime | None) -> float:
        """Seconds from ``now`` to the earliest instant, within ``[0, poll]``."""
        known = [t for t in instants if t is not None]
        if not known:
            return self._poll_s
        return max(0.0, min(self._poll_s, (min(known) - now).total_seconds()))


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
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self._metrics = metrics or private()
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
            elif not self._lease.renew():
                self._metrics.renew_failed("lost")
        except Exception as exc:  # Redis or SQL unreachable: the deadline decides, not this
            if self._lease.token is not None:
                self._metrics.renew_failed("error")
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
        # Taken before the transaction: it reads the store itself (the outbox's size).
        snapshot = self._metrics.snapshot(self._clock())
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    update(replicas)
                    .where(replicas.c.replica_id == self._replica.replica_id)
                    .values(last_seen_at=self._clock(), metrics=snapshot)
                )
        except SQLAlchemyError as exc:
            self._metrics.store_error("heartbeat")
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
