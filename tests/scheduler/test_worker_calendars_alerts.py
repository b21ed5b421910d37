"""Calendars and alerts on the real fire path: a leader stepped by the test, a Celery
worker process on the real Redis broker, PostgreSQL, and a real HTTP alert receiver."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, timedelta

import pytest
from pydantic import SecretStr

from scheduler.runs.alert_watch import AlertWatcher
from scheduler.runs.alert_webhook import AlertWebhook
from scheduler.store.calendar_store import CalendarSpec, put_calendar
from scheduler.store.history import Audit
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule, runs_of
from tests.scheduler.conftest import LiveLeader, Receiver
from tests.worker import running_worker

PROBES = ["--include", "tests.jobs.probe_tasks"]


@pytest.fixture(scope="session")
def database_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("postgresql")


def _ics(start: str, end: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\n"
        f"DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:window\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_a_fire_in_an_excluded_window_runs_once_when_it_ends(live_leader: LiveLeader) -> None:
    now = utcnow().replace(microsecond=0)
    window_end = now + timedelta(seconds=3)
    stamp = "%Y%m%dT%H%M%SZ"
    spec = CalendarSpec.model_validate(
        {
            "rules": [
                {
                    "type": "ics",
                    "content": _ics(
                        (now - timedelta(seconds=5)).strftime(stamp), window_end.strftime(stamp)
                    ),
                }
            ]
        }
    )
    with live_leader.engine.begin() as conn:
        put_calendar(conn, "window", spec, now, Audit("test"))
    with running_worker(live_leader.settings, queues=live_leader.queue):
        for n, delay in enumerate((1, 2)):
            add_schedule(
                live_leader.engine,
                f"moved{n}",
                {"type": "date", "run_at": (now + timedelta(seconds=delay)).isoformat()},
                now,
                task="sundial.echo",
                queue=live_leader.queue,
                exclude_calendars=["window"],
                on_excluded="next_allowed",
            )
        live_leader.drive(
            lambda: all(
                [r["state"] for r in runs_of(live_leader.engine, f"moved{n}")]
                == ["skipped", "succeeded"]
                for n in (0, 1)
            ),
            30,
            "each excluded one-off run once, when the window ends",
        )
    skipped, ran = runs_of(live_leader.engine, "moved0")
    assert ran["scheduled_for"] == window_end.astimezone(UTC)
    assert ran["started_at"] >= window_end
    assert "moved to" in skipped["reason"] and "moved here from" in ran["reason"]


def test_a_failing_run_alerts_through_the_webhook(
    live_leader: LiveLeader, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    webhook = AlertWebhook(url, SecretStr("s"), allowed_hosts=["127.0.0.1"])
    watcher = AlertWatcher(live_leader.engine, timedelta(seconds=1), webhook)
    now = utcnow()
    with running_worker(live_leader.settings, queues=live_leader.queue, argv=PROBES):
        add_schedule(
            live_leader.engine,
            "late",
            {"type": "date", "run_at": now.isoformat()},
            now,
            task="sundial_test.fail",
            queue=live_leader.queue,
            expect_success_within_seconds=1,
        )

        def alerted() -> bool:
            live_leader.cycle()
            watcher.step(utcnow())
            events = [json.loads(body)["alert"]["kind"] for _, body in handler.received]
            return sorted(events) == ["deadline", "failure"]

        live_leader.drive(alerted, 30, "a failure alert and a deadline alert delivered")
    texts = [json.loads(body)["text"] for _, body in handler.received]
    assert any("failed for good" in t and "boom" in t for t in texts)
    assert all(
        headers["X-Sundial-Signature"].startswith("sha256=") for headers, _ in handler.received
    )
