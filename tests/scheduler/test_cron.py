"""Crontab parsing and fire times: standard syntax, vixie day rule, DST rule, bounded search."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import InvalidSchedule
from scheduler.timing.cron import Crontab

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    """``"2026-10-25 00:30"`` (or with seconds) as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def upcoming(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    crontab = Crontab(expression, timezone)
    out: list[datetime] = []
    for _ in range(count):
        after = crontab.next_after(after)
        out.append(after)
    return out


def weekday_name(when: datetime) -> str:
    return when.strftime("%a")


# --- syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param(
            "*/15 * * * *",
            "2026-01-01 00:00",
            ["2026-01-01 00:15", "2026-01-01 00:30", "2026-01-01 00:45", "2026-01-01 01:00"],
            id="star_step_every_quarter_hour",
        ),
        pytest.param(
            "1-10/3 5 * * *",
            "2026-01-01 00:00",
            ["2026-01-01 05:01", "2026-01-01 05:04", "2026-01-01 05:07", "2026-01-01 05:10"],
            id="range_with_step",
        ),
        pytest.param(
            "5/20 5 * * *",
            "2026-01-01 00:00",
            ["2026-01-01 05:05", "2026-01-01 05:25", "2026-01-01 05:45", "2026-01-02 05:05"],
            id="start_with_step_runs_to_field_end",
        ),
        pytest.param(
            "0,30 9,17 * * *",
            "2026-01-01 00:00",
            ["2026-01-01 09:00", "2026-01-01 09:30", "2026-01-01 17:00", "2026-01-01 17:30"],
            id="lists",
        ),
        pytest.param(
            "0 0 1 jan,Jul *",
            "2026-01-01 00:00",
            ["2026-07-01 00:00", "2027-01-01 00:00", "2027-07-01 00:00"],
            id="month_names_any_case",
        ),
        pytest.param(
            "0 0 * FEB-mar mon",
            "2026-03-20 00:00",
            ["2026-03-23 00:00", "2026-03-30 00:00", "2027-02-01 00:00"],
            id="month_name_range_and_weekday_name",
        ),
        pytest.param(
            "30 0 12 * * *",
            "2026-01-01 00:00",
            ["2026-01-01 12:00:30", "2026-01-02 12:00:30"],
            id="six_fields_lead_with_seconds",
        ),
        pytest.param(
            "*/20 * * * * *",
            "2026-01-01 00:00",
            ["2026-01-01 00:00:20", "2026-01-01 00:00:40", "2026-01-01 00:01"],
            id="six_fields_every_twenty_seconds",
        ),
        pytest.param(
            "0 0 13 * 5",
            "2026-02-01 00:00",
            ["2026-02-06 00:00", "2026-02-13 00:00", "2026-02-20 00:00", "2026-02-27 00:00"],
            id="vixie_either_day_field_fires_friday_13th_once",
        ),
        pytest.param(
            "0 0 10 * 1",
            "2026-03-01 00:00",
            ["2026-03-02 00:00", "2026-03-09 00:00", "2026-03-10 00:00", "2026-03-16 00:00"],
            id="vixie_day_of_month_or_monday",
        ),
        pytest.param(
            "0 0 */2 * 5",
            "2026-02-01 00:00",
            ["2026-02-13 00:00", "2026-02-27 00:00", "2026-03-13 00:00"],
            id="star_step_day_of_month_is_anded_with_weekday",
        ),
        pytest.param(
            "0 0 13 * */7",
            "2026-01-01 00:00",
            ["2026-09-13 00:00", "2026-12-13 00:00"],
            id="star_step_weekday_is_anded_with_day_of_month",
        ),
        pytest.param(
            "0 0 29 2 *",
            "2026-01-01 00:00",
            ["2028-02-29 00:00", "2032-02-29 00:00"],
            id="leap_day_fires_on_leap_days_only",
        ),
        pytest.param(
            "0 0 29 2 *",
            "2096-03-01 00:00",
            ["2104-02-29 00:00"],
            id="leap_day_skips_the_century_that_is_not_leap",
        ),
        pytest.param(
            "0 0 30 2 mon",
            "2026-01-01 00:00",
            ["2026-02-02 00:00", "2026-02-09 00:00", "2026-02-16 00:00", "2026-02-23 00:00"],
            id="impossible_day_of_month_or_weekday_fires_on_the_weekday",
        ),
        pytest.param(
            "59 23 31 12 5",
            "2026-01-01 00:00",
            ["2026-12-04 23:59", "2026-12-11 23:59", "2026-12-18 23:59", "2026-12-25 23:59"],
            id="new_years_eve_or_friday_in_december",
        ),
        pytest.param(
            "  0  12\t* *  *  ",
            "2026-01-01 00:00",
            ["2026-01-01 12:00"],
            id="spaces_and_tabs_separate_fields",
        ),
    ],
)
def test_expression_fires_at(expression: str, after: str, expected: list[str]) -> None:
    assert upcoming(expression, "UTC", utc(after), len(expected)) == [utc(e) for e in expected]


