"""Exclusion calendars: what each rule covers in a time zone (across DST), how stretches
merge, and what the claim records for excluded fires, on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, insert

from scheduler.firing.claim import claim_due
from scheduler.store.jobstore import SqlJobStore
from scheduler.store.models import calendars
from scheduler.timing.calendar_rules import CalendarRule
from scheduler.timing.exclusions import Calendar, Exclusions
from scheduler.timing.fire_policy import FireTimesCache, fire_times_of, upcoming
from tests.factories import add_schedule, runs_of, schedule

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 21, 12, 0, tzinfo=UTC)  # a Monday
_rules = TypeAdapter(list[CalendarRule])


def cal(*rules: dict[str, Any], name: str = "c", version: int = 1) -> Calendar:
    return Calendar(name, version, _rules.validate_python(list(rules)))


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


def test_a_date_excludes_the_whole_local_day_in_the_zone() -> None:
    ex = Exclusions([cal({"type": "dates", "dates": ["2026-12-24"]})], BERLIN)
    cover = ex.cover(local(2026, 12, 24, 12))
    assert cover is not None
    assert (cover.start, cover.end) == (local(2026, 12, 24), local(2026, 12, 25))
    assert ex.cover(local(2026, 12, 23, 23, 59)) is None
    assert ex.cover(local(2026, 12, 25)) is None  # the end is allowed


def test_a_day_across_the_spring_change_is_23_hours_long() -> None:
    ex = Exclusions([cal({"type": "dates", "dates": ["2026-03-29"]})], BERLIN)
    cover = ex.cover(local(2026, 3, 29, 12))
    assert cover is not None and cover.end is not None
    assert cover.end - cover.start == timedelta(hours=23)


def test_weekly_window_with_times_of_day_repeats_each_week() -> None:
    rule = {"type": "weekly", "days": ["mon-fri"], "start_time": "12:00", "end_time": "13:30"}
    ex = Exclusions([cal(rule)], BERLIN)
    assert ex.cover(local(2026, 12, 22, 12, 45)) is not None  # Tuesday lunch
    assert ex.cover(local(2026, 12, 22, 13, 30)) is None
    assert ex.cover(local(2026, 12, 26, 12, 45)) is None  # Saturday


def test_adjacent_stretches_of_several_calendars_merge_into_one() -> None:
    weekend = cal({"type": "weekly", "days": ["sat-sun"]}, name="weekend")
    monday = cal({"type": "dates", "dates": ["2026-12-28"]}, name="bridge")
    ex = Exclusions([weekend, monday], BERLIN)
    cover = ex.cover(local(2026, 12, 27, 9))
    assert cover is not None
    assert (cover.start, cover.end) == (local(2026, 12, 26), local(2026, 12, 29))
    assert cover.calendar == "weekend"
    monday_cover = ex.cover(local(2026, 12, 28, 9))
    assert monday_cover is not None and monday_cover.calendar == "bridge"


def test_public_holidays_come_from_the_holidays_package() -> None:
    ex = Exclusions([cal({"type": "holidays", "country": "DE", "subdivision": "BY"})], BERLIN)
    cover = ex.cover(local(2026, 12, 25, 10))
    assert cover is not None and "Christmas" in cover.label
    assert ex.cover(local(2027, 1, 6, 10)) is not None  # Epiphany, Bavaria only
    bremen = Exclusions([cal({"type": "holidays", "country": "DE", "subdivision": "HB"})], BERLIN)
    assert bremen.cover(local(2027, 1, 6, 10)) is None


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:freeze
DTSTART;VALUE=DATE:20261230
DTEND;VALUE=DATE:20270102
SUMMARY:Change freeze
END:VEVENT
BEGIN:VEVENT
UID:maint
DTSTART;TZID=Europe/Berlin:20261201T020000
DTEND;TZID=Europe/Berlin:20261201T040000
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=Europe/Berlin:20261208T020000
SUMMARY:Maintenance
END:VEVENT
END:VCALENDAR
"""


