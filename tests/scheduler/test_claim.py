"""The fenced, batched claim over both stores: each fire recorded once, never by a stale term."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, update

from scheduler.errors import LeadershipLost
from scheduler.firing.bulk import insert_runs, mark_dispatched, new_run
from scheduler.firing.claim import claim_due, due_times
from scheduler.firing.outbox_store import pending_dispatches
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.store.models import (
    LEADER_ROW,
    RunState,
    RunTrigger,
    leader,
    run_id_for,
    runs,
    schedules,
)
from tests.factories import add_schedule, runs_of, schedule

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}


def _term(engine: Engine, now: datetime = T0) -> int:
    lease = SqlLease(engine, Replica("r1", "host", 1), ttl_s=10, clock=lambda: now)
    assert lease.acquire()
    assert lease.token is not None
    return lease.token


def test_due_fire_is_recorded_once_and_schedule_advances(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "every10", EVERY_10S, T0)
    first = T0 + timedelta(seconds=10)

    assert claim_due(engine, first - timedelta(milliseconds=1), token, 100).dispatches == []
    claimed = claim_due(engine, first, token, 100).dispatches
    again = claim_due(engine, first, token, 100).dispatches

    assert [d.run_id for d in claimed] == [run_id_for("every10", first)]
    assert claimed[0].scheduled_for == first
    assert again == []
    row = schedule(engine, "every10")
    assert row["next_run_at"] == first + timedelta(seconds=10)
    assert row["last_run_at"] == first
    assert [r["state"] for r in runs_of(engine, "every10")] == ["pending"]


def test_stale_fencing_token_records_nothing(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "every10", EVERY_10S, T0)
    with engine.begin() as conn:
        conn.execute(
            update(leader)
            .where(leader.c.name == LEADER_ROW)
            .values(fencing_token=leader.c.fencing_token + 1)
        )

    with pytest.raises(LeadershipLost):
        claim_due(engine, T0 + timedelta(seconds=30), token, 100)

    assert runs_of(engine, "every10") == []
    assert schedule(engine, "every10")["next_run_at"] == T0 + timedelta(seconds=10)


def test_one_off_fires_once_and_completes(engine: Engine) -> None:
    token = _term(engine)
    run_at = T0 + timedelta(seconds=1)
    add_schedule(engine, "once", {"type": "date", "run_at": run_at.isoformat()}, T0)

    claimed = claim_due(engine, run_at + timedelta(milliseconds=5), token, 100).dispatches

    assert [d.scheduled_for for d in claimed] == [run_at]
    row = schedule(engine, "once")
    assert (row["state"], row["next_run_at"], row["next_due_at"]) == ("completed", None, None)
    assert claim_due(engine, run_at + timedelta(hours=1), token, 100).dispatches == []


def test_fires_beyond_grace_are_recorded_missed_and_latest_runs_coalesced(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "every10", EVERY_10S, T0, misfire_grace_seconds=25.0)

    # Down for 60 s: fires at +10 .. +60; those more than 25 s late are missed.
    claimed = claim_due(engine, T0 + timedelta(seconds=60), token, 100).dispatches

    states = {r["scheduled_for"]: (r["state"], r["reason"]) for r in runs_of(engine, "every10")}
    assert [states[T0 + timedelta(seconds=s)][0] for s in (10, 20, 30)] == ["missed"] * 3
    assert states[T0 + timedelta(seconds=40)][0] == "skipped"
    assert "coalesced" in (states[T0 + timedelta(seconds=50)][1] or "")
    assert states[T0 + timedelta(seconds=60)][0] == "pending"
    assert [d.scheduled_for for d in claimed] == [T0 + timedelta(seconds=60)]


def test_fire_already_recorded_by_an_earlier_term_is_not_dispatched_again(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "every10", EVERY_10S, T0)
    fire = T0 + timedelta(seconds=10)
    with engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id_for("every10", fire),
                schedule_id="every10",
                scheduled_for=fire,
                attempt=1,
                trigger="schedule",
                state="dispatched",
                task="sundial.echo",
                created_at=fire,
            )
        )

    assert claim_due(engine, fire, token, 100).dispatches == []
    assert len(runs_of(engine, "every10")) == 1


def test_batch_limit_leaves_the_rest_due_for_the_next_claim(engine: Engine) -> None:
    token = _term(engine)
    for i in range(5):
        add_schedule(engine, f"s{i}", EVERY_10S, T0)
    now = T0 + timedelta(seconds=10)

    first = claim_due(engine, now, token, 3).dispatches
    second = claim_due(engine, now, token, 3).dispatches

    assert len(first) == 3 and len(second) == 2
    assert {d.schedule_id for d in first + second} == {f"s{i}" for i in range(5)}
    assert due_times(engine) == (T0 + timedelta(seconds=20), None, None)


def test_racing_claims_record_each_fire_once(engine: Engine) -> None:
    token = _term(engine)
    for i in range(40):
        add_schedule(engine, f"s{i}", EVERY_10S, T0)
    now = T0 + timedelta(seconds=10)
    results: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(slot: int) -> None:
        barrier.wait()
        for _ in range(10):
            results[slot].extend(d.run_id for d in claim_due(engine, now, token, 7).dispatches)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    everything = results[0] + results[1]
    assert len(everything) == 40
    assert len(set(everything)) == 40


def test_pending_runs_are_relayed_in_fire_order_until_marked_dispatched(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "every10", EVERY_10S, T0, coalesce=False)
    claimed = claim_due(engine, T0 + timedelta(seconds=30), token, 100).dispatches
    assert len(claimed) == 3

    relayed = pending_dispatches(engine, token, 100, T0 + timedelta(seconds=31))
    assert [d.run_id for d in relayed] == [d.run_id for d in claimed]

    mark_dispatched(engine, [claimed[0].run_id], T0 + timedelta(seconds=31))
    assert [
        d.run_id for d in pending_dispatches(engine, token, 100, T0 + timedelta(seconds=31))
    ] == [d.run_id for d in claimed[1:]]
    dispatched = runs_of(engine, "every10")[0]
    assert dispatched["state"] == "dispatched"
    assert dispatched["dispatched_at"] == T0 + timedelta(seconds=31)


def test_expires_is_counted_from_the_scheduled_time(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "exp", EVERY_10S, T0, expires_seconds=5.0)
    (claimed,) = claim_due(engine, T0 + timedelta(seconds=12), token, 100).dispatches
    assert claimed.expires_at == T0 + timedelta(seconds=15)


def test_poisoned_row_is_quarantined_and_others_still_fire(engine: Engine) -> None:
    token = _term(engine)
    add_schedule(engine, "good", EVERY_10S, T0)
    add_schedule(engine, "poisoned", EVERY_10S, T0)
    with engine.begin() as conn:  # corrupted behind the API's back
        conn.execute(
            update(schedules)
            .where(schedules.c.id == "poisoned")
            .values(trigger={"type": "cron", "expression": "not a crontab"})
        )

    claimed = claim_due(engine, T0 + timedelta(seconds=10), token, 100).dispatches

    assert [d.schedule_id for d in claimed] == ["good"]
    row = schedule(engine, "poisoned")  # kept for a human, not deleted
    assert row["state"] == "paused" and row["next_due_at"] is None
    assert row["state_reason"].startswith("quarantined: InvalidSchedule")
    assert row["version"] == 2  # a pause is a change: clients holding an ETag see it
    assert runs_of(engine, "poisoned") == []


def test_a_new_run_is_stored_with_every_field_the_builder_sets(engine: Engine) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    row = new_run(
        run_id="r-1",
        schedule_id="s",
        scheduled_for=T0,
        task="sundial.echo",
        trigger=RunTrigger.RETRY,
        now=T0 + timedelta(seconds=1),
        attempt=2,
        state=RunState.SKIPPED,
        fencing_token=7,
        reason="why",
        due_at=T0 + timedelta(seconds=5),
        hold_while_busy=True,
        schedule_version=3,
    )
    with engine.begin() as conn:
        assert insert_runs(conn, [row]) == {"r-1"}

    (stored,) = runs_of(engine, "s")
    assert {k: stored[k] for k in row} == row