@pytest.mark.parametrize(
    "day_of_week", ["0", "7", "sun", "SUN", "Sun", "0,7", "6-7"], ids=lambda d: f"dow_{d}"
)
def test_zero_and_seven_and_sun_are_sunday(day_of_week: str) -> None:
    fires = upcoming(f"0 12 * * {day_of_week}", "UTC", utc("2026-01-01 00:00"), 6)
    assert {weekday_name(f) for f in fires} <= {"Sat", "Sun"}
    assert "Sun" in {weekday_name(f) for f in fires}
    if day_of_week != "6-7":
        assert [weekday_name(f) for f in fires] == ["Sun"] * 6


def test_weekday_names_match_numbers() -> None:
    names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    after = utc("2026-01-01 00:00")
    for number, name in enumerate(names):
        by_number = upcoming(f"0 0 * * {number}", "UTC", after, 3)
        assert upcoming(f"0 0 * * {name}", "UTC", after, 3) == by_number
        assert weekday_name(by_number[0]).lower() == name


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
    ids=lambda v: v,
)
def test_macro_fires_like_its_expansion(macro: str, expansion: str) -> None:
    after = utc("2026-05-17 13:45")
    assert upcoming(macro, "Europe/Berlin", after, 5) == upcoming(
        expansion, "Europe/Berlin", after, 5
    )


def test_weekly_macro_fires_on_sunday() -> None:
    (fire,) = upcoming("@weekly", "UTC", utc("2026-01-01 00:00"), 1)
    assert fire == utc("2026-01-04 00:00")
    assert weekday_name(fire) == "Sun"


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("0 0 30 2 *", id="february_30th"),
        pytest.param("0 0 31 4,6,9,11 *", id="31st_of_a_30_day_month"),
        pytest.param("0 0 30-31 2 *", id="range_of_days_february_never_has"),
        pytest.param("0 0 * * 8", id="weekday_8"),
        pytest.param("60 * * * *", id="minute_60"),
        pytest.param("0 24 * * *", id="hour_24"),
        pytest.param("0 0 0 * *", id="day_of_month_0"),
        pytest.param("0 0 32 * *", id="day_of_month_32"),
        pytest.param("0 0 1 13 *", id="month_13"),
        pytest.param("0 0 1 0 *", id="month_0"),
        pytest.param("60 0 0 * * *", id="second_60"),
        pytest.param("*/0 * * * *", id="step_0"),
        pytest.param("5/ * * * *", id="empty_step"),
        pytest.param("*/ * * * *", id="empty_step_after_star"),
        pytest.param("*/5/2 * * * *", id="two_steps"),
        pytest.param("30-10 * * * *", id="backwards_range"),
        pytest.param("0 0 * * fri-mon", id="backwards_weekday_name_range"),
        pytest.param("1-2-3 * * * *", id="double_range"),
        pytest.param("1,,2 * * * *", id="empty_list_item"),
        pytest.param("-5 * * * *", id="negative_number"),
        pytest.param("+5 * * * *", id="plus_sign"),
        pytest.param("@reboot", id="unknown_macro_reboot"),
        pytest.param("@every 5m", id="unknown_macro_every"),
        pytest.param("", id="empty"),
        pytest.param("* * * *", id="four_fields"),
        pytest.param("* * * * * * *", id="seven_fields"),
        pytest.param("? * * * *", id="quartz_question_mark"),
        pytest.param("0 0 L * *", id="quartz_last_day"),
        pytest.param("0 0 * * 5#3", id="quartz_nth_weekday"),
        pytest.param("x * * * *", id="garbage_letter"),
        pytest.param("0 0 * * sunday", id="long_weekday_name"),
        pytest.param("0 0 1 january *", id="long_month_name"),
        pytest.param("0 0 1 * jan", id="month_name_in_weekday_field"),
        pytest.param("\u0663 * * * *", id="non_ascii_digit"),
        pytest.param("1\u00a0* * * *", id="non_breaking_space"),
        pytest.param("0 0 * * *;rm", id="trailing_garbage"),
    ],
)
def test_invalid_expression_is_rejected_naming_the_expression(expression: str) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        Crontab(expression, "UTC")
    assert raised.value.field == "trigger.expression"
    assert raised.value.message


@pytest.mark.parametrize(
    "timezone",
    [
        "Mars/Olympus",
        "",
        "europe/berlin",
        "Europe/Berlin ",
        "../../etc/passwd",
        "UTC\x00",
        "X" * 300,
        "America",  # a directory of zones, not a zone
        "localtime",  # the host's zone: API and scheduler hosts could disagree
    ],
    ids=repr,
)
def test_unknown_time_zone_is_rejected_naming_the_time_zone(timezone: str) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        Crontab("0 0 * * *", timezone)
    assert raised.value.field == "trigger.timezone"


