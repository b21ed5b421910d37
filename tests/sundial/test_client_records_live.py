"""The client's calendars, history, audit, restore, timeline and alerts against a real
``sundial api`` process, on SQLite and PostgreSQL; and ``reason=`` on every write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.runs.alerts import AlertKind
from sundial.client import (
    CalendarSpec,
    Conflict,
    Cron,
    Dates,
    Holidays,
    Interval,
    InvalidInput,
    NotFound,
    ScheduleSpec,
    Weekly,
)
from tests.services import wait_for
from tests.sundial.conftest import WRITER, LiveApi

pytestmark = pytest.mark.slow


def test_calendars_round_trip_and_refuse_bad_rules_and_deleting_one_in_use(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    weekend, holidays = name("weekend"), name("holidays")
    schedule_id = name("s")
    spec = CalendarSpec(description="weekends", rules=[Weekly(days=["sat-sun"])])
    with live_api.client() as client:
        made = client.put_calendar(weekend, spec, reason="team off")
        client.put_calendar(
            holidays, {"rules": [{"type": "holidays", "country": "DE", "subdivision": "BY"}]}
        )
        replaced = client.put_calendar(
            holidays, CalendarSpec(rules=[Holidays(country="DE"), Dates(dates=["2026-12-24"])])
        )
        client.create(
            ScheduleSpec(
                id=schedule_id,
                task="sundial.echo",
                trigger=Cron(expression="0 3 * * *", timezone="Europe/Berlin"),
                exclude_calendars=[weekend, holidays],
                on_excluded="next_allowed",
            )
        )
        one = client.get_calendar(weekend)
        listed = {c.name for c in client.iter_calendars(page_size=1)}
        page = client.list_calendars(limit=1)
        with pytest.raises(Conflict, match=schedule_id):
            client.delete_calendar(weekend)
        with pytest.raises(InvalidInput) as bad:
            client.put_calendar(name("bad"), {"rules": [{"type": "dates", "dates": [20261224]}]})
        (created,) = client.audit(calendar=weekend).items
        client.delete(schedule_id)
        client.delete_calendar(weekend, reason="no longer needed")
        with pytest.raises(NotFound):
            client.get_calendar(weekend)
        latest = client.audit(calendar=weekend, limit=1).items[0]

    assert (made.version, made.rules, made.description) == (
        1,
        [{"type": "weekly", "days": ["sat-sun"], "start_time": "00:00", "end_time": "24:00"}],
        "weekends",
    )
    assert replaced.version == 2 and replaced.rules[1] == {"type": "dates", "dates": ["2026-12-24"]}
    assert one.used_by == [schedule_id]
    assert {weekend, holidays} <= listed and len(page.items) == 1
    assert bad.value.errors[0]["loc"] == ["body", "rules", 0, "dates", "dates", 0]
    assert (created.kind, created.actor, created.reason) == ("calendar_create", WRITER, "team off")
    assert (latest.kind, latest.reason) == ("calendar_delete", "no longer needed")


def test_every_write_records_its_reason(live_api: LiveApi, name: Callable[[str], str]) -> None:
    sid, cron_id, source = name("s"), name("cron"), name("src")
    now = datetime.now(UTC)
    hourly = Interval(seconds=3600)
    with live_api.client() as client:
        client.create(ScheduleSpec(id=sid, task="sundial.echo", trigger=hourly), reason="create")
        client.put(
            ScheduleSpec(id=sid, task="sundial.echo", trigger=hourly, queue="q"), reason="put"
        )
        client.patch(sid, {"description": "patched"}, reason="patch")
        client.pause(sid, reason="pause")
        client.resume(sid, reason="resume")
        client.trigger(sid, reason="trigger")
        client.backfill(sid, now - timedelta(hours=3), now - timedelta(hours=1), reason="backfill")
        client.restore(sid, 1, reason="restore")
        client.delete(sid, reason="delete")
        client.cron(cron_id, "sundial.echo", "0 3 * * *", reason="cron")
        client.apply(
            [
                {
                    "id": name("applied"),
                    "task": "sundial.echo",
                    "trigger": {"type": "interval", "seconds": 60},
                }
            ],
            source=source,
            reason="apply",
        )
        delayed = client.delay("sundial.echo", seconds=60, reason="delay")
        at = client.at("sundial.echo", now + timedelta(days=1), reason="at")
        history = [
            (c.kind, c.reason) for c in reversed(list(client.iter_history(sid, page_size=3)))
        ]
        others = [
            client.history(schedule_id, limit=1).items[0].reason
            for schedule_id in (cron_id, delayed.id, at.id)
        ]
        applied = client.audit(kind=["apply"], actor=[WRITER], limit=10).items

    assert history == [
        ("create", "create"),
        ("update", "put"),
        ("update", "patch"),
        ("pause", "pause"),
        ("resume", "resume"),
        ("trigger", "trigger"),
        ("backfill", "backfill"),
        ("restore", "restore"),
        ("delete", "delete"),
    ]
    assert others == ["cron", "delay", "at"]
    assert any(c.reason == "apply" and c.details == {"source": source} for c in applied)


def test_history_audit_filters_and_restore_of_a_deleted_schedule(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    sid = name("s")
    spec = ScheduleSpec(id=sid, task="sundial.echo", trigger=Interval(seconds=60), description="v1")
    with live_api.client() as client:
        started = datetime.now(UTC) - timedelta(seconds=1)
        client.create(spec)
        for n in range(2, 6):
            client.patch(sid, {"description": f"v{n}"})
        client.delete(sid)
        newest_first = list(client.iter_history(sid, page_size=2))
        audited = list(client.iter_audit(page_size=2, schedule_id=sid, kind=["update"]))
        window = client.audit(
            schedule_id=sid, since=started, until=datetime.now(UTC) + timedelta(1)
        )
        before_start = client.audit(schedule_id=sid, until=started)
        restored = client.restore(sid, 3, reason="bring v3 back")
        with pytest.raises(NotFound):
            client.restore(sid, 99)
        with pytest.raises(NotFound):
            client.history(name("never"))

    assert [c.kind for c in newest_first] == ["delete", *["update"] * 4, "create"]
    assert [c.version for c in newest_first] == [5, 5, 4, 3, 2, 1]  # deleted at version 5
    assert newest_first[1].diff == {"description": {"from": "v4", "to": "v5"}}
    assert newest_first[-1].spec is not None and newest_first[-1].spec["description"] == "v1"
    assert [c.version for c in audited] == [5, 4, 3, 2]
    assert len(window.items) == 6 and before_start.items == []
    assert (restored.description, restored.version, restored.state) == ("v3", 6, "active")


def test_the_timeline_shows_paused_fires_with_who_and_why_across_pages(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    sid = name("tick")
    with live_api.client() as client:
        made = client.create(ScheduleSpec(id=sid, task="sundial.echo", trigger=Interval(seconds=1)))
        client.pause(sid, reason="incident 4711")

        def paused_fires() -> int:
            entries = client.timeline(sid, since=made.created_at).items
            return sum(1 for e in entries if e.cause == "paused" and e.status == "not_fired")

        wait_for(lambda: paused_fires() >= 3, 20, "three paused fires in the timeline", 0.2)
        first = client.timeline(sid, since=made.created_at)
        paged = list(
            client.iter_timeline(sid, since=made.created_at, until=first.until, page_size=2)
        )
        with pytest.raises(NotFound):
            client.timeline(name("never"))
        with pytest.raises(InvalidInput) as backwards:
            client.timeline(sid, since=first.until, until=made.created_at)

    paused = [e for e in first.items if e.cause == "paused"]
    assert paused and all(e.paused is not None for e in paused)
    assert paused[0].paused is not None
    assert (paused[0].paused.actor, paused[0].paused.reason) == (WRITER, "incident 4711")
    assert "incident 4711" in paused[0].detail
    assert [e.scheduled_for for e in paused] == sorted(e.scheduled_for for e in paused)
    assert [e.scheduled_for for e in paged] == [e.scheduled_for for e in first.items]
    assert first.schedule_id == sid and backwards.value.status == 422


def test_alerts_are_listed_filtered_and_read_one_by_one(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    late, failing = name("late"), name("failing")
    live_api.raise_alert(late, AlertKind.DEADLINE, f"{late} needs a look")
    live_api.raise_alert(failing, AlertKind.FAILURE, f"{failing} needs a look")
    with live_api.client() as client:
        (deadline,) = client.alerts(schedule_id=late, state="open").items
        one = client.alert(deadline.id)
        failures = list(client.iter_alerts(kind=["failure"], schedule_id=failing, page_size=1))
        resolved = client.alerts(schedule_id=late, state="resolved").items
        with pytest.raises(NotFound):
            client.alert(2**40)

    assert (deadline.kind, deadline.open, deadline.message) == (
        "deadline",
        True,
        f"{late} needs a look",
    )
    assert one == deadline
    assert [a.schedule_id for a in failures] == [failing]
    assert resolved == []
