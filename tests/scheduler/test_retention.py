"""Retention of finished one-offs and of their history, on both stores."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, insert, select

from scheduler.errors import LeadershipLost
from scheduler.firing.claim import claim_due
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.runs import housekeeping
from scheduler.runs.housekeeping import Housekeeper, Retention, prune_surplus_runs
from scheduler.runs.outcomes import record_outcome
from scheduler.runs.retention import RETENTION_ACTOR, prune_history, prune_one_offs
from scheduler.settings import Settings
from scheduler.store.history import SCHEDULER, Kind, list_changes, record_change
from scheduler.store.models import RunState, alerts, idempotency_keys, run_id_for, runs, schedules
from tests.factories import add_run, add_schedule, runs_of
from tests.services import wait_for

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
DAY = timedelta(days=1)


def date(when: datetime) -> dict[str, str]:
    return {"type": "date", "run_at": when.isoformat()}


def finished_one_off(
    engine: Engine,
    token: int,
    schedule_id: str,
    fire: datetime,
    finished: datetime | None,
    state: RunState = RunState.SUCCEEDED,
) -> str:
    """A one-off created a minute before ``fire``, fired by the leader, and settled at
    ``finished`` (None: still running)."""
    add_schedule(engine, schedule_id, date(fire), fire - timedelta(minutes=1))
    claimed = claim_due(engine, fire, token, 100).dispatches
    assert [d.schedule_id for d in claimed] == [schedule_id]
    run_id = run_id_for(schedule_id, fire)
    if finished is not None:
        assert record_outcome(engine, run_id, state, {"finished_at": finished}, finished)
    return run_id


def ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(schedules.c.id)).scalars())


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_finished_one_off_older_than_the_retention_goes_with_its_runs_and_keys(
    engine: Engine, token: int
) -> None:
    run_id = finished_one_off(engine, token, "old", T0, T0 + timedelta(seconds=5))
    with engine.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                key="k", request_hash="h", schedule_id="old", created_at=T0
            )
        )
    now = T0 + WEEK + timedelta(seconds=6)

    assert prune_one_offs(engine, T0 + WEEK, WEEK, 100, token) == 0  # finished 5 s too late
    assert prune_one_offs(engine, now, WEEK, 100, token) == 1

    assert ids(engine) == [] and runs_of(engine, "old") == []
    assert count(engine, idempotency_keys) == 0
    with engine.connect() as conn:
        history = list_changes(conn, schedule_id="old")
    # The deletion is recorded and the schedule's history is still there to read.
    assert (history[0]["kind"], history[0]["actor"]) == ("delete", RETENTION_ACTOR)
    assert history[0]["details"] == {"pruned": True}
    assert history[0]["diff"] is None and run_id  # a delete leaves no specification


def test_recent_unsettled_and_recurring_schedules_are_kept(engine: Engine, token: int) -> None:
    finished_one_off(engine, token, "a-old", T0, T0 + timedelta(seconds=1))
    finished_one_off(engine, token, "b-recent", T0 + 2 * DAY, T0 + 2 * DAY)
    finished_one_off(engine, token, "c-running", T0 + 3 * DAY, None)
    # Fired long ago and retried until yesterday: it settled recently.
    finished_one_off(engine, token, "d-retried", T0 + 4 * DAY, None)
    assert record_outcome(
        engine,
        run_id_for("d-retried", T0 + 4 * DAY),
        RunState.FAILED,
        {"finished_at": T0 + 4 * DAY},
        T0 + 4 * DAY,
    )
    add_run(
        engine,
        "d-retried",
        T0 + 4 * DAY,
        attempt=2,
        trigger="retry",
        state="succeeded",
        created_at=T0 + 4 * DAY,
        finished_at=T0 + 8 * DAY,
    )
    # Recurring: an interval with old runs, and a cron whose end has passed (completed).
    add_schedule(engine, "e-interval", {"type": "interval", "seconds": 3600}, T0 - DAY)
    add_run(engine, "e-interval", T0 - DAY, state="succeeded", finished_at=T0 - DAY)
    add_schedule(
        engine,
        "f-ended-cron",
        {"type": "cron", "expression": "0 * * * *"},
        T0 - DAY,
        state="completed",
        next_run_at=None,
        next_due_at=None,
    )
    # A one-off nobody fired yet (due far in the future) and a paused one.
    add_schedule(engine, "g-future", date(T0 + 365 * DAY), T0)
    add_schedule(engine, "h-paused", date(T0 + DAY), T0, state="paused")

    # The cutoff falls a day and a half after T0: only a-old settled before it.
    assert prune_one_offs(engine, T0 + WEEK + 1.5 * DAY, WEEK, 100, token) == 1

    assert ids(engine) == [
        "b-recent",
        "c-running",
        "d-retried",
        "e-interval",
        "f-ended-cron",
        "g-future",
        "h-paused",
    ]
    assert len(runs_of(engine, "c-running")) == 1 and len(runs_of(engine, "e-interval")) == 1


def test_pruning_goes_in_batches(engine: Engine, token: int) -> None:
    for i in range(25):
        finished_one_off(engine, token, f"s{i:02d}", T0 + timedelta(seconds=i), T0 + DAY)
    now = T0 + DAY + WEEK + timedelta(seconds=1)

    passes = []
    while pruned := prune_one_offs(engine, now, WEEK, 10, token):
        passes.append(pruned)

    assert passes == [10, 10, 5]
    assert ids(engine) == [] and count(engine, runs) == 0


def test_history_of_pruned_one_offs_goes_one_retention_later(engine: Engine, token: int) -> None:
    finished_one_off(engine, token, "s", T0, T0)
    finished_one_off(engine, token, "kept", T0 + 3 * DAY, T0 + 3 * DAY)
    pruned_at = T0 + WEEK + DAY
    assert prune_one_offs(engine, pruned_at, WEEK, 100, token) == 1
    # Made again under the same id: its own history must survive the old one's pruning.
    add_schedule(engine, "s", date(T0 + 30 * DAY), pruned_at + DAY)
    with engine.begin() as conn:
        conn.execute(
            insert(alerts).values(
                schedule_id="s",
                kind="failure",
                subject="r",
                message="m",
                raised_at=T0,
                resolved_at=pruned_at,
            )
        )
        record_change(conn, SCHEDULER, Kind.CREATE, pruned_at + DAY, schedule_id="s", version=1)
        record_change(conn, SCHEDULER, Kind.CREATE, T0, schedule_id="kept", version=1)

    assert prune_history(engine, pruned_at + WEEK - timedelta(seconds=1), WEEK, 100, token) == 0
    assert prune_history(engine, pruned_at + WEEK + timedelta(seconds=1), WEEK, 100, token) == 1

    with engine.connect() as conn:
        left = list_changes(conn, schedule_id="s")
        kept = list_changes(conn, schedule_id="kept")
    assert [(c["kind"], c["at"]) for c in left] == [("create", pruned_at + DAY)]
    assert kept  # a schedule that was never pruned keeps its history
    assert count(engine, alerts) == 0


def test_a_stale_leader_prunes_nothing(engine: Engine, token: int) -> None:
    finished_one_off(engine, token, "s", T0, T0)
    now = T0 + 2 * WEEK
    assert prune_one_offs(engine, now, WEEK, 100, token) == 1
    finished_one_off(engine, token, "t", T0 + DAY, T0 + DAY)
    # Another replica takes over: the old term's token is refused.
    later = SqlLease(engine, Replica("r2", "h", 2), ttl_s=600, clock=lambda: now + WEEK)
    assert later.acquire()

    with pytest.raises(LeadershipLost):
        prune_one_offs(engine, now, WEEK, 100, token)
    with pytest.raises(LeadershipLost):
        prune_history(engine, now + 2 * WEEK, WEEK, 100, token)
    assert ids(engine) == ["t"]


def _keeper(engine: Engine, retention: Retention, token: object) -> Housekeeper:
    return Housekeeper(
        engine,
        interval=timedelta(milliseconds=50),
        timeout=timedelta(days=365),
        retention=retention,
        # A clock that moves, so that the interval passes between rounds.
        clock=lambda: T0 + 30 * DAY + timedelta(seconds=time.monotonic()),
        token=token,  # type: ignore[arg-type]
    )


def test_housekeeper_prunes_only_while_leading_and_drains_every_batch(
    engine: Engine, token: int
) -> None:
    for i in range(7):
        finished_one_off(engine, token, f"s{i}", T0 + timedelta(seconds=i), T0 + DAY)
    leading = threading.Event()
    retention = Retention(
        max_age=timedelta(days=365), per_schedule=100, one_off_max_age=WEEK, batch=2
    )
    keeper = _keeper(engine, retention, lambda: token if leading.is_set() else None)
    keeper.maybe_run(T0 + 30 * DAY)
    assert len(ids(engine)) == 7  # a follower (no token) prunes nothing

    keeper = _keeper(engine, retention, lambda: token if leading.is_set() else None)
    keeper.start(leading.is_set)
    try:
        leading.set()
        wait_for(lambda: ids(engine) == [], 10, "the one-offs to be pruned")
    finally:
        keeper.stop()


def test_retention_zero_keeps_everything(engine: Engine, token: int) -> None:
    finished_one_off(engine, token, "s", T0, T0)
    settings = Settings(_env_file=None, one_off_retention_days=0)
    assert settings.one_off_retention_days == 0
    retention = Retention(max_age=timedelta(days=365), per_schedule=100, one_off_max_age=None)
    _keeper(engine, retention, lambda: token).maybe_run(T0 + 1000 * DAY)
    assert ids(engine) == ["s"]


@pytest.mark.parametrize("value", ["-1", "abc", "40000"])
def test_retention_setting_is_validated(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDIAL_ONE_OFF_RETENTION_DAYS", value)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert "one_off_retention_days" in str(err.value)


def test_runs_beyond_the_per_schedule_limit_go_a_stretch_of_schedules_per_round(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "SURPLUS_SCAN", 2)
    for sid in ("a", "b", "c"):
        add_schedule(engine, sid, {"type": "interval", "seconds": 60}, T0, run_count=10)
        for i in range(10):
            add_run(engine, sid, T0 + timedelta(minutes=i), state="succeeded")
        add_run(engine, sid, T0 - DAY, state="started")  # unfinished: never pruned
    # Fewer fires recorded than the limit: not looked at (its runs are young, too).
    add_schedule(engine, "d", {"type": "interval", "seconds": 60}, T0, run_count=3)
    for i in range(6):
        add_run(engine, "d", T0 + timedelta(minutes=i), state="succeeded")
    retention = Retention(max_age=timedelta(days=30), per_schedule=4, batch=100)

    assert prune_surplus_runs(engine, retention, "") == (12, "b")  # a and b
    assert prune_surplus_runs(engine, retention, "b") == (6, "d")  # c and d
    assert prune_surplus_runs(engine, retention, "d") == (0, "")  # the end: wrap around

    for sid in ("a", "b", "c"):
        kept = runs_of(engine, sid)
        assert [r["state"] for r in kept] == ["started"] + ["succeeded"] * 4
        assert kept[-1]["scheduled_for"] == T0 + timedelta(minutes=9)
    assert len(runs_of(engine, "d")) == 6


def test_a_one_off_being_edited_is_left_for_a_later_round(engine: Engine, token: int) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to skip")
    finished_one_off(engine, token, "a", T0, T0)
    finished_one_off(engine, token, "b", T0 + timedelta(seconds=1), T0)
    now = T0 + 2 * WEEK
    with engine.connect() as editor:
        # An API write holds the row it changes until it commits.
        editor.execute(select(schedules).where(schedules.c.id == "a").with_for_update())
        assert prune_one_offs(engine, now, WEEK, 100, token) == 1
        editor.rollback()
    assert prune_one_offs(engine, now, WEEK, 100, token) == 1
    assert ids(engine) == []