@pytest.mark.parametrize("timezone", ["UTC", "Etc/GMT+5", "US/Pacific", "Asia/Kathmandu"])
def test_known_time_zone_is_accepted(timezone: str) -> None:
    assert Crontab("0 0 * * *", timezone).next_after(utc("2026-01-01 00:00")) > utc(
        "2026-01-01 00:00"
    )


def test_next_after_is_strictly_after_even_on_a_fire_time() -> None:
    crontab = Crontab("0 * * * *", "UTC")
    assert crontab.next_after(utc("2026-01-01 05:00")) == utc("2026-01-01 06:00")
    assert crontab.next_after(utc("2026-01-01 04:59:59.999999")) == utc("2026-01-01 05:00")


def test_next_after_accepts_any_offset_and_returns_utc() -> None:
    after = datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    fire = Crontab("0 * * * *", "UTC").next_after(after)
    assert fire == utc("2026-01-01 01:00")
    assert fire.utcoffset() == timedelta(0)


# --- DST: tables of expected fire instants (UTC) ------------------------------------------
# 2026 transitions: Berlin 03-29 01:00Z forward, 10-25 01:00Z back (02:00-03:00 local);
# New York 03-08 07:00Z forward, 11-01 06:00Z back (01:00-02:00 repeats);
# US/Pacific 03-08 10:00Z forward, 11-01 09:00Z back (01:00-02:00 repeats);
# Sydney 04-04 16:00Z back (02:00-03:00 repeats), 10-03 16:00Z forward (02:00-03:00 gap).

