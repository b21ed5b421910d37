"""One small test per lease state, for the SQL lease (both stores) and the Redis lease."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

import scheduler.leadership.lease as lease_module
from scheduler.firing.claim import check_fencing
from scheduler.leadership.lease import SAFETY_MARGIN, RedisLease, Replica, SqlLease, _new_term
from scheduler.store.db import make_engine
from scheduler.store.models import leader, leader_terms
from tests.services import unique_name

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
A = Replica("replica-a", "host-a", 1)
B = Replica("replica-b", "host-b", 2)


class FakeTime:
    """Wall and monotonic clocks the test moves by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(lease_module, "monotonic", lambda: fake.mono)
    return fake


def _leader_row(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(select(leader)).one()._mapping)


# --- SQL lease (embedded mode) -------------------------------------------------------


def test_sql_lease_acquires_when_free(engine: Engine, clock: FakeTime) -> None:
    lease = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert lease.acquire()
    assert lease.held()
    row = _leader_row(engine)
    assert row["holder"] == "replica-a" and row["fencing_token"] == lease.token


def test_sql_lease_refused_while_held(engine: Engine, clock: FakeTime) -> None:
    assert SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall).acquire()
    other = SqlLease(engine, B, ttl_s=10, clock=lambda: clock.wall)
    assert not other.acquire()
    assert not other.held() and other.token is None


def test_sql_lease_taken_over_after_expiry_with_a_new_fencing_token(
    engine: Engine, clock: FakeTime
) -> None:
    first = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert first.acquire()
    old_token = first.token
    clock.advance(11)
    second = SqlLease(engine, B, ttl_s=10, clock=lambda: clock.wall)
    assert second.acquire()
    assert second.token is not None and old_token is not None and second.token > old_token
    assert not first.renew()
    assert not first.held()


def test_sql_lease_renew_extends_expiry(engine: Engine, clock: FakeTime) -> None:
    lease = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert lease.acquire()
    clock.advance(5)
    assert lease.renew()
    clock.advance(6)  # 11 s after acquiring, 6 s after renewing
    assert lease.held()
    assert not SqlLease(engine, B, ttl_s=10, clock=lambda: clock.wall).acquire()


def test_sql_lease_steps_down_at_local_deadline_without_renewal(
    engine: Engine, clock: FakeTime
) -> None:
    lease = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert lease.acquire()
    clock.advance(10 * (1 - SAFETY_MARGIN) - 0.01)
    assert lease.held()
    clock.advance(0.02)
    assert not lease.held()


def test_sql_lease_release_frees_it_only_if_owned(engine: Engine, clock: FakeTime) -> None:
    first = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert first.acquire()
    clock.advance(11)
    second = SqlLease(engine, B, ttl_s=10, clock=lambda: clock.wall)
    assert second.acquire()
    first.release()  # stale: must not free B's lease
    assert _leader_row(engine)["holder"] == "replica-b"
    second.release()
    assert _leader_row(engine)["holder"] is None
    assert SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall).acquire()


# --- Redis lease ---------------------------------------------------------------------


@pytest.fixture
def redis_lease(
    redis_url: str, engine: Engine, clock: FakeTime
) -> Iterator[Callable[[Replica], RedisLease]]:
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    key = unique_name("sundial:test:leader")

    def make(replica: Replica, ttl_s: float = 10) -> RedisLease:
        return RedisLease(client, engine, replica, ttl_s, key=key, clock=lambda: clock.wall)

    make.key = key  # type: ignore[attr-defined]
    make.client = client  # type: ignore[attr-defined]
    yield make
    client.delete(key)
    client.close()


def test_redis_lease_acquires_with_random_token_and_ttl(redis_lease) -> None:
    lease = redis_lease(A)
    assert lease.acquire()
    value = redis_lease.client.get(redis_lease.key)
    assert value and len(value) == 32
    assert 0 < redis_lease.client.pttl(redis_lease.key) <= 10_000
    assert lease.held()


def test_redis_lease_refused_while_held(redis_lease) -> None:
    assert redis_lease(A).acquire()
    other = redis_lease(B)
    assert not other.acquire()
    assert other.token is None


def test_redis_lease_renew_extends_ttl(redis_lease) -> None:
    lease = redis_lease(A)
    assert lease.acquire()
    redis_lease.client.pexpire(redis_lease.key, 1000)
    assert lease.renew()
    assert redis_lease.client.pttl(redis_lease.key) > 5000


def test_redis_lease_detects_loss_of_key(redis_lease) -> None:
    lease = redis_lease(A)
    assert lease.acquire()
    redis_lease.client.delete(redis_lease.key)
    assert not lease.renew()
    assert not lease.held() and lease.token is None


def test_redis_lease_steps_down_at_local_deadline_without_renewal(
    redis_lease, clock: FakeTime
) -> None:
    lease = redis_lease(A)
    assert lease.acquire()
    clock.advance(10 * (1 - SAFETY_MARGIN) + 0.01)
    # The key may well still exist in Redis; the holder stops on its own clock anyway.
    assert redis_lease.client.exists(redis_lease.key)
    assert not lease.held()


def test_redis_lease_release_deletes_only_own_key(redis_lease) -> None:
    lease = redis_lease(A)
    assert lease.acquire()
    redis_lease.client.set(redis_lease.key, b"someone-else")
    lease.release()
    assert redis_lease.client.get(redis_lease.key) == b"someone-else"
    redis_lease.client.delete(redis_lease.key)

    again = redis_lease(A)
    assert again.acquire()
    again.release()
    assert not redis_lease.client.exists(redis_lease.key)
    assert redis_lease(B).acquire()


