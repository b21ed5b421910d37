"""Trigger specs and their fire times: interval anchoring, one-offs, start/end bounds, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduler.errors import InvalidSchedule
from scheduler.timing.triggers import (
    CronSpec,
    DateSpec,
    DelaySpec,
    FireTimes,
    IntervalSpec,
    fire_times,
    jitter,
    load_stored,
    resolve,
)

CREATED = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``minutes`` after CREATED."""
    return CREATED + timedelta(minutes=minutes)


# --- interval -----------------------------------------------------------------------------


def test_interval_without_start_fires_first_one_interval_after_creation() -> None:
    fires = FireTimes(IntervalSpec(seconds=60), anchor=CREATED)
    assert fires.first(CREATED) == at(1)
    assert fire_times(fires, CREATED, 3) == [at(1), at(2), at(3)]


def test_interval_with_future_start_fires_first_at_start_then_every_interval() -> None:
    start = at(30)
    fires = FireTimes(IntervalSpec(seconds=600), anchor=CREATED, start_at=start)
    assert fires.first(CREATED) == start
    assert fire_times(fires, CREATED, 3) == [start, at(40), at(50)]


def test_interval_with_past_start_stays_on_the_start_grid() -> None:
    start = CREATED - timedelta(seconds=25)
    fires = FireTimes(IntervalSpec(seconds=60), anchor=CREATED, start_at=start)
    assert fires.first(CREATED) == start + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(at(0.5), at(1), id="between_fires_gives_the_next_grid_point"),
        pytest.param(at(1), at(2), id="on_a_fire_gives_the_following_one"),
        pytest.param(at(1) - timedelta(microseconds=1), at(1), id="just_before_a_fire"),
        pytest.param(at(60 * 24 * 365), at(60 * 24 * 365 + 1), id="a_year_later_still_on_grid"),
        pytest.param(CREATED - timedelta(days=1), CREATED, id="before_creation_gives_anchor"),
    ],
)
def test_interval_next_after_keeps_the_anchor_grid(after: datetime, expected: datetime) -> None:
    fires = FireTimes(IntervalSpec(seconds=60), anchor=CREATED)
    assert fires.next_after(after) == expected


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.one_of(
        st.integers(1, 366 * 86400).map(float),
        st.decimals("1", "100000", places=3).map(float),
    ),
    offset=st.integers(0, 20 * 365 * 86400 * 10**6),
)
def test_interval_fire_is_the_first_grid_point_strictly_after(seconds: float, offset: int) -> None:
    fires = FireTimes(IntervalSpec(seconds=seconds), anchor=CREATED)
    after = CREATED + timedelta(microseconds=offset)
    fire = fires.next_after(after)
    assert fire is not None
    step = timedelta(seconds=seconds)
    k = (fire - CREATED) / step
    assert fire > after
    assert fire - step <= after
    assert abs(k - round(k)) < 1e-6