DST_TABLE = [
    # fixed wall-clock times: a repeated time fires once, a skipped one at the gap's end
    ("Europe/Berlin", "30 2 * * *", "2026-03-28 00:00",
     ["2026-03-28 01:30", "2026-03-29 01:00", "2026-03-30 00:30"],
     "skipped_time_fires_at_gap_end_on_berlin_spring_forward"),
    ("Europe/Berlin", "0 2 * * *", "2026-03-28 00:00",
     ["2026-03-28 01:00", "2026-03-29 01:00", "2026-03-30 00:00"],
     "gap_start_fires_at_gap_end_on_berlin_spring_forward"),
    ("Europe/Berlin", "0 0 * * *", "2026-03-27 12:00",
     ["2026-03-27 23:00", "2026-03-28 23:00", "2026-03-29 22:00"],
     "midnight_unaffected_by_berlin_spring_forward"),
    ("Europe/Berlin", "15 30 2 * * *", "2026-03-28 00:00",
     ["2026-03-28 01:30:15", "2026-03-29 01:00", "2026-03-30 00:30:15"],
     "seconds_cron_skipped_time_fires_at_gap_end_on_berlin_spring_forward"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-24 00:00",
     ["2026-10-24 00:30", "2026-10-25 00:30", "2026-10-26 01:30"],
     "fixed_time_fires_once_on_berlin_fall_back"),
    ("Europe/Berlin", "0 2 * * *", "2026-10-23 12:00",
     ["2026-10-24 00:00", "2026-10-25 00:00", "2026-10-26 01:00"],
     "repeat_start_fires_once_on_berlin_fall_back"),
    ("Europe/Berlin", "0 0 * * *", "2026-10-24 12:00",
     ["2026-10-24 22:00", "2026-10-25 23:00", "2026-10-26 23:00"],
     "midnight_unaffected_by_berlin_fall_back"),
    ("Europe/Berlin", "15 30 2 * * *", "2026-10-24 00:00",
     ["2026-10-24 00:30:15", "2026-10-25 00:30:15", "2026-10-26 01:30:15"],
     "seconds_cron_fixed_time_fires_once_on_berlin_fall_back"),
    ("America/New_York", "30 2 * * *", "2026-03-07 00:00",
     ["2026-03-07 07:30", "2026-03-08 07:00", "2026-03-09 06:30"],
     "skipped_time_fires_at_gap_end_on_new_york_spring_forward"),
    ("America/New_York", "0 2 * * *", "2026-03-07 00:00",
     ["2026-03-07 07:00", "2026-03-08 07:00", "2026-03-09 06:00"],
     "gap_start_fires_at_gap_end_on_new_york_spring_forward"),
    ("America/New_York", "0 0 * * *", "2026-03-07 00:00",
     ["2026-03-07 05:00", "2026-03-08 05:00", "2026-03-09 04:00"],
     "midnight_unaffected_by_new_york_spring_forward"),
    ("America/New_York", "30 1 * * *", "2026-10-31 00:00",
     ["2026-10-31 05:30", "2026-11-01 05:30", "2026-11-02 06:30"],
     "fixed_time_fires_once_on_new_york_fall_back"),
    ("America/New_York", "30 2 * * *", "2026-10-31 00:00",
     ["2026-10-31 06:30", "2026-11-01 07:30", "2026-11-02 07:30"],
     "time_after_the_repeat_fires_once_on_new_york_fall_back"),
    ("America/New_York", "0 2 * * *", "2026-10-31 00:00",
     ["2026-10-31 06:00", "2026-11-01 07:00", "2026-11-02 07:00"],
     "repeat_end_fires_once_on_new_york_fall_back"),
    ("America/New_York", "0 0 * * *", "2026-10-31 00:00",
     ["2026-10-31 04:00", "2026-11-01 04:00", "2026-11-02 05:00"],
     "midnight_unaffected_by_new_york_fall_back"),
    ("US/Pacific", "30 2 * * *", "2026-03-07 00:00",
     ["2026-03-07 10:30", "2026-03-08 10:00", "2026-03-09 09:30"],
     "skipped_time_fires_at_gap_end_on_pacific_spring_forward"),
    ("US/Pacific", "0 2 * * *", "2026-03-07 00:00",
     ["2026-03-07 10:00", "2026-03-08 10:00", "2026-03-09 09:00"],
     "gap_start_fires_at_gap_end_on_pacific_spring_forward"),
    ("US/Pacific", "0 0 * * *", "2026-03-07 00:00",
     ["2026-03-07 08:00", "2026-03-08 08:00", "2026-03-09 07:00"],
     "midnight_unaffected_by_pacific_spring_forward"),
    ("US/Pacific", "30 1 * * *", "2026-10-31 00:00",
     ["2026-10-31 08:30", "2026-11-01 08:30", "2026-11-02 09:30"],
     "fixed_time_fires_once_on_pacific_fall_back"),
    ("US/Pacific", "30 2 * * *", "2026-10-31 00:00",
     ["2026-10-31 09:30", "2026-11-01 10:30", "2026-11-02 10:30"],
     "time_after_the_repeat_fires_once_on_pacific_fall_back"),
    ("US/Pacific", "0 0 * * *", "2026-10-31 00:00",
     ["2026-10-31 07:00", "2026-11-01 07:00", "2026-11-02 08:00"],
     "midnight_unaffected_by_pacific_fall_back"),
    ("Australia/Sydney", "30 2 * * *", "2026-04-03 00:00",
     ["2026-04-03 15:30", "2026-04-04 15:30", "2026-04-05 16:30"],
     "fixed_time_fires_once_on_sydney_fall_back_in_april"),
    ("Australia/Sydney", "0 2 * * *", "2026-04-03 00:00",
     ["2026-04-03 15:00", "2026-04-04 15:00", "2026-04-05 16:00"],
     "repeat_start_fires_once_on_sydney_fall_back_in_april"),
    ("Australia/Sydney", "0 0 * * *", "2026-04-03 00:00",
     ["2026-04-03 13:00", "2026-04-04 13:00", "2026-04-05 14:00"],
     "midnight_unaffected_by_sydney_fall_back_in_april"),
    ("Australia/Sydney", "30 2 * * *", "2026-10-02 00:00",
     ["2026-10-02 16:30", "2026-10-03 16:00", "2026-10-04 15:30"],
     "skipped_time_fires_at_gap_end_on_sydney_spring_forward_in_october"),
    ("Australia/Sydney", "0 2 * * *", "2026-10-02 00:00",
     ["2026-10-02 16:00", "2026-10-03 16:00", "2026-10-04 15:00"],
     "gap_start_fires_at_gap_end_on_sydney_spring_forward_in_october"),
    ("Australia/Sydney", "0 0 * * *", "2026-10-02 00:00",
     ["2026-10-02 14:00", "2026-10-03 14:00", "2026-10-04 13:00"],
     "midnight_unaffected_by_sydney_spring_forward_in_october"),
    ("America/Santiago", "0 0 * * *", "2026-09-04 00:00",
     ["2026-09-04 04:00", "2026-09-05 04:00", "2026-09-06 04:00", "2026-09-07 03:00"],
     "skipped_midnight_fires_at_one_on_santiago_spring_forward"),
    # hour field starting with `*`: elapsed time; both passes of a repeated hour fire
    ("Europe/Berlin", "*/15 * * * *", "2026-03-29 00:30",
     ["2026-03-29 00:45", "2026-03-29 01:00", "2026-03-29 01:15", "2026-03-29 01:30"],
     "quarter_hours_keep_elapsed_time_on_berlin_spring_forward"),
    ("Europe/Berlin", "30 * * * *", "2026-03-28 23:45",
     ["2026-03-29 00:30", "2026-03-29 01:30", "2026-03-29 02:30"],
     "hourly_at_half_past_keeps_elapsed_time_on_berlin_spring_forward"),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-24 23:50",
     ["2026-10-25 00:00", "2026-10-25 00:15", "2026-10-25 00:30", "2026-10-25 00:45",
      "2026-10-25 01:00", "2026-10-25 01:15", "2026-10-25 01:30", "2026-10-25 01:45",
      "2026-10-25 02:00"],
     "quarter_hours_fire_in_both_passes_on_berlin_fall_back"),
    ("Europe/Berlin", "30 * * * *", "2026-10-24 23:45",
     ["2026-10-25 00:30", "2026-10-25 01:30", "2026-10-25 02:30"],
     "hourly_at_half_past_fires_in_both_passes_on_berlin_fall_back"),
    ("Europe/Berlin", "0 */20 * * * *", "2026-10-25 00:30",
     ["2026-10-25 00:40", "2026-10-25 01:00", "2026-10-25 01:20", "2026-10-25 01:40"],
     "seconds_cron_keeps_elapsed_time_on_berlin_fall_back"),
    ("America/New_York", "*/15 * * * *", "2026-03-08 06:30",
     ["2026-03-08 06:45", "2026-03-08 07:00", "2026-03-08 07:15"],
     "quarter_hours_keep_elapsed_time_on_new_york_spring_forward"),
    ("America/New_York", "30 * * * *", "2026-03-08 06:00",
     ["2026-03-08 06:30", "2026-03-08 07:30", "2026-03-08 08:30"],
     "hourly_at_half_past_keeps_elapsed_time_on_new_york_spring_forward"),
    ("America/New_York", "*/15 * * * *", "2026-11-01 05:40",
     ["2026-11-01 05:45", "2026-11-01 06:00", "2026-11-01 06:15", "2026-11-01 06:30",
      "2026-11-01 06:45", "2026-11-01 07:00"],
     "quarter_hours_fire_in_both_passes_on_new_york_fall_back"),
    ("America/New_York", "30 * * * *", "2026-11-01 04:45",
     ["2026-11-01 05:30", "2026-11-01 06:30", "2026-11-01 07:30"],
     "hourly_at_half_past_fires_in_both_passes_on_new_york_fall_back"),
    ("US/Pacific", "*/15 * * * *", "2026-03-08 09:30",
     ["2026-03-08 09:45", "2026-03-08 10:00", "2026-03-08 10:15"],
     "quarter_hours_keep_elapsed_time_on_pacific_spring_forward"),
    ("US/Pacific", "*/15 * * * *", "2026-11-01 08:50",
     ["2026-11-01 09:00", "2026-11-01 09:15", "2026-11-01 09:30"],
     "quarter_hours_fire_in_both_passes_on_pacific_fall_back"),
    ("Australia/Sydney", "*/15 * * * *", "2026-04-04 15:40",
     ["2026-04-04 15:45", "2026-04-04 16:00", "2026-04-04 16:15"],
     "quarter_hours_fire_in_both_passes_on_sydney_fall_back_in_april"),
    ("Australia/Sydney", "30 * * * *", "2026-04-04 14:45",
     ["2026-04-04 15:30", "2026-04-04 16:30", "2026-04-04 17:30"],
     "hourly_at_half_past_fires_in_both_passes_on_sydney_fall_back_in_april"),
    ("Australia/Sydney", "*/15 * * * *", "2026-10-03 15:30",
     ["2026-10-03 15:45", "2026-10-03 16:00", "2026-10-03 16:15"],
     "quarter_hours_keep_elapsed_time_on_sydney_spring_forward_in_october"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("timezone", "expression", "after", "expected"),
    [pytest.param(*row[:4], id=row[4]) for row in DST_TABLE],
)
def test_dst_fire_instants(timezone: str, expression: str, after: str, expected: list[str]) -> None:
    assert upcoming(expression, timezone, utc(after), len(expected)) == [utc(e) for e in expected]


