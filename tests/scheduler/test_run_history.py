"""Reads of the run history for the dashboard, on both stores, with fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update

from scheduler.firing.bulk import mark_dispatched
from scheduler.firing.claim import claim_due
from scheduler.runs.outcomes import record_outcome
from scheduler.runs.run_history import (
    FAILURE_PAUSE_PREFIX,
    QUARANTINE_PREFIX,
    attempts_of,
    counts_by_state,
    failing_schedules,
    held_schedules,
    recent_states,
    runs_in_state,
)
from scheduler.store.models import RunState, schedules
from tests.factories import add_run, add_schedule

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_recent_states_are_the_newest_runs_of_each_schedule(engine: Engine) -> None:
    for name in ("a", "b", "idle"):
        add_schedule(engine, name, EVERY_10S, T0)
    for n in range(1, 13):
        add_run(engine, "a", at(10 * n), state="succeeded" if n % 3 else "failed")
    add_run(engine, "b", at(5), state="missed")

    with engine.connect() as conn:
        strips = recent_states(conn, ["a", "b", "idle"], per_schedule=10)

    assert [r["scheduled_for"] for r in strips["a"]] == [at(10 * n) for n in range(12, 2, -1)]
    assert [r["state"] for r in strips["a"]][:3] == ["failed", "succeeded", "succeeded"]
    assert [r["state"] for r in strips["b"]] == ["missed"]
    assert strips["idle"] == []


def test_attempts_of_a_fire_are_its_retry_chain_in_order(engine: Engine) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    add_run(engine, "s", at(10), state="failed")
    add_run(engine, "s", at(10), state="succeeded", attempt=2, trigger="retry")
    add_run(engine, "s", at(20), state="succeeded")

    with engine.connect() as conn:
        chain = attempts_of(conn, "s", at(10))

    assert [(r["attempt"], r["trigger"], r["state"]) for r in chain] == [
        (1, "schedule", "failed"),
        (2, "retry", "succeeded"),
    ]


def test_runs_in_state_span_schedules_newest_first_and_page_by_cursor(engine: Engine) -> None:
    add_schedule(engine, "a", EVERY_10S, T0)
    add_schedule(engine, "b", EVERY_10S, T0)
    add_run(engine, "a", at(10), state="failed")
    add_run(engine, "b", at(20), state="failed")
    add_run(engine, "a", at(30), state="succeeded")
    add_run(engine, "b", at(40), state="failed")
    add_run(engine, "a", at(-7200), state="failed")

    with engine.connect() as conn:
        first = runs_in_state(conn, RunState.FAILED, since=at(0), limit=2)
        last = first[-1]
        rest = runs_in_state(
            conn,
            RunState.FAILED,
            since=at(0),
            before=(last["scheduled_for"], last["id"]),
            limit=2,
        )
        everything = runs_in_state(conn, RunState.FAILED, limit=10)

    assert [(r["schedule_id"], r["scheduled_for"]) for r in first] == [("b", at(40)), ("b", at(20))]
    assert [(r["schedule_id"], r["scheduled_for"]) for r in rest] == [("a", at(10))]
    assert len(everything) == 4


def test_counts_by_state_cover_the_hour_and_the_day_and_stop_at_the_cap(engine: Engine) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    now = at(86_400)
    for n in range(5):  # inside the last hour
        add_run(engine, "s", now - timedelta(minutes=10 + n), state="succeeded")
    for n in range(3):  # earlier today
        add_run(engine, "s", now - timedelta(hours=5 + n), state="succeeded")
    add_run(engine, "s", now - timedelta(minutes=1), state="failed")
    add_run(engine, "s", now - timedelta(days=2), state="failed")  # too old

    with engine.connect() as conn:
        counts = counts_by_state(conn, now - timedelta(hours=1), now - timedelta(days=1))
        capped = counts_by_state(conn, now - timedelta(hours=1), now - timedelta(days=1), cap=6)

    assert (counts[RunState.SUCCEEDED].hour, counts[RunState.SUCCEEDED].day) == (5, 8)
    assert (counts[RunState.FAILED].hour, counts[RunState.FAILED].day) == (1, 1)
    assert counts[RunState.MISSED].day == 0
    assert not counts[RunState.SUCCEEDED].capped
    assert capped[RunState.SUCCEEDED].day == 6 and capped[RunState.SUCCEEDED].capped
    assert capped[RunState.SUCCEEDED].hour == 5  # the newest rows hold the whole hour


def _cycle(engine: Engine, token: int, now: datetime, failing: set[str]) -> None:
    """One claim at ``now``; the runs of ``failing`` fail, the others succeed."""
    for fire in claim_due(engine, now, token, 100).dispatches:
        mark_dispatched(engine, [fire.run_id], now)
        state = RunState.FAILED if fire.schedule_id in failing else RunState.SUCCEEDED
        record_outcome(engine, fire.run_id, state, {"finished_at": now}, now)


def test_schedules_needing_a_look_as_the_scheduler_leaves_them(engine: Engine, token: int) -> None:
    add_schedule(engine, "flaky", EVERY_10S, T0)
    add_schedule(engine, "broken", EVERY_10S, T0, pause_after_failures=2)
    add_schedule(engine, "fine", EVERY_10S, T0)
    add_schedule(engine, "hand-paused", EVERY_10S, T0, state="paused", state_reason="by hand")
    add_schedule(engine, "poisoned", EVERY_10S, T0)
    with engine.begin() as conn:  # corrupted behind the API's back: the claim quarantines it
        conn.execute(
            update(schedules)
            .where(schedules.c.id == "poisoned")
            .values(trigger={"type": "cron", "expression": "not a crontab"})
        )

    _cycle(engine, token, at(10), failing={"flaky", "broken"})
    _cycle(engine, token, at(20), failing={"flaky", "broken"})

    with engine.connect() as conn:
        failing = failing_schedules(conn)
        paused = held_schedules(conn, FAILURE_PAUSE_PREFIX)
        quarantined = held_schedules(conn, QUARANTINE_PREFIX)

    assert [(s["id"], s["consecutive_failures"]) for s in failing] == [("flaky", 2)]
    assert [(s["id"], s["consecutive_failures"]) for s in paused] == [("broken", 2)]
    assert [s["id"] for s in quarantined] == ["poisoned"]
