"""The leader lease: one replica at a time fires schedules.

Two backends share one contract. ``RedisLease`` (``SUNDIAL_REDIS_URL`` set) holds a Redis
key taken with ``SET NX PX`` under a random token, extended and released only by
compare-and-set scripts. ``SqlLease`` (embedded mode) keeps the same lease in the SQL
``scheduler_leader`` row. Either way every term takes a new fencing token from the SQL row,
which only ever grows: the claim transaction checks it, so an ex-leader cannot record fires.

The holder treats the lease as lost at its own monotonic deadline (TTL minus a margin)
unless a renewal succeeded before it, without waiting to hear an error.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import redis
from sqlalchemy import Connection, Engine, insert, select, update

from scheduler.errors import ClockSkew
from scheduler.leadership.skew import ClockGuard
from scheduler.store.models import LEADER_ROW, leader, leader_terms
from scheduler.timing.clock import Clock, monotonic, utcnow

log = logging.getLogger("sundial.lease")

# Fraction of the TTL kept back from the local deadline, for clock-rate drift and the
# time a renewal spends in flight.
SAFETY_MARGIN = 0.2


@dataclass(frozen=True)
class Replica:
    """Who we are, as shown by ``GET /v1/scheduler``."""

    replica_id: str
    hostname: str
    pid: int


class Lease(Protocol):
    """A leader lease with a fencing token per term."""

    token: int | None

    def acquire(self) -> bool:
        """Try to become leader; True if this replica now holds the lease."""

    def renew(self) -> bool:
        """Extend a held lease; False if it is no longer ours."""

    def release(self) -> None:
        """Give the lease up if still ours, so a follower can take over at once."""

    def held(self) -> bool:
        """True while the lease is ours and the local deadline has not passed."""


class _Deadline:
    """The monotonic instant after which this replica must assume it lost the lease."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._until: float | None = None

    def extend(self, started_at: float) -> None:
        # Measured from before the request was sent: the server's TTL started no earlier.
        self._until = started_at + self.ttl_s * (1 - SAFETY_MARGIN)

    def clear(self) -> None:
        self._until = None

    def alive(self) -> bool:
        return self._until is not None and monotonic() < self._until