# `after` inside the repeated hour (first and second pass) and inside the gap.
AFTER_TABLE = [
    ("Europe/Berlin", "30 2 * * *", "2026-10-25 00:10", "2026-10-25 00:30",
     "fixed_time_ahead_in_first_pass_fires_in_first_pass_berlin"),
    ("Europe/Berlin", "0 2 * * *", "2026-10-25 00:10", "2026-10-26 01:00",
     "fixed_time_behind_in_first_pass_waits_a_day_berlin"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-25 00:40", "2026-10-26 01:30",
     "fixed_time_just_fired_in_first_pass_does_not_refire_berlin"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-25 01:10", "2026-10-26 01:30",
     "fixed_time_ahead_in_second_pass_does_not_refire_berlin"),
    ("Europe/Berlin", "* 2 * * *", "2026-10-25 01:10", "2026-10-26 01:00",
     "every_minute_of_fixed_hour_does_not_refire_in_second_pass_berlin"),
    ("Europe/Berlin", "* * 2 * * *", "2026-10-25 01:00:01", "2026-10-26 01:00",
     "every_second_of_fixed_hour_does_not_refire_in_second_pass_berlin"),
    ("Europe/Berlin", "* 2,3 * * *", "2026-10-25 01:10", "2026-10-25 02:00",
     "fixed_hours_resume_after_the_repeat_berlin"),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-25 00:10", "2026-10-25 00:15",
     "quarter_hours_in_first_pass_berlin"),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-25 00:50", "2026-10-25 01:00",
     "quarter_hours_from_first_pass_continue_into_second_pass_berlin"),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-25 01:10", "2026-10-25 01:15",
     "quarter_hours_in_second_pass_berlin"),
    ("Europe/Berlin", "10 * * * *", "2026-10-25 00:40", "2026-10-25 01:10",
     "hourly_match_behind_in_first_pass_fires_in_second_pass_berlin"),
    ("Europe/Berlin", "30 * * * *", "2026-10-25 01:10", "2026-10-25 01:30",
     "hourly_match_ahead_in_second_pass_berlin"),
    ("America/New_York", "30 1 * * *", "2026-11-01 05:10", "2026-11-01 05:30",
     "fixed_time_ahead_in_first_pass_new_york"),
    ("America/New_York", "30 1 * * *", "2026-11-01 06:10", "2026-11-02 06:30",
     "fixed_time_ahead_in_second_pass_does_not_refire_new_york"),
    ("America/New_York", "0 * * * *", "2026-11-01 05:10", "2026-11-01 06:00",
     "hourly_from_first_pass_fires_at_second_pass_start_new_york"),
    ("US/Pacific", "30 1 * * *", "2026-11-01 09:10", "2026-11-02 09:30",
     "fixed_time_ahead_in_second_pass_does_not_refire_pacific"),
    ("Australia/Sydney", "30 2 * * *", "2026-04-04 15:10", "2026-04-04 15:30",
     "fixed_time_ahead_in_first_pass_sydney"),
    ("Australia/Sydney", "30 2 * * *", "2026-04-04 16:10", "2026-04-05 16:30",
     "fixed_time_ahead_in_second_pass_does_not_refire_sydney"),
    ("Australia/Sydney", "*/15 * * * *", "2026-04-04 16:10", "2026-04-04 16:15",
     "quarter_hours_in_second_pass_sydney"),
    ("Europe/Berlin", "30 2 * * *", "2026-03-29 00:59:59", "2026-03-29 01:00",
     "fixed_time_in_gap_fires_at_gap_end_just_after_it_berlin"),
    ("Europe/Berlin", "30 2 * * *", "2026-03-29 01:00", "2026-03-30 00:30",
     "fixed_time_in_gap_does_not_refire_after_gap_end_berlin"),
    ("Europe/Berlin", "0,30 2 * * *", "2026-03-29 01:00", "2026-03-30 00:00",
     "several_times_in_gap_fire_once_at_gap_end_berlin"),
    ("Europe/Berlin", "*/15 * * * *", "2026-03-29 00:59", "2026-03-29 01:00",
     "quarter_hours_skip_gap_wall_times_berlin"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("timezone", "expression", "after", "expected"),
    [pytest.param(*row[:4], id=row[4]) for row in AFTER_TABLE],
)
def test_next_fire_from_inside_a_transition(
    timezone: str, expression: str, after: str, expected: str
) -> None:
    assert Crontab(expression, timezone).next_after(utc(after)) == utc(expected)


