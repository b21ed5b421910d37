"""Run history chores and backfill at the store level, on both stores."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from scheduler.errors import InvalidSchedule
from scheduler.firing.backfill import backfill
from scheduler.firing.bulk import mark_dispatched
from scheduler.firing.claim import claim_due
from scheduler.firing.outbox_store import pending_dispatches
from scheduler.runs.housekeeping import (
    Housekeeper,
    Retention,
    prune_runs,
    prune_surplus_runs,
    settle_stale_runs,
)
from scheduler.store.history import Audit
from scheduler.store.models import Overlap, RunState, run_id_for, runs
from tests.factories import add_schedule, runs_of, schedule
from tests.services import wait_for

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOURLY = {"type": "cron", "expression": "0 * * * *"}
AUDIT = Audit("test")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _dispatched_run(engine: Engine, token: int) -> str:
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0)
    (fire,) = claim_due(engine, at(10), token, 10).dispatches
    mark_dispatched(engine, [fire.run_id], at(10))
    return fire.run_id


def test_silent_run_is_settled_from_the_result_backend(engine: Engine, token: int) -> None:
    run_id = _dispatched_run(engine, token)
    answers = {run_id: (RunState.SUCCEEDED, {"result": 42, "finished_at": at(12)})}

    assert settle_stale_runs(engine, at(60), timedelta(hours=1), answers.get) == 1

    (run,) = runs_of(engine, "s")
    assert (run["state"], run["result"]) == ("succeeded", 42)


def test_run_with_no_news_fails_as_outcome_unknown_after_the_timeout(
    engine: Engine, token: int
) -> None:
    _dispatched_run(engine, token)
    assert settle_stale_runs(engine, at(60), timedelta(hours=1), None) == 0
    assert runs_of(engine, "s")[0]["state"] == "dispatched"

    assert settle_stale_runs(engine, at(3611), timedelta(hours=1), None) == 1
    (run,) = runs_of(engine, "s")
    assert run["state"] == "failed" and run["error"]["type"] == "OutcomeUnknown"


def test_prune_keeps_recent_runs_up_to_the_count_and_never_unfinished_ones(
    engine: Engine,
) -> None:
    add_schedule(engine, "s", HOURLY, T0, run_count=10)
    rows = [
        {
            "id": f"r{i}",
            "schedule_id": "s",
            "scheduled_for": at(-3600 * i),
            "attempt": 1,
            "trigger": "schedule",
            "state": "succeeded" if i else "dispatched",
            "task": "sundial.echo",
            "created_at": at(-3600 * i),
        }
        for i in range(10)
    ]
    with engine.begin() as conn:
        conn.execute(insert(runs), rows)

    retention = Retention(max_age=timedelta(hours=6), per_schedule=4)
    pruned = prune_runs(engine, T0, retention) + prune_surplus_runs(engine, retention, "")[0]

    kept = [r["id"] for r in runs_of(engine, "s")]
    # r0 is unfinished (kept); r1..r4 are the 4 newest finished; r5.. are beyond both limits
    assert sorted(kept) == ["r0", "r1", "r2", "r3", "r4"]
    assert pruned == 5


def test_backfill_creates_only_the_fires_not_yet_recorded(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", HOURLY, T0 - timedelta(days=1))
    recorded = T0 - timedelta(hours=3)
    with engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id_for("s", recorded),
                schedule_id="s",
                scheduled_for=recorded,
                attempt=1,
                trigger="schedule",
                state="succeeded",
                task="sundial.echo",
                created_at=recorded,
            )
        )

    count = backfill(
        engine,
        "s",
        T0 - timedelta(hours=5),
        T0 - timedelta(hours=1),
        at(0),
        Overlap.ALLOW,
        audit=AUDIT,
    )

    assert count == 4  # 5 fire times in range, one already recorded
    history = runs_of(engine, "s")
    assert [r["trigger"] for r in history].count("backfill") == 4
    assert (
        backfill(engine, "s", T0 - timedelta(hours=5), T0 - timedelta(hours=1), at(1), audit=AUDIT)
        == 0
    )
    released = pending_dispatches(engine, token, 100, at(10))
    assert sorted(d.scheduled_for for d in released) == sorted(
        r["scheduled_for"] for r in history if r["trigger"] == "backfill"
    )


def test_serial_backfill_releases_one_run_at_a_time(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", HOURLY, T0 - timedelta(days=1))
    assert backfill(engine, "s", T0 - timedelta(hours=3), T0, at(0), Overlap.SKIP, audit=AUDIT) == 4

    (first,) = pending_dispatches(engine, token, 100, at(1))
    mark_dispatched(engine, [first.run_id], at(1))
    assert pending_dispatches(engine, token, 100, at(2)) == []


def test_backfill_rejects_a_backwards_range(engine: Engine) -> None:
    add_schedule(engine, "s", HOURLY, T0)
    with pytest.raises(InvalidSchedule) as err:
        backfill(engine, "s", T0, T0 - timedelta(hours=1), T0, audit=AUDIT)
    assert err.value.field == "end"


def test_backfilled_fire_is_counted_once_even_when_the_leader_reaches_it(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0)
    assert backfill(engine, "s", at(10), at(10), at(1), Overlap.ALLOW, audit=AUDIT) == 1

    assert claim_due(engine, at(10), token, 10).dispatches == []  # already recorded

    assert schedule(engine, "s")["run_count"] == 1


def test_housekeeper_does_its_chores_in_the_background_only_while_leading(
    engine: Engine, token: int
) -> None:
    run_id = _dispatched_run(engine, token)
    leading = threading.Event()
    keeper = Housekeeper(
        engine,
        interval=timedelta(milliseconds=50),
        timeout=timedelta(hours=1),
        retention=Retention(max_age=timedelta(days=30), per_schedule=100),
        lookup={run_id: (RunState.SUCCEEDED, {"result": 1})}.get,
        clock=lambda: at(60),
    )
    keeper.start(leading.is_set)
    try:
        assert runs_of(engine, "s")[0]["state"] == "dispatched"  # a follower does nothing
        leading.set()
        wait_for(lambda: runs_of(engine, "s")[0]["state"] == "succeeded", 10, "settling")
    finally:
        keeper.stop()
