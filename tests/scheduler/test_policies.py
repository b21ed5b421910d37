"""Overlap, retry and pause policies at the store level, on both stores, with an injected now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update

from scheduler.firing.bulk import mark_dispatched
from scheduler.firing.claim import claim_due
from scheduler.firing.outbox_store import pending_dispatches
from scheduler.runs.outcomes import backoff, record_outcome
from scheduler.store.models import RunState, run_id_for, runs
from tests.factories import add_schedule, runs_of, schedule

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _start(engine: Engine, run_id: str, now: datetime) -> None:
    mark_dispatched(engine, [run_id], now)
    assert record_outcome(engine, run_id, RunState.STARTED, {"started_at": now}, now)


def test_skip_records_a_fire_skipped_while_the_previous_run_is_running(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, overlap="skip")
    (first,) = claim_due(engine, at(10), token, 10).dispatches
    _start(engine, first.run_id, at(10))

    assert claim_due(engine, at(20), token, 10).dispatches == []
    record_outcome(engine, first.run_id, RunState.SUCCEEDED, {"finished_at": at(25)}, at(25))
    (third,) = claim_due(engine, at(30), token, 10).dispatches

    states = [(r["scheduled_for"], r["state"]) for r in runs_of(engine, "s")]
    assert states == [(at(10), "succeeded"), (at(20), "skipped"), (at(30), "pending")]
    assert third.scheduled_for == at(30)
    assert schedule(engine, "s")["skipped_count"] == 1


def test_buffer_one_holds_one_fire_until_the_running_one_ends(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, overlap="buffer_one")
    (first,) = claim_due(engine, at(10), token, 10).dispatches
    _start(engine, first.run_id, at(10))

    assert claim_due(engine, at(20), token, 10).dispatches == []  # buffered
    assert claim_due(engine, at(30), token, 10).dispatches == []  # buffer full: skipped
    assert pending_dispatches(engine, token, 10, at(31)) == []  # still held

    record_outcome(engine, first.run_id, RunState.SUCCEEDED, {"finished_at": at(32)}, at(32))
    (released,) = pending_dispatches(engine, token, 10, at(33))

    assert released.scheduled_for == at(20)
    assert [r["state"] for r in runs_of(engine, "s")] == ["succeeded", "pending", "skipped"]


def test_buffer_one_holds_its_fire_behind_a_pending_run_going_out_in_the_same_pass(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, overlap="buffer_one")
    (first,) = claim_due(engine, at(10), token, 10).dispatches
    _start(engine, first.run_id, at(10))
    assert claim_due(engine, at(20), token, 10).dispatches == []  # buffered behind it
    # The first run is back to pending (its message lost at the broker, or never recorded
    # sent before a crash): the relay sends it, and only it.
    with engine.begin() as conn:
        conn.execute(
            update(runs).where(runs.c.id == first.run_id).values(state="pending", started_at=None)
        )

    assert [d.run_id for d in pending_dispatches(engine, token, 10, at(21))] == [first.run_id]


def test_cancel_previous_revokes_the_running_run_and_dispatches_the_new_fire(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, overlap="cancel_previous")
    (first,) = claim_due(engine, at(10), token, 10).dispatches
    _start(engine, first.run_id, at(10))

    claim = claim_due(engine, at(20), token, 10)

    assert claim.revoke == [first.run_id]
    assert [d.scheduled_for for d in claim.dispatches] == [at(20)]
    old = runs_of(engine, "s")[0]
    assert old["state"] == "revoked" and "cancel_previous" in old["reason"]
    # The worker's late "succeeded" cannot undo the revoke.
    assert not record_outcome(engine, first.run_id, RunState.SUCCEEDED, {}, at(21))


def test_failed_run_is_retried_with_exponential_backoff_then_marked_final(
    engine: Engine, token: int
) -> None:
    policy = {"max_attempts": 3, "backoff_seconds": 2, "backoff_max_seconds": 3}
    add_schedule(engine, "s", EVERY_10S, T0, retry=policy)
    (first,) = claim_due(engine, at(10), token, 10).dispatches

    _start(engine, first.run_id, at(10))
    record_outcome(engine, first.run_id, RunState.FAILED, {"finished_at": at(11)}, at(11))
    assert pending_dispatches(engine, token, 10, at(12.9)) == []
    (second,) = pending_dispatches(engine, token, 10, at(13))
    assert second.run_id == run_id_for("s", at(10), 2)

    _start(engine, second.run_id, at(13))
    record_outcome(engine, second.run_id, RunState.FAILED, {"finished_at": at(14)}, at(14))
    assert pending_dispatches(engine, token, 10, at(16.9)) == []  # 4 s capped at 3 s
    (third,) = pending_dispatches(engine, token, 10, at(17))
    _start(engine, third.run_id, at(17))
    record_outcome(engine, third.run_id, RunState.FAILED, {"finished_at": at(18)}, at(18))

    history = runs_of(engine, "s")
    assert [(r["attempt"], r["trigger"], r["state"]) for r in history] == [
        (1, "schedule", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "failed"),
    ]
    assert "final failure" in history[-1]["reason"]
    assert pending_dispatches(engine, token, 10, at(100)) == []
    row = schedule(engine, "s")
    assert (row["failure_count"], row["consecutive_failures"]) == (1, 1)


def test_backoff_doubles_and_caps() -> None:
    policy = {"max_attempts": 9, "backoff_seconds": 1, "backoff_max_seconds": 5}
    assert [backoff(policy, n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_schedule_pauses_after_consecutive_failures_with_the_reason(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, pause_after_failures=2, coalesce=False)
    for n, outcome in enumerate([RunState.FAILED, RunState.SUCCEEDED, RunState.FAILED]):
        (fire,) = claim_due(engine, at(10 * (n + 1)), token, 10).dispatches
        _start(engine, fire.run_id, fire.scheduled_for)
        record_outcome(engine, fire.run_id, outcome, {}, fire.scheduled_for)
    assert schedule(engine, "s")["state"] == "active"  # the success reset the streak

    (fire,) = claim_due(engine, at(40), token, 10).dispatches
    _start(engine, fire.run_id, at(40))
    record_outcome(engine, fire.run_id, RunState.FAILED, {}, at(41))

    row = schedule(engine, "s")
    assert row["state"] == "paused"
    assert row["state_reason"] == "paused after 2 consecutive failed runs"
    assert row["next_due_at"] is None
    assert (row["version"], row["updated_at"]) == (2, at(41))  # the ETag changes too
    assert claim_due(engine, at(100), token, 10).dispatches == []
    assert (row["run_count"], row["last_run_state"]) == (4, "failed")


def test_state_never_moves_backwards(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    (fire,) = claim_due(engine, at(10), token, 10).dispatches
    with engine.begin() as conn:
        conn.execute(update(runs).values(state="succeeded"))
    assert not record_outcome(engine, fire.run_id, RunState.STARTED, {}, at(11))
    assert runs_of(engine, "s")[0]["state"] == "succeeded"