@pytest.mark.parametrize(
    ("fold", "expression", "expected"),
    [
        # 02:30 does not exist in Berlin on 2026-03-29. fold=0 reads it with the old offset
        # (CET), the instant 01:30Z = 03:30 CEST; fold=1 with the new one, 00:30Z = 01:30 CET.
        pytest.param(0, "30 2 * * *", "2026-03-30 00:30", id="fold0_fixed_time_next_day"),
        pytest.param(0, "*/15 * * * *", "2026-03-29 01:45", id="fold0_quarter_hours"),
        pytest.param(1, "30 2 * * *", "2026-03-29 01:00", id="fold1_fixed_time_at_gap_end"),
        pytest.param(1, "*/15 * * * *", "2026-03-29 00:45", id="fold1_quarter_hours"),
    ],
)
def test_after_given_as_a_wall_time_inside_the_gap(fold: int, expression: str, expected: str):
    after = datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN, fold=fold)
    assert Crontab(expression, "Europe/Berlin").next_after(after) == utc(expected)


@pytest.mark.parametrize(
    "timezone", ["Europe/Berlin", "America/New_York", "US/Pacific", "Australia/Sydney"]
)
@pytest.mark.parametrize("expression", ["30 2 * * *", "0 2 * * *", "0 0 * * *", "30 1 * * *"])
def test_daily_fixed_time_fires_once_on_every_local_day_of_the_year(
    timezone: str, expression: str
) -> None:
    zone = ZoneInfo(timezone)
    start = datetime(2026, 1, 1, tzinfo=zone).astimezone(UTC) - timedelta(microseconds=1)
    fires = upcoming(expression, timezone, start, 365)
    days = [f.astimezone(zone).date() for f in fires]
    assert days == [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]