def test_ics_all_day_timed_and_recurring_events() -> None:
    ex = Exclusions([cal({"type": "ics", "content": ICS})], ZoneInfo("America/New_York"))
    freeze = ex.cover(datetime(2026, 12, 31, 12, tzinfo=ZoneInfo("America/New_York")))
    assert freeze is not None and freeze.label == "Change freeze"
    # All-day events are local days of the schedule's zone; timed ones are instants.
    assert freeze.end == datetime(2027, 1, 2, tzinfo=ZoneInfo("America/New_York"))
    assert ex.cover(local(2026, 12, 15, 3)) is not None  # third weekly occurrence
    assert ex.cover(local(2026, 12, 8, 3)) is None  # EXDATE
    assert ex.cover(local(2026, 12, 29, 3)) is None  # COUNT=4 ended


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "dates", "dates": []},
        {"type": "date_range", "start": "2026-12-10", "end": "2026-12-01"},
        {"type": "weekly", "days": ["funday"]},
        {"type": "weekly", "days": ["mon"], "start_time": "13:00", "end_time": "12:00"},
        {"type": "holidays", "country": "XX"},
        {"type": "holidays", "country": "DE", "subdivision": "ZZ"},
        {"type": "ics", "content": "not a calendar"},
    ],
)
def test_invalid_rules_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _rules.validate_python([rule])


def _row(on_excluded: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "s",
        "trigger": trigger,
        "created_at": T0,
        "start_at": None,
        "end_at": None,
        "exclude_calendars": ["c"],
        "on_excluded": on_excluded,
    }


HOURLY_BERLIN = {"type": "cron", "expression": "0 * * * *", "timezone": "Europe/Berlin"}


def test_next_allowed_moves_a_whole_excluded_stretch_to_one_fire() -> None:
    calendars = {"c": cal({"type": "dates", "dates": ["2026-12-24"]})}
    fires = fire_times_of(_row("next_allowed", HOURLY_BERLIN), calendars)
    planned = upcoming(fires, local(2026, 12, 23, 22, 30), 3)
    excluded = [p.scheduled_for for p in planned if p.excluded is not None]
    firing = [p.scheduled_for for p in planned if p.excluded is None]
    assert excluded == [local(2026, 12, 24, h) for h in range(24)]
    # 25 Dec 00:00 is both where the stretch ends and a planned fire: one fire.
    assert firing == [local(2026, 12, 23, 23), local(2026, 12, 25), local(2026, 12, 25, 1)]


def test_next_allowed_adds_the_stretch_end_when_it_is_not_a_planned_instant() -> None:
    daily = {"type": "cron", "expression": "0 9 * * *", "timezone": "Europe/Berlin"}
    rule = {"type": "weekly", "days": ["thu"], "start_time": "08:00", "end_time": "10:15"}
    fires = fire_times_of(_row("next_allowed", daily), {"c": cal(rule)})
    firing = [p.scheduled_for for p in upcoming(fires, T0, 4) if p.excluded is None]
    assert firing[2] == local(2026, 12, 24, 10, 15)  # Thursday's 09:00, moved
    assert local(2026, 12, 24, 9) not in firing


def _calendar(engine: Engine, name: str, rules: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(calendars).values(
                name=name, description="", rules=rules, version=1, created_at=T0, updated_at=T0
            )
        )


