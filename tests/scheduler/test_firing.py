"""Fire policy: what falls due, what runs, what is missed or coalesced, and the next arming."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.store.models import RunState
from scheduler.timing.fire_policy import MAX_FIRES_PER_CLAIM, Arming, arm, plan
from scheduler.timing.triggers import jitter

CREATED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

Row = dict[str, Any]


def at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


@pytest.fixture
def make_row() -> Callable[..., Row]:
    """Factory: a schedule row firing every minute from CREATED, armed for its first fire."""

    def make(**overrides: Any) -> Row:
        row: Row = {
            "id": "every-minute",
            "trigger": {"type": "interval", "seconds": 60},
            "created_at": CREATED,
            "start_at": None,
            "end_at": None,
            "jitter_seconds": 0.0,
            "misfire_grace_seconds": None,
            "coalesce": False,
            "next_run_at": at(1),
        }
        row.update(overrides)
        return row

    return make


def states(result_fires: list[Any]) -> list[tuple[datetime, RunState]]:
    return [(f.scheduled_for, f.state) for f in result_fires]


# --- plan ---------------------------------------------------------------------------------


def test_nothing_due_gives_no_fires_and_leaves_arming_unchanged(make_row) -> None:
    result = plan(make_row(), now=at(0.5))
    assert result.fires == []
    assert result.arming == Arming(at(1), at(1))
    assert not result.completed


def test_one_due_fire_is_pending_and_arms_the_next(make_row) -> None:
    result = plan(make_row(), now=at(1))
    assert states(result.fires) == [(at(1), RunState.PENDING)]
    assert result.fires[0].reason is None
    assert result.arming == Arming(at(2), at(2))


def test_fire_later_than_grace_is_missed_with_a_reason(make_row) -> None:
    result = plan(make_row(misfire_grace_seconds=10), now=at(1) + timedelta(seconds=11))
    assert states(result.fires) == [(at(1), RunState.MISSED)]
    reason = result.fires[0].reason
    assert reason is not None
    assert "11.000s late" in reason
    assert "grace 10s" in reason
    assert result.arming.next_run_at == at(2)


def test_fire_exactly_at_grace_still_runs(make_row) -> None:
    result = plan(make_row(misfire_grace_seconds=10), now=at(1) + timedelta(seconds=10))
    assert states(result.fires) == [(at(1), RunState.PENDING)]


def test_zero_grace_runs_only_a_fire_found_on_time(make_row) -> None:
    row = make_row(misfire_grace_seconds=0)
    assert states(plan(row, now=at(1)).fires) == [(at(1), RunState.PENDING)]
    late = plan(row, now=at(1) + timedelta(milliseconds=1))
    assert states(late.fires) == [(at(1), RunState.MISSED)]


def test_no_grace_means_never_missed(make_row) -> None:
    result = plan(
        make_row(misfire_grace_seconds=None, coalesce=False), now=at(1) + timedelta(days=3)
    )
    assert len(result.fires) == MAX_FIRES_PER_CLAIM
    assert {f.state for f in result.fires} == {RunState.PENDING}


def test_coalesce_runs_the_latest_due_fire_once_and_skips_the_rest(make_row) -> None:
    result = plan(make_row(coalesce=True, misfire_grace_seconds=600), now=at(5.5))
    assert states(result.fires) == [
        (at(1), RunState.SKIPPED),
        (at(2), RunState.SKIPPED),
        (at(3), RunState.SKIPPED),
        (at(4), RunState.SKIPPED),
        (at(5), RunState.PENDING),
    ]
    for skipped in result.fires[:-1]:
        assert skipped.reason is not None
        assert "coalesced" in skipped.reason
        assert at(5).isoformat() in skipped.reason
    assert result.arming.next_run_at == at(6)


def test_coalesce_with_a_single_due_fire_just_runs_it(make_row) -> None:
    result = plan(make_row(coalesce=True), now=at(1.5))
    assert states(result.fires) == [(at(1), RunState.PENDING)]


def test_without_coalesce_every_due_fire_runs(make_row) -> None:
    result = plan(make_row(coalesce=False, misfire_grace_seconds=600), now=at(5.5))
    assert states(result.fires) == [(at(n), RunState.PENDING) for n in range(1, 6)]
    assert result.arming.next_run_at == at(6)


@pytest.mark.parametrize(
    ("coalesce", "expected"),
    [
        pytest.param(
            True,
            [
                (1, RunState.MISSED),
                (2, RunState.MISSED),
                (3, RunState.MISSED),
                (4, RunState.SKIPPED),
                (5, RunState.SKIPPED),
                (6, RunState.PENDING),
            ],
            id="coalesced_keeps_misses_and_runs_the_latest_in_grace",
        ),
        pytest.param(
            False,
            [
                (1, RunState.MISSED),
                (2, RunState.MISSED),
                (3, RunState.MISSED),
                (4, RunState.PENDING),
                (5, RunState.PENDING),
                (6, RunState.PENDING),
            ],
            id="uncoalesced_runs_every_fire_in_grace",
        ),
    ],
)
def test_outage_mixes_missed_and_runnable_fires(make_row, coalesce, expected) -> None:
    # Grace of 150 s at 6.5 minutes: fires 4, 5, 6 (≤ 2.5 min late) run; 1-3 are missed.
    result = plan(make_row(coalesce=coalesce, misfire_grace_seconds=150), now=at(6.5))
    assert states(result.fires) == [(at(n), state) for n, state in expected]
    assert all(f.reason for f in result.fires if f.state is RunState.MISSED)
    assert result.arming.next_run_at == at(7)


def test_limit_caps_the_backlog_and_arming_continues_after_the_last_planned_fire(make_row):
    row = make_row(misfire_grace_seconds=None)
    first = plan(row, now=at(100.5), limit=10)
    assert [f.scheduled_for for f in first.fires] == [at(n) for n in range(1, 11)]
    assert first.arming.next_run_at == at(11)
    assert not first.completed

    second = plan({**row, "next_run_at": first.arming.next_run_at}, now=at(100.5), limit=10)
    assert [f.scheduled_for for f in second.fires] == [at(n) for n in range(11, 21)]


def test_backlog_worked_off_in_claims_has_no_gap_or_duplicate(make_row) -> None:
    row = make_row(misfire_grace_seconds=None)
    seen: list[datetime] = []
    for _ in range(20):
        result = plan(row, now=at(95.5), limit=7)
        seen.extend(f.scheduled_for for f in result.fires)
        row = {**row, "next_run_at": result.arming.next_run_at}
    assert seen == [at(n) for n in range(1, 96)]


def test_coalesced_backlog_larger_than_the_limit_still_runs_once(make_row) -> None:
    row = make_row(coalesce=True, misfire_grace_seconds=None)
    planned = []
    for _ in range(20):
        result = plan(row, now=at(95.5), limit=10)
        planned.extend(result.fires)
        row = {**row, "next_run_at": result.arming.next_run_at}
    assert [f.scheduled_for for f in planned] == [at(n) for n in range(1, 96)]
    assert [f.scheduled_for for f in planned if f.state is RunState.PENDING] == [at(95)]
    assert all("coalesced" in (f.reason or "") for f in planned[:-1])


def test_coalesced_claim_cut_by_the_limit_runs_nothing_yet(make_row) -> None:
    result = plan(make_row(coalesce=True), now=at(20.5), limit=5)
    assert states(result.fires) == [(at(n), RunState.SKIPPED) for n in range(1, 6)]
    assert result.arming.next_run_at == at(6)


def test_one_off_is_completed_after_its_fire(make_row) -> None:
    run_at = at(5)
    row = make_row(trigger={"type": "date", "run_at": run_at.isoformat()}, next_run_at=run_at)
    before = plan(row, now=at(4))
    assert before.fires == []
    assert not before.completed

    result = plan(row, now=at(5))
    assert states(result.fires) == [(run_at, RunState.PENDING)]
    assert result.completed
    assert result.arming == Arming(None, None)


def test_one_off_found_late_beyond_grace_is_missed_and_completed(make_row) -> None:
    run_at = at(5)
    row = make_row(
        trigger={"type": "date", "run_at": run_at.isoformat()},
        next_run_at=run_at,
        misfire_grace_seconds=60,
    )
    result = plan(row, now=at(30))
    assert states(result.fires) == [(run_at, RunState.MISSED)]
    assert result.completed


def test_schedule_is_completed_after_its_last_fire_before_end_at(make_row) -> None:
    result = plan(make_row(end_at=at(3)), now=at(10))
    assert [f.scheduled_for for f in result.fires] == [at(1), at(2), at(3)]
    assert result.completed


def test_cron_row_fires_at_its_wall_clock_time(make_row) -> None:
    fire = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first pass
    row = make_row(
        trigger={"type": "cron", "expression": "30 2 * * *", "timezone": "Europe/Berlin"},
        next_run_at=fire,
    )
    result = plan(row, now=fire + timedelta(hours=1, seconds=1))  # past the second 02:30
    assert states(result.fires) == [(fire, RunState.PENDING)]
    assert result.arming.next_run_at == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_jittered_fire_is_not_due_before_its_delay(make_row) -> None:
    row = make_row(jitter_seconds=30.0)
    delay = jitter(row["id"], at(1), 30.0)
    assert delay > timedelta(0)  # fixed by the hash of (id, fire time)
    assert plan(row, now=at(1) + delay - timedelta(milliseconds=1)).fires == []
    result = plan(row, now=at(1) + delay)
    assert states(result.fires) == [(at(1), RunState.PENDING)]
    assert result.arming == Arming(at(2), at(2) + jitter(row["id"], at(2), 30.0))


def test_lateness_of_a_jittered_fire_counts_from_its_delayed_time(make_row) -> None:
    row = make_row(jitter_seconds=30.0, misfire_grace_seconds=5)
    delay = jitter(row["id"], at(1), 30.0)
    on_time = plan(row, now=at(1) + delay + timedelta(seconds=5))
    assert states(on_time.fires) == [(at(1), RunState.PENDING)]


def test_plan_is_a_pure_function_of_row_and_now(make_row) -> None:
    row = make_row(coalesce=True, misfire_grace_seconds=150, jitter_seconds=10.0)
    snapshot = dict(row)
    assert plan(row, now=at(6.5)) == plan(row, now=at(6.5))
    assert row == snapshot


# --- arm ----------------------------------------------------------------------------------


def test_arm_new_interval_fires_one_interval_after_creation(make_row) -> None:
    assert arm(make_row(), now=CREATED) == Arming(at(1), at(1))


def test_arm_after_a_pause_resumes_on_the_anchor_grid(make_row) -> None:
    assert arm(make_row(), now=at(30.25)).next_run_at == at(31)


def test_arm_one_off_in_the_past_gives_that_date(make_row) -> None:
    run_at = CREATED - timedelta(hours=2)
    row = make_row(trigger={"type": "date", "run_at": run_at.isoformat()})
    assert arm(row, now=CREATED) == Arming(run_at, run_at)


def test_arm_one_off_in_the_future_gives_that_date(make_row) -> None:
    run_at = at(90)
    row = make_row(trigger={"type": "date", "run_at": run_at.isoformat()})
    assert arm(row, now=CREATED).next_run_at == run_at


def test_arm_respects_start_at(make_row) -> None:
    assert arm(make_row(start_at=at(60)), now=CREATED).next_run_at == at(60)


def test_arm_past_end_at_gives_nothing(make_row) -> None:
    assert arm(make_row(end_at=at(-1)), now=CREATED) == Arming(None, None)


def test_arm_adds_the_schedules_jitter_to_the_due_time(make_row) -> None:
    row = make_row(jitter_seconds=45.0)
    arming = arm(row, now=CREATED)
    assert arming.next_run_at == at(1)
    assert arming.next_due_at == at(1) + jitter(row["id"], at(1), 45.0)


def test_arm_cron_gives_the_next_match_in_its_zone(make_row) -> None:
    row = make_row(trigger={"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"})
    assert arm(row, now=CREATED).next_run_at == datetime(2026, 5, 2, 1, 0, tzinfo=UTC)