@pytest.mark.parametrize(
    ("timezone", "transition"),
    [
        ("Europe/Berlin", "2026-03-29 01:00"),
        ("Europe/Berlin", "2026-10-25 01:00"),
        ("America/New_York", "2026-03-08 07:00"),
        ("America/New_York", "2026-11-01 06:00"),
        ("US/Pacific", "2026-11-01 09:00"),
        ("Australia/Sydney", "2026-04-04 16:00"),
        ("Australia/Sydney", "2026-10-03 16:00"),
        ("Australia/Lord_Howe", "2026-10-03 15:30"),
    ],
)
def test_quarter_hours_stay_fifteen_real_minutes_apart_across_transition(
    timezone: str, transition: str
) -> None:
    start = utc(transition) - timedelta(hours=6)
    fires = upcoming("*/15 * * * *", timezone, start, 48)
    assert fires[0] == start + timedelta(minutes=15)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(fires))


# --- why we wrap APScheduler --------------------------------------------------------------


def test_apscheduler_fires_a_fixed_time_twice_on_berlin_fall_back_and_we_do_not() -> None:
    theirs = CronTrigger(hour=2, minute=30, timezone=BERLIN)
    fires: list[datetime] = []
    previous, now = None, utc("2026-10-24 12:00")
    for _ in range(3):
        previous = theirs.get_next_fire_time(previous, now)
        now = previous
        fires.append(previous.astimezone(UTC))
    assert fires == [utc("2026-10-25 00:30"), utc("2026-10-25 01:30"), utc("2026-10-26 01:30")]

    ours = upcoming("30 2 * * *", "Europe/Berlin", utc("2026-10-24 12:00"), 2)
    assert ours == [utc("2026-10-25 00:30"), utc("2026-10-26 01:30")]


def test_apscheduler_from_crontab_reads_weekday_zero_as_monday_and_we_read_sunday() -> None:
    after = utc("2026-01-01 00:00")  # a Thursday
    theirs = CronTrigger.from_crontab("0 0 * * 0", timezone=UTC).get_next_fire_time(None, after)
    assert weekday_name(theirs) == "Mon"
    with pytest.raises(ValueError, match="7"):
        CronTrigger.from_crontab("0 0 * * 7", timezone=UTC)

    assert weekday_name(Crontab("0 0 * * 0", "UTC").next_after(after)) == "Sun"
    assert weekday_name(Crontab("0 0 * * 7", "UTC").next_after(after)) == "Sun"


def test_apscheduler_ands_day_fields_and_we_follow_vixie_or() -> None:
    after = utc("2026-02-01 00:00")
    theirs = CronTrigger(day=13, day_of_week="fri", timezone=UTC).get_next_fire_time(None, after)
    assert theirs == utc("2026-02-13 00:00")  # only a Friday the 13th
    assert Crontab("0 0 13 * 5", "UTC").next_after(after) == utc("2026-02-06 00:00")


# --- bounded computation ------------------------------------------------------------------


# A hang guard, not a timing assertion (apscheduler#105/#189 looped on such expressions).
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00", id="leap_day"),
        pytest.param("0 0 29 2 *", "2099-03-01 00:00", "2104-02-29 00:00", id="leap_day_2100"),
        pytest.param("0 0 1 1 *", "2026-01-01 00:00", "2027-01-01 00:00", id="new_year"),
        pytest.param("0 0 31 * *", "2026-04-01 00:00", "2026-05-31 00:00", id="31st"),
        pytest.param("59 23 31 12 5", "2026-12-26 00:00", "2026-12-31 23:59", id="eve_or_fri"),
        pytest.param("0 0 30 2 mon", "2026-03-01 00:00", "2027-02-01 00:00", id="feb30_or_mon"),
        pytest.param("0 0 31 4 */7", "2026-01-01 00:00", None, id="rejected_never_occurs"),
        pytest.param("0 0 29 2 1", "2026-03-01 00:00", "2027-02-01 00:00", id="leap_or_mon"),
        pytest.param("0 0 13 2 */7", "2026-03-01 00:00", "2028-02-13 00:00", id="sunday_13th_feb"),
    ],
)
def test_sparse_expression_next_fire(expression: str, after: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidSchedule):
            Crontab(expression, "UTC")
        return
    crontab = Crontab(expression, "Europe/Berlin")
    fire = crontab.next_after(utc(after))
    local = datetime.fromisoformat(expected).replace(tzinfo=BERLIN)
    assert fire == local.astimezone(UTC)
    # and many in a row stay consistent
    fires = upcoming(expression, "Europe/Berlin", utc(after), 20)
    assert fires == sorted(set(fires))


# --- property: brute-force oracle ---------------------------------------------------------

PROPERTY_ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "US/Pacific",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
]


def _transitions(timezone: str, year: int) -> list[datetime]:
    zone = ZoneInfo(timezone)
    start = datetime(year, 1, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(366 * 24)]
    return [
        b
        for a, b in pairwise(hours)
        if a.astimezone(zone).utcoffset() != b.astimezone(zone).utcoffset()
    ] or [start + timedelta(days=180)]