def test_interval_fires_are_utc() -> None:
    anchor = datetime(2026, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    fire = FireTimes(IntervalSpec(seconds=60), anchor=anchor).first(anchor)
    assert fire == datetime(2026, 5, 1, 12, 1, tzinfo=UTC)
    assert fire is not None and fire.utcoffset() == timedelta(0)


# --- date / delay -------------------------------------------------------------------------


def test_date_fires_once_then_is_done() -> None:
    run_at = at(5)
    fires = FireTimes(DateSpec(run_at=run_at), anchor=CREATED)
    assert fires.first(CREATED) == run_at
    assert fires.next_after(CREATED) == run_at
    assert fires.next_after(run_at) is None
    assert fire_times(fires, CREATED, 10) == [run_at]


def test_date_in_the_past_still_has_its_first_fire() -> None:
    run_at = CREATED - timedelta(hours=3)
    fires = FireTimes(DateSpec(run_at=run_at), anchor=CREATED)
    assert fires.first(CREATED) == run_at
    assert fires.next_after(CREATED) is None


def test_date_exactly_at_creation_fires() -> None:
    fires = FireTimes(DateSpec(run_at=CREATED), anchor=CREATED)
    assert fires.first(CREATED) == CREATED


def test_date_run_at_is_normalised_to_utc() -> None:
    spec = DateSpec(run_at=datetime(2026, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    assert spec.run_at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert spec.run_at.utcoffset() == timedelta(0)


def test_date_without_offset_is_rejected() -> None:
    with pytest.raises(ValidationError):
        DateSpec.model_validate({"run_at": "2026-05-01T12:00:00"})


def test_delay_resolves_to_a_date_after_now() -> None:
    assert resolve(DelaySpec(seconds=90), CREATED) == DateSpec(
        run_at=CREATED + timedelta(seconds=90)
    )


def test_non_delay_resolves_to_itself() -> None:
    spec = CronSpec(expression="0 3 * * *", timezone="Europe/Berlin")
    assert resolve(spec, CREATED) is spec


@pytest.mark.parametrize(
    "data",
    [
        {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
        {"type": "interval", "seconds": 60.0},
        {"type": "date", "run_at": "2026-11-22T02:00:00Z"},
    ],
    ids=lambda d: str(d["type"]),
)
def test_stored_trigger_round_trips_through_json(data: dict[str, object]) -> None:
    spec = load_stored(data)
    assert load_stored(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"type": "delay", "seconds": 5}, id="delay_is_never_stored"),
        pytest.param({"type": "interval", "seconds": 0}, id="interval_below_one_second"),
        pytest.param({"type": "interval", "seconds": 60, "every": 1}, id="unknown_key"),
        pytest.param({"type": "weekly"}, id="unknown_type"),
    ],
)
def test_invalid_stored_trigger_is_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        load_stored(data)


def test_cron_spec_with_unknown_time_zone_names_the_time_zone() -> None:
    with pytest.raises(InvalidSchedule) as raised:
        CronSpec(expression="0 3 * * *", timezone="Mars/Olympus")
    assert raised.value.field == "trigger.timezone"


def test_cron_fire_times_reject_a_bad_expression_naming_it() -> None:
    with pytest.raises(InvalidSchedule) as raised:
        FireTimes(CronSpec(expression="0 0 30 2 *"), anchor=CREATED)
    assert raised.value.field == "trigger.expression"


# --- start_at / end_at --------------------------------------------------------------------


def test_start_at_delays_the_first_cron_fire() -> None:
    spec = CronSpec(expression="0 3 * * *", timezone="UTC")
    start = datetime(2026, 5, 10, 3, 0, tzinfo=UTC)
    fires = FireTimes(spec, anchor=CREATED, start_at=start)
    assert fires.first(CREATED) == start
    later_start = datetime(2026, 5, 10, 3, 0, 1, tzinfo=UTC)
    fires = FireTimes(spec, anchor=CREATED, start_at=later_start)
    assert fires.first(CREATED) == datetime(2026, 5, 11, 3, 0, tzinfo=UTC)


def test_cron_without_start_fires_at_the_next_match_after_creation() -> None:
    fires = FireTimes(CronSpec(expression="0 3 * * *", timezone="UTC"), anchor=CREATED)
    assert fires.first(CREATED) == datetime(2026, 5, 2, 3, 0, tzinfo=UTC)


def test_end_at_stops_cron_fires_and_is_inclusive() -> None:
    spec = CronSpec(expression="0 3 * * *", timezone="UTC")
    end = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)
    fires = FireTimes(spec, anchor=CREATED, end_at=end)
    assert fire_times(fires, CREATED, 10) == [
        datetime(2026, 5, 2, 3, 0, tzinfo=UTC),
        datetime(2026, 5, 3, 3, 0, tzinfo=UTC),
        end,
    ]
    assert fires.next_after(end) is None


