"""The clock-skew guard against the real databases' clocks (``scheduler/skew.py``): a
replica whose wall clock is an hour off claims nothing, relays nothing and cannot lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from scheduler.errors import ClockSkew
from scheduler.firing.claim import claim_due
from scheduler.firing.outbox_store import pending_dispatches
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.skew import ClockGuard, database_now
from scheduler.store.models import LEADER_ROW, leader
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule, runs_of

ALLOWED = timedelta(seconds=2)
STEPS = [(timedelta(hours=1), "ahead of"), (timedelta(hours=-1), "behind")]


class SteppedClock:
    """The real clock plus an offset the test changes: an NTP step."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def _server_clock(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite is a file read with this host's clock: there is no other clock")


def _guarded_lease(engine: Engine, clock: SteppedClock) -> SqlLease:
    """Replica r1's lease, read with ``clock`` and checked against the database's."""
    _server_clock(engine)
    guard = ClockGuard(ALLOWED, clock)
    return SqlLease(engine, Replica("r1", "h", 1), 10, clock=clock, guard=guard)


def _holder(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(leader.c.holder).where(leader.c.name == LEADER_ROW)).scalar()


def test_database_now_is_the_servers_clock_in_utc_and_none_for_sqlite(engine: Engine) -> None:
    with engine.connect() as conn:
        remote = database_now(conn)
    if engine.dialect.name == "sqlite":
        assert remote is None
        return
    assert remote is not None and remote.tzinfo is UTC
    assert abs(remote - utcnow()) < ALLOWED


@pytest.mark.parametrize(("step", "word"), STEPS)
def test_a_replica_whose_clock_stepped_an_hour_cannot_take_the_lease(
    engine: Engine, step: timedelta, word: str
) -> None:
    lease = _guarded_lease(engine, SteppedClock(step))
    with pytest.raises(ClockSkew, match=word):
        lease.acquire()
    assert lease.token is None and _holder(engine) is None


@pytest.mark.parametrize(("step", "word"), STEPS)
def test_a_leader_whose_clock_steps_an_hour_gives_the_lease_up_at_its_next_renewal(
    engine: Engine, step: timedelta, word: str
) -> None:
    clock = SteppedClock()
    lease = _guarded_lease(engine, clock)
    assert lease.acquire() and lease.renew() and _holder(engine) == "r1"
    clock.offset = step
    assert not lease.renew()
    assert lease.token is None and not lease.held()
    assert _holder(engine) is None, "the lease was kept: the others would wait for its expiry"


@pytest.mark.parametrize(("step", "word"), STEPS)
def test_a_claim_or_relay_under_a_stepped_clock_records_and_sends_nothing(
    engine: Engine, token: int, step: timedelta, word: str
) -> None:
    _server_clock(engine)
    now = utcnow()
    add_schedule(
        engine, "every-second", {"type": "interval", "seconds": 1}, now - timedelta(seconds=1.5)
    )
    clock = SteppedClock(step)
    guard = ClockGuard(ALLOWED, clock)
    with pytest.raises(ClockSkew, match=word):
        claim_due(engine, clock(), token, 100, guard=guard)
    with pytest.raises(ClockSkew, match=word):
        pending_dispatches(engine, token, 100, clock(), guard=guard)
    assert runs_of(engine, "every-second") == []
    clock.offset = timedelta(0)
    claim = claim_due(engine, clock(), token, 100, guard=guard)
    assert [d.schedule_id for d in claim.dispatches] == ["every-second"]


def test_a_slow_transaction_on_a_loaded_host_is_not_skew(engine: Engine) -> None:
    # ``now`` was read long before the database answered: the guard reads the local clock
    # again afterwards, so only a real disagreement between the clocks trips it.
    guard = ClockGuard(ALLOWED)
    with engine.connect() as conn:
        guard.check(conn, utcnow() - timedelta(seconds=30))