TRANSITIONS = {tz: _transitions(tz, 2026) + _transitions(tz, 2027) for tz in PROPERTY_ZONES}


class _Oracle:
    """Brute force over every UTC minute, independent of the implementation."""

    def __init__(
        self,
        minutes: set[int],
        hours: set[int],
        hour_star: bool,
        days: set[int] | None,
        weekdays: set[int] | None,
        timezone: str,
    ) -> None:
        self.minutes, self.hours, self.hour_star = minutes, hours, hour_star
        self.days, self.weekdays = days, weekdays
        self.zone = ZoneInfo(timezone)

    def _day(self, day: date) -> bool:
        dom_ok = self.days is None or day.day in self.days
        dow_ok = self.weekdays is None or (day.weekday() + 1) % 7 in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def _wall(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and wall.hour in self.hours and self._day(wall.date())

    def next_after(self, after: datetime) -> datetime:
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        previous = (t - timedelta(minutes=1)).astimezone(self.zone)
        for _ in range(60 * 24 * 40):
            local = t.astimezone(self.zone)
            wall = local.replace(tzinfo=None)
            if self.hour_star:
                if self._wall(wall):
                    return t
            else:
                if local.fold == 0 and self._wall(wall):
                    return t
                before, now = previous.utcoffset(), local.utcoffset()
                assert before is not None and now is not None
                if now > before:  # a gap: wall times [previous + 1 min, local) were skipped
                    skipped = previous.replace(tzinfo=None) + timedelta(minutes=1)
                    while skipped < wall:
                        if self._wall(skipped):
                            return t
                        skipped += timedelta(minutes=1)
            previous = local
            t += timedelta(minutes=1)
        raise AssertionError("oracle found no fire within 40 days")


def _render(values: set[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


@st.composite
def crontab_cases(draw: st.DrawFn) -> tuple[str, _Oracle, datetime]:
    timezone = draw(st.sampled_from(PROPERTY_ZONES))
    minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=4))
    hour_kind = draw(st.sampled_from(["star", "star_step", "list"]))
    if hour_kind == "star":
        hours, hour_text = set(range(24)), "*"
    elif hour_kind == "star_step":
        step = draw(st.integers(2, 12))
        hours, hour_text = set(range(0, 24, step)), f"*/{step}"
    else:
        hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=4))
        hour_text = _render(hours)
    weekdays = draw(st.none() | st.sets(st.integers(0, 6), min_size=1, max_size=3))
    days = None if weekdays is None else draw(st.none() | st.sets(st.integers(1, 31), max_size=3))
    dow_text = "*" if weekdays is None else _render(weekdays)
    if weekdays is not None and 0 in weekdays and draw(st.booleans()):
        dow_text = _render((weekdays - {0}) | {7})  # Sunday spelt 7
    dom_text = "*" if not days else _render(days)
    expression = f"{_render(minutes)} {hour_text} {dom_text} * {dow_text}"
    transition = draw(st.sampled_from(TRANSITIONS[timezone]))
    after = transition + timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))
    oracle = _Oracle(minutes, hours, hour_text.startswith("*"), days or None, weekdays, timezone)
    return f"{expression}|{timezone}", oracle, after


@settings(max_examples=150, deadline=None)
@given(crontab_cases())
def test_next_after_matches_brute_force_oracle(case: tuple[str, _Oracle, datetime]) -> None:
    spec, oracle, after = case
    expression, timezone = spec.split("|")
    crontab = Crontab(expression, timezone)
    previous = after
    for _ in range(3):
        fire = crontab.next_after(previous)
        assert fire > previous
        assert fire == oracle.next_after(previous), (expression, timezone, previous)
        previous = fire


@settings(max_examples=100, deadline=None)
@given(
    timezone=st.sampled_from(PROPERTY_ZONES),
    second=st.integers(0, 59),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    after=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
)
def test_fixed_daily_time_fires_once_a_day_with_matching_wall_time_or_gap_end(
    timezone: str, second: int, minute: int, hour: int, after: datetime
) -> None:
    zone = ZoneInfo(timezone)
    crontab = Crontab(f"{second} {minute} {hour} * * *", timezone)
    fires = [crontab.next_after(after)]
    for _ in range(3):
        fires.append(crontab.next_after(fires[-1]))
    assert fires[0] > after
    assert all(a < b for a, b in pairwise(fires))
    days = [f.astimezone(zone).date() for f in fires]
    assert all(b - a == timedelta(days=1) for a, b in pairwise(days))
    for fire in fires:
        local = fire.astimezone(zone)
        matches = (local.hour, local.minute, local.second) == (hour, minute, second)
        just_before = (fire - timedelta(seconds=1)).astimezone(zone)
        gap_end = just_before.utcoffset() != local.utcoffset() and (
            just_before.replace(tzinfo=None)
            < local.replace(tzinfo=None, hour=hour, minute=minute, second=second)
            < local.replace(tzinfo=None)
        )
        assert matches or gap_end, (fire, local)
