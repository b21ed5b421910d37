"""Row locks of the claim on the servers that have them (PostgreSQL, MariaDB): a claim skips
schedules another transaction holds instead of waiting, and no new term can start while a
claim is in flight, so the fencing check it made holds until it commits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from scheduler.errors import LeadershipLost
from scheduler.firing.claim import check_fencing, claim_due
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.store.models import schedules
from tests.factories import add_schedule
from tests.services import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["postgresql", "mariadb"], indirect=True)

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}
TTL_S = 10


def _term(engine: Engine, holder: str, now: datetime) -> int | None:
    lease = SqlLease(engine, Replica(holder, "host", 1), ttl_s=TTL_S, clock=lambda: now)
    return lease.token if lease.acquire() else None


def _lock_waits(conn: Connection) -> int:
    """Sessions of this test's database waiting on a row lock right now."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    else:
        query = (
            "SELECT count(*) FROM information_schema.innodb_trx t "
            "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
            "WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()"
        )
    try:
        return int(conn.execute(text(query)).scalar_one())
    finally:
        # PostgreSQL shows the sessions as it first saw them in a transaction for the whole
        # transaction: end it, or a wait that begins after the first poll is never seen.
        conn.rollback()


def test_claim_skips_schedules_another_transaction_holds(engine: Engine) -> None:
    token = _term(engine, "r1", T0)
    assert token is not None
    for i in range(4):
        add_schedule(engine, f"s{i}", EVERY_10S, T0)
    now = T0 + timedelta(seconds=10)
    claimed: list[str] = []

    def claim() -> None:
        claimed.extend(d.schedule_id for d in claim_due(engine, now, token, 10).dispatches)

    with engine.begin() as holder:
        for held in ("s0", "s1"):
            # One key at a time: on a table this small MariaDB would answer an IN list with
            # an index scan that locks every row it reads.
            holder.execute(select(schedules.c.id).where(schedules.c.id == held).with_for_update())
        claimer = threading.Thread(target=claim)
        claimer.start()
        # Waiting on the lock instead of skipping would take the server's lock timeout.
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the claim waited on locked rows"
        assert sorted(claimed) == ["s2", "s3"]

    assert sorted(d.schedule_id for d in claim_due(engine, now, token, 10).dispatches) == [
        "s0",
        "s1",
    ]


def test_a_new_term_waits_for_the_claim_in_flight_then_fences_it_off(engine: Engine) -> None:
    old = _term(engine, "r1", T0)
    assert old is not None
    add_schedule(engine, "s", EVERY_10S, T0)
    later = T0 + timedelta(seconds=TTL_S * 3)  # r1's lease has long expired by then
    new: list[int | None] = []
    taker = threading.Thread(target=lambda: new.append(_term(engine, "r2", later)))

    with engine.begin() as claim:
        check_fencing(claim, old)  # what a claim does first; its lock lasts until commit
        taker.start()
        with engine.connect() as probe:
            # MariaDB serves information_schema.innodb_trx from a cache refreshed only when it is
            # 0.1 s old at a read: polling faster than that reads the stale copy forever.
            wait_for(lambda: _lock_waits(probe) > 0, 20, "the new term to wait on the claim", 0.25)
        assert new == [], "a new term started while a claim was in flight"
    taker.join(timeout=20)

    assert new and new[0] is not None and new[0] > old
    with pytest.raises(LeadershipLost):
        claim_due(engine, later, old, 10)
    with engine.connect() as conn:
        # Nothing was claimed under the stale term.
        assert conn.execute(select(func.count()).select_from(schedules)).scalar_one() == 1