def test_claim_records_an_excluded_fire_skipped_naming_the_calendar(
    engine: Engine, token: int
) -> None:
    _calendar(engine, "xmas", [{"type": "dates", "dates": ["2026-12-24"]}])
    daily = {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"}
    add_schedule(engine, "s", daily, T0, exclude_calendars=["xmas"], on_excluded="skip")
    for day in (22, 23, 24, 25):
        claim_due(engine, local(2026, 12, day, 3, 0, 1), token, 10)
    states = [(r["scheduled_for"], r["state"], r["reason"]) for r in runs_of(engine, "s")]
    assert [s for _, s, _ in states] == ["pending", "pending", "skipped", "pending"]
    assert states[2][0] == local(2026, 12, 24, 3)
    assert "'xmas'" in states[2][2]
    assert {r["schedule_version"] for r in runs_of(engine, "s")} == {1}
    assert schedule(engine, "s")["skipped_count"] == 1


def test_claim_moves_excluded_fires_to_one_run_at_the_first_allowed_instant(
    engine: Engine, token: int
) -> None:
    _calendar(
        engine,
        "lunch",
        [{"type": "weekly", "days": ["mon-sun"], "start_time": "12:00", "end_time": "12:20"}],
    )
    every_5m = {"type": "cron", "expression": "*/5 * * * *", "timezone": "Europe/Berlin"}
    add_schedule(engine, "s", every_5m, T0, exclude_calendars=["lunch"], on_excluded="next_allowed")
    now = local(2026, 12, 22, 11, 50)
    dispatched = []
    while now < local(2026, 12, 22, 12, 30):
        dispatched += [d.scheduled_for for d in claim_due(engine, now, token, 10).dispatches]
        now += timedelta(seconds=30)
    assert dispatched == [local(2026, 12, 22, 11, m) for m in (50, 55)] + [
        local(2026, 12, 22, 12, m) for m in (20, 25)
    ]
    skipped = [r for r in runs_of(engine, "s") if r["state"] == "skipped"]
    assert [r["scheduled_for"] for r in skipped] == [
        local(2026, 12, 22, 12, m) for m in (0, 5, 10, 15)
    ]
    assert all("moved to" in r["reason"] for r in skipped)


def test_a_calendar_changed_since_the_last_claim_is_used_by_the_next(
    engine: Engine, token: int
) -> None:
    _calendar(engine, "c", [{"type": "dates", "dates": ["2026-12-30"]}])
    hourly = {"type": "cron", "expression": "0 * * * *", "timezone": "UTC"}
    add_schedule(engine, "s", hourly, T0, exclude_calendars=["c"])
    cache = FireTimesCache()
    claim_due(engine, T0 + timedelta(hours=1, seconds=1), token, 10, cache)
    with engine.begin() as conn:
        conn.execute(
            calendars.update().values(
                rules=[{"type": "dates", "dates": [date(2026, 12, 21).isoformat()]}], version=2
            )
        )
    claim_due(engine, T0 + timedelta(hours=2, seconds=1), token, 10, cache)
    assert [r["state"] for r in runs_of(engine, "s")] == ["pending", "skipped"]


def test_apscheduler_sees_the_same_fire_times_with_calendars(engine: Engine) -> None:
    _calendar(engine, "xmas", [{"type": "dates", "dates": ["2026-12-24"]}])
    daily = {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"}
    add_schedule(engine, "s", daily, T0, exclude_calendars=["xmas"], on_excluded="next_allowed")
    job = SqlJobStore(engine).lookup_job("s")
    assert job is not None
    after_23rd = job.trigger.get_next_fire_time(local(2026, 12, 23, 3), T0)
    assert after_23rd == local(2026, 12, 24, 3)  # excluded, recorded skipped
    assert job.trigger.get_next_fire_time(after_23rd, T0) == local(2026, 12, 25)  # moved


def test_the_next_excluded_stretches_are_listed_in_order_and_a_long_range_whole() -> None:
    calendar = cal(
        {"type": "weekly", "days": ["sat-sun"]},
        {"type": "date_range", "start": "2026-12-23", "end": "2027-03-31"},
        {"type": "dates", "dates": ["2026-12-22"]},
    )

    spans = calendar.upcoming(BERLIN, T0, 4)

    assert [(s.start, s.end, s.label) for s in spans] == [
        (local(2026, 12, 22), local(2026, 12, 23), "2026-12-22"),
        # Reaches over several 30-day chunks: still one stretch, to its real end.
        (local(2026, 12, 23), local(2027, 4, 1), "2026-12-23 to 2027-03-31"),
        # Saturday and Sunday touch: one weekend.
        (local(2026, 12, 26), local(2026, 12, 28), "weekly sat-sun 00:00-24:00"),
        (local(2027, 1, 2), local(2027, 1, 4), "weekly sat-sun 00:00-24:00"),
    ]
    assert calendar.upcoming(BERLIN, local(2026, 12, 22, 12), 1)[0].start == local(2026, 12, 22)