def _new_term(conn: Connection, replica: Replica, now: datetime, ttl_s: float) -> int:
    """Record a new leadership term in SQL and return its fencing token; the term before,
    if it was never released, ended when its lease last expired (or now, if later)."""
    previous = conn.execute(
        select(leader.c.fencing_token, leader.c.lease_expires_at).where(leader.c.name == LEADER_ROW)
    ).one()
    expired = previous.lease_expires_at is not None and previous.lease_expires_at <= now
    conn.execute(
        update(leader_terms)
        .where(
            leader_terms.c.fencing_token == previous.fencing_token,
            leader_terms.c.ended_at.is_(None),
        )
        .values(
            ended_at=previous.lease_expires_at if expired else now,
            end_reason="expired" if expired else "superseded",
        )
    )
    conn.execute(
        update(leader)
        .where(leader.c.name == LEADER_ROW)
        .values(
            fencing_token=leader.c.fencing_token + 1,
            holder=replica.replica_id,
            hostname=replica.hostname,
            pid=replica.pid,
            since=now,
            lease_expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    token = int(
        conn.execute(select(leader.c.fencing_token).where(leader.c.name == LEADER_ROW)).scalar_one()
    )
    conn.execute(
        insert(leader_terms).values(
            fencing_token=token,
            holder=replica.replica_id,
            hostname=replica.hostname,
            pid=replica.pid,
            started_at=now,
        )
    )
    return token


def _check_clock(conn: Connection, guard: ClockGuard | None, now: datetime) -> None:
    """Refuse to open or extend a term with a wall clock the database disagrees with: the
    expiry written would be read by the other replicas' clocks, and the fires claimed
    under it would be timed by this one."""
    if guard is not None:
        guard.check(conn, now)


def _give_up(lease: Lease, reason: ClockSkew) -> None:
    log.error("lease: %s; giving up token %s", reason, lease.token)
    lease.release()


def _vacate(conn: Connection, replica: Replica, token: int, now: datetime) -> None:
    conn.execute(
        update(leader_terms)
        .where(leader_terms.c.fencing_token == token, leader_terms.c.ended_at.is_(None))
        .values(ended_at=now, end_reason="released")
    )
    conn.execute(
        update(leader)
        .where(
            leader.c.name == LEADER_ROW,
            leader.c.holder == replica.replica_id,
            leader.c.fencing_token == token,
        )
        .values(holder=None, lease_expires_at=None)
    )


class SqlLease:
    """The lease in the SQL leader row: for embedded mode, where there is no Redis."""

    def __init__(
        self,
        engine: Engine,
        replica: Replica,
        ttl_s: float,
        clock: Clock = utcnow,
        guard: ClockGuard | None = None,
    ) -> None:
        self._engine = engine
        self._replica = replica
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock
        self._guard = guard
        self._deadline = _Deadline(ttl_s)
        self.token: int | None = None

    def acquire(self) -> bool:
        """Take the row if it is free or its lease expired."""
        started = monotonic()
        now = self._clock()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(leader.c.holder, leader.c.lease_expires_at)
                .where(leader.c.name == LEADER_ROW)
                .with_for_update()
            ).one()
            if row.holder is not None and row.lease_expires_at and row.lease_expires_at > now:
                return False
            _check_clock(conn, self._guard, now)
            self.token = _new_term(conn, self._replica, now, self._ttl.total_seconds())
        self._deadline.extend(started)
        log.info("lease: %s acquired, fencing token %s", self._replica.replica_id, self.token)
        return True

    def renew(self) -> bool:
        """Extend the row's expiry if this term still owns it."""
        if self.token is None:
            return False
        started = monotonic()
        now = self._clock()
        try:
            with self._engine.begin() as conn:
                _check_clock(conn, self._guard, now)
                result = conn.execute(
                    update(leader)
                    .where(
                        leader.c.name == LEADER_ROW,
                        leader.c.holder == self._replica.replica_id,
                        leader.c.fencing_token == self.token,
                    )
                    .values(lease_expires_at=now + self._ttl)
                )
        except ClockSkew as exc:
            _give_up(self, exc)
            return False
        if result.rowcount != 1:
            self._lost()
            return False
        self._deadline.extend(started)
        return True

    def release(self) -> None:
        """Free the row if this term still owns it."""
        if self.token is None:
            return
        with self._engine.begin() as conn:
            _vacate(conn, self._replica, self.token, self._clock())
        log.info("lease: %s released token %s", self._replica.replica_id, self.token)
        self._lost()

    def held(self) -> bool:
        """True until the local deadline passes without a renewal."""
        return self.token is not None and self._deadline.alive()

    def _lost(self) -> None:
        self.token = None
        self._deadline.clear()


# Extend or delete only if the key still holds our token (never a plain EXPIRE or DEL).
# KEYS[1]: the key; ARGV[1]: the token; ARGV[2]: the new TTL in milliseconds.
COMPARE_AND_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """The lease as a Redis key holding a random token, with the term recorded in SQL."""

    def __init__(
        self,
        client: redis.Redis,
        engine: Engine,
        replica: Replica,
        ttl_s: float,
        key: str = "sundial:leader",
        clock: Clock = utcnow,
        guard: ClockGuard | None = None,
    ) -> None:
        self._guard = guard
        self._redis = client
        self._engine = engine
        self._replica = replica
        self._ttl_ms = int(ttl_s * 1000)
        self._key = key
        self._clock = clock
        self._deadline = _Deadline(ttl_s)
        self._secret: str | None = None
        self._renew = client.register_script(COMPARE_AND_EXTEND)
        self._release = client.register_script(COMPARE_AND_DELETE)
        self.token: int | None = None

    def acquire(self) -> bool:
        """``SET key token NX PX ttl``; on success open a new fencing term in SQL."""
        secret = secrets.token_hex(16)
        started = monotonic()
        if not self._redis.set(self._key, secret, nx=True, px=self._ttl_ms):
            return False
        try:
            with self._engine.begin() as conn:
                now = self._clock()
                _check_clock(conn, self._guard, now)
                self.token = _new_term(conn, self._replica, now, self._ttl_ms / 1000)
        except Exception:
            # No term without its fencing token: free the key rather than hold it idle.
            self._release(keys=[self._key], args=[secret])
            raise
        self._secret = secret
        self._deadline.extend(started)
        log.info("lease: %s acquired, fencing token %s", self._replica.replica_id, self.token)
        return True

    def renew(self) -> bool:
        """Compare-and-extend the key; also refresh the expiry shown in SQL."""
        if self._secret is None or self.token is None:
            return False
        started = monotonic()
        if not self._renew(keys=[self._key], args=[self._secret, self._ttl_ms]):
            log.warning("lease: %s lost the key (token %s)", self._replica.replica_id, self.token)
            self._lost()
            return False
        self._deadline.extend(started)
        now = self._clock()
        try:
            with self._engine.begin() as conn:
                _check_clock(conn, self._guard, now)
                conn.execute(
                    update(leader)
                    .where(leader.c.name == LEADER_ROW, leader.c.fencing_token == self.token)
                    .values(lease_expires_at=now + timedelta(milliseconds=self._ttl_ms))
                )
        except ClockSkew as exc:
            _give_up(self, exc)
            return False
        return True

    def release(self) -> None:
        """Compare-and-delete the key so a follower can take over without waiting a TTL."""
        if self._secret is None or self.token is None:
            return
        token = self.token
        try:
            self._release(keys=[self._key], args=[self._secret])
        finally:
            self._lost()
        with self._engine.begin() as conn:
            _vacate(conn, self._replica, token, self._clock())
        log.info("lease: %s released token %s", self._replica.replica_id, token)

    def held(self) -> bool:
        """True until the local deadline passes without a renewal."""
        return self.token is not None and self._deadline.alive()

    def _lost(self) -> None:
        self.token = None
        self._secret = None
        self._deadline.clear()

    def eviction_risk(self) -> str | None:
        """A warning if Redis may evict the lease key under memory pressure, else None."""
        try:
            policy = str(self._redis.config_get("maxmemory-policy").get("maxmemory-policy") or "")
        except redis.RedisError:
            return None
        if policy.startswith("allkeys") or policy.startswith("volatile"):
            return f"Redis maxmemory-policy is {policy}: the leader lease key may be evicted"
        return None