def test_fencing_token_keeps_growing_when_redis_forgets_the_key(redis_lease) -> None:
    first = redis_lease(A)
    assert first.acquire()
    redis_lease.client.delete(redis_lease.key)  # as after FLUSHALL or a restart
    second = redis_lease(B)
    assert second.acquire()
    assert second.token is not None and first.token is not None
    assert second.token == first.token + 1


def test_redis_lease_frees_the_key_when_no_fencing_term_can_be_recorded(
    redis_url: str, tmp_path: Path, clock: FakeTime
) -> None:
    client = redis.Redis.from_url(redis_url)
    key = unique_name("sundial:test:leader")
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    lease = RedisLease(client, broken, A, 10, key=key, clock=lambda: clock.wall)
    try:
        with pytest.raises(OperationalError):
            lease.acquire()
        assert not client.exists(key)
        assert not lease.held()
    finally:
        client.delete(key)
        client.close()
        broken.dispose()


def test_eviction_warning_only_for_policies_that_may_evict_the_lease_key(redis_lease) -> None:
    lease = redis_lease(A)
    policy = redis_lease.client.config_get("maxmemory-policy")["maxmemory-policy"]
    if policy in (b"noeviction", "noeviction"):
        assert lease.eviction_risk() is None
    redis_lease.client.config_get = lambda _name: {"maxmemory-policy": "allkeys-lru"}
    warning = lease.eviction_risk()
    assert warning is not None and "allkeys-lru" in warning


# --- leadership terms (for the fire timeline) -------------------------------------


def _terms(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(leader_terms).order_by(leader_terms.c.fencing_token))
        return [dict(r._mapping) for r in rows]


def test_each_term_is_recorded_and_a_release_ends_it(engine: Engine, clock: FakeTime) -> None:
    a = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    assert a.acquire()
    clock.advance(5)
    a.release()
    (term,) = _terms(engine)
    assert (term["holder"], term["started_at"], term["ended_at"], term["end_reason"]) == (
        "replica-a",
        T0,
        T0 + timedelta(seconds=5),
        "released",
    )


def test_a_term_never_released_ends_when_its_lease_last_expired(
    engine: Engine, clock: FakeTime
) -> None:
    a = SqlLease(engine, A, ttl_s=10, clock=lambda: clock.wall)
    b = SqlLease(engine, B, ttl_s=10, clock=lambda: clock.wall)
    assert a.acquire()
    clock.advance(4)
    assert a.renew()  # the lease now runs to T0 + 14
    clock.advance(30)  # A froze; nobody renewed
    assert b.acquire()
    first, second = _terms(engine)
    assert (first["ended_at"], first["end_reason"]) == (T0 + timedelta(seconds=14), "expired")
    assert (second["holder"], second["started_at"], second["ended_at"]) == (
        "replica-b",
        T0 + timedelta(seconds=34),
        None,
    )


# How each server makes the follower's lock wait give up (after the 10 s that prove the
# frozen session kept its lock), and what the frozen session finds when it runs again.
_FROZEN = {
    "postgresql": ("SET LOCAL lock_timeout = '10s'", "idle-in-transaction timeout"),
    "mariadb": ("SET SESSION innodb_lock_wait_timeout = 10", "gone away"),
}


@pytest.mark.parametrize("kind", sorted(_FROZEN))
def test_a_leader_frozen_inside_a_fenced_transaction_does_not_hold_up_the_next_term(
    new_database_url: Callable[[str], str], kind: str
) -> None:
    """The frozen leader's share lock on the leader row goes with its session, ended by
    the server once it sat idle for ``idle_in_transaction_s`` (the lease TTL in ``sundial
    scheduler``; whole seconds on MariaDB), not when the process runs again."""
    lock_wait, ended = _FROZEN[kind]
    url = new_database_url(kind)
    frozen, follower = make_engine(url, idle_in_transaction_s=0.5), make_engine(url)
    stuck: Connection | None = None
    try:
        stuck = frozen.connect()
        stuck.begin()
        check_fencing(stuck, 0)  # share-locks the leader row, then goes quiet
        started = time.monotonic()
        with follower.begin() as conn:
            # Without the server ending the frozen session this waits the whole 10 s.
            conn.execute(text(lock_wait))
            token = _new_term(conn, B, datetime.now(UTC), 10.0)
        assert token == 1
        assert time.monotonic() - started < 5
        with pytest.raises(DBAPIError, match=ended):
            stuck.execute(select(leader.c.fencing_token))
        if kind == "mariadb":
            # Only sessions idle inside a transaction: not wait_timeout, which would also
            # end every pooled connection left unused that long.
            with frozen.connect() as conn:
                limits = conn.execute(
                    text("SELECT @@SESSION.idle_transaction_timeout, @@SESSION.wait_timeout")
                ).one()
            with follower.connect() as conn:
                default_wait = conn.execute(text("SELECT @@SESSION.wait_timeout")).scalar_one()
            assert tuple(limits) == (1, default_wait)
    finally:
        if stuck is not None:  # closed, so that its database can be dropped if it held on
            stuck.invalidate()
        frozen.dispose()
        follower.dispose()