def test_end_at_stops_interval_fires() -> None:
    fires = FireTimes(IntervalSpec(seconds=60), anchor=CREATED, end_at=at(2.5))
    assert fire_times(fires, CREATED, 10) == [at(1), at(2)]
    assert fires.next_after(at(2)) is None


def test_date_after_end_at_never_fires() -> None:
    fires = FireTimes(DateSpec(run_at=at(10)), anchor=CREATED, end_at=at(5))
    assert fires.first(CREATED) is None


def test_end_at_in_the_past_gives_no_first_fire() -> None:
    fires = FireTimes(IntervalSpec(seconds=60), anchor=CREATED, end_at=at(-1))
    assert fires.first(CREATED) is None


def test_start_and_end_window_bounds_an_interval() -> None:
    fires = FireTimes(IntervalSpec(seconds=600), anchor=CREATED, start_at=at(60), end_at=at(90))
    assert fire_times(fires, CREATED, 10) == [at(60), at(70), at(80), at(90)]


# --- fire_times ---------------------------------------------------------------------------


def test_fire_times_are_strictly_after_and_increasing() -> None:
    fires = FireTimes(CronSpec(expression="*/15 * * * *", timezone="Europe/Berlin"), CREATED)
    listed = fire_times(fires, CREATED, 50)
    assert len(listed) == 50
    assert listed[0] > CREATED
    assert all(a < b for a, b in pairwise(listed))


def test_fire_times_zero_count_is_empty() -> None:
    assert fire_times(FireTimes(IntervalSpec(seconds=1), CREATED), CREATED, 0) == []


def test_fire_times_match_step_by_step_next_after() -> None:
    fires = FireTimes(CronSpec(expression="30 2 * * *", timezone="Europe/Berlin"), CREATED)
    after = datetime(2026, 10, 20, tzinfo=UTC)
    listed = fire_times(fires, after, 10)
    stepped, current = [], after
    for _ in range(10):
        nxt = fires.next_after(current)
        assert nxt is not None
        stepped.append(nxt)
        current = nxt
    assert listed == stepped


# --- jitter -------------------------------------------------------------------------------


def test_jitter_is_zero_when_disabled() -> None:
    assert jitter("s", CREATED, 0) == timedelta(0)


def test_jitter_is_deterministic_per_schedule_and_fire_time() -> None:
    assert jitter("nightly", CREATED, 30) == jitter("nightly", CREATED, 30)


def test_jitter_does_not_depend_on_the_offset_the_fire_time_is_given_in() -> None:
    berlin = CREATED.astimezone(ZoneInfo("Europe/Berlin"))
    assert jitter("nightly", berlin, 30) == jitter("nightly", CREATED, 30)


def test_jitter_spreads_across_fire_times_and_schedules() -> None:
    by_time = {jitter("nightly", at(n), 60) for n in range(50)}
    by_schedule = {jitter(f"s{n}", CREATED, 60) for n in range(50)}
    assert len(by_time) > 40
    assert len(by_schedule) > 40


@settings(max_examples=300, deadline=None)
@given(
    schedule_id=st.text(min_size=1, max_size=40),
    offset=st.integers(0, 10**15),
    jitter_seconds=st.one_of(
        st.floats(min_value=0.0001, max_value=86400, allow_nan=False),
        st.integers(1, 3600).map(float),
    ),
)
def test_jitter_is_within_zero_and_jitter_seconds(
    schedule_id: str, offset: int, jitter_seconds: float
) -> None:
    delay = jitter(schedule_id, CREATED + timedelta(microseconds=offset), jitter_seconds)
    assert timedelta(0) <= delay < timedelta(seconds=jitter_seconds)


@pytest.mark.parametrize("jitter_seconds", [0.0006, 0.0015, 0.01])
def test_jitter_never_rounds_up_to_its_bound(jitter_seconds: float) -> None:
    bound = timedelta(seconds=jitter_seconds)
    delays = [jitter("s", at(n), jitter_seconds) for n in range(300)]
    assert all(timedelta(0) <= d < bound for d in delays)
