"""import-beat: a real Celery app's beat_schedule becomes sundial schedules that fire when
beat would have fired them (checked against beat's own ``remaining_estimate``/``is_due``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from celery import Celery
from celery.beat import ScheduleEntry
from click.testing import CliRunner
from kombu.entity import Exchange

from sundial.beat import BeatImportError, convert, load_app
from sundial.cli import main
from tests.sundial import beat_app
from tests.sundial.conftest import LiveApi

APP = "tests.sundial.beat_app:app"
SOURCE = "beat-tests.sundial.beat_app"
CRON_ENTRIES = {
    "send-nightly-invoices": "send nightly invoices",
    "weekday-report": "weekday report",
    "sunday-cleanup": "sunday cleanup",
    "weekend-wrap-up": "weekend wrap-up",
    "quarterly-close": "quarterly close",
    "heartbeat": "heartbeat",
}
INTERVAL_ENTRIES = {
    "poll-feed": "poll feed",
    "hourly-sync": "hourly sync",
    "retry-failed": "retry failed",
}
# Fixed instants away from DST changes, so both sides read the same local times.
NOWS = [datetime(2027, 1, 14, 10, 17, 23, tzinfo=UTC), datetime(2027, 7, 1, 21, 59, 59, tzinfo=UTC)]


def test_entries_convert_with_celery_semantics() -> None:
    documents = {d["id"]: d for d in convert(beat_app.app)}

    assert set(documents) == set(CRON_ENTRIES) | set(INTERVAL_ENTRIES)
    nightly = documents["send-nightly-invoices"]
    assert nightly["trigger"] == {
        "type": "cron",
        "expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
    }
    assert (nightly["kwargs"], nightly["queue"], nightly["expires_seconds"]) == (
        {"dry_run": False},
        "billing",
        3600.0,
    )
    assert documents["weekday-report"]["trigger"]["expression"] == "30 8,17 * * 1-5"
    # Routed by the app's task_routes, as Celery would.
    assert documents["weekday-report"]["queue"] == "reports"
    # Celery's 0 is Sunday, and fri-sun wraps around the week.
    assert documents["sunday-cleanup"]["trigger"]["expression"] == "15 4 * * 0"
    assert documents["sunday-cleanup"]["priority"] == 3
    assert documents["weekend-wrap-up"]["trigger"]["expression"] == "0 22 * * 0,5,6"
    assert documents["quarterly-close"]["trigger"]["expression"] == "0 6 1 1,4,7,10 *"
    assert documents["quarterly-close"]["args"] == ["EUR"]
    assert documents["poll-feed"]["trigger"] == {"type": "interval", "seconds": 30.0}
    assert documents["poll-feed"]["args"] == ["https://example.org/feed"]
    assert documents["hourly-sync"]["trigger"]["seconds"] == 3600.0
    assert documents["retry-failed"]["trigger"]["seconds"] == 300.0
    assert nightly["description"] == "Celery beat entry 'send nightly invoices'"


def test_entries_with_no_equivalent_are_refused_each_by_name() -> None:
    app = load_app("tests.sundial.beat_app_unsupported:app")

    with pytest.raises(BeatImportError) as refused:
        convert(app)

    message = str(refused.value)
    assert "'at sunset': solar schedules have no sundial equivalent" in message
    assert "'first monday': restricts both day_of_month and day_of_week" in message
    assert "'unknown option': options with no sundial equivalent: ['link']" in message
    assert "'routed': exchange and routing_key are used together" in message
    assert "'too fast'" in message
    assert "'fine'" not in message


def test_dispatch_options_carry_over_under_sundials_names() -> None:
    app = Celery("opts", broker="memory://", set_as_current=False)
    options = {
        "time_limit": 60,
        "soft_time_limit": 50.5,
        "exchange": Exchange("reports", "topic"),
        "routing_key": "reports.pdf",
        "headers": {"tenant": "acme"},
    }
    app.conf.beat_schedule = {"opts": {"task": "t", "schedule": 60, "options": options}}

    (document,) = convert(app)

    assert {k: document[k] for k in ("time_limit_seconds", "soft_time_limit_seconds")} == {
        "time_limit_seconds": 60,
        "soft_time_limit_seconds": 50.5,
    }
    assert (document["exchange"], document["routing_key"]) == ("reports", "reports.pdf")
    assert document["headers"] == {"tenant": "acme"}


def test_a_bad_app_reference_is_refused_clearly() -> None:
    with pytest.raises(BeatImportError, match="cannot import"):
        load_app("tests.sundial.no_such_module:app")
    with pytest.raises(BeatImportError, match="not a Celery app"):
        load_app("tests.sundial.beat_app:crontab")
    assert load_app("tests.sundial.beat_app") is beat_app.app


def test_print_writes_a_file_apply_reads() -> None:
    result = CliRunner().invoke(main, ["import-beat", APP, "--print"])

    assert result.exit_code == 0, result.stderr
    assert [d["id"] for d in yaml.safe_load(result.stdout)] == [
        d["id"] for d in convert(beat_app.app)
    ]


def test_refused_entries_fail_the_command_with_exit_1_and_change_nothing() -> None:
    result = CliRunner().invoke(
        main,
        ["import-beat", "tests.sundial.beat_app_unsupported:app", "--url", "http://127.0.0.1:9"],
    )

    assert result.exit_code == 1
    assert "'at sunset'" in result.stderr and "Traceback" not in result.stderr


def beat_fire_times(entry_name: str, last_run_at: datetime, count: int) -> list[datetime]:
    """The next fire times beat computes for an entry, with ``now`` pinned at each step."""
    conf: dict[str, Any] = beat_app.app.conf.beat_schedule[entry_name]
    out: list[datetime] = []
    last = last_run_at
    for _ in range(count):
        entry = ScheduleEntry(
            name=entry_name,
            task=conf["task"],
            schedule=conf["schedule"],
            last_run_at=last,
            app=beat_app.app,
        )
        schedule = entry.schedule
        schedule.nowfun = lambda last=last: last
        following = last + schedule.remaining_estimate(last)
        # beat's own due check agrees: not due a second early, due at the time.
        schedule.nowfun = lambda t=following: t - timedelta(seconds=1)
        assert not schedule.is_due(last)[0]
        schedule.nowfun = lambda t=following: t
        assert schedule.is_due(last)[0]
        out.append(following.astimezone(UTC))
        last = following
    return out


@pytest.mark.slow
def test_imported_schedules_fire_when_beat_would(live_api: LiveApi) -> None:
    env = live_api.env()
    runner = CliRunner()

    dry = runner.invoke(main, ["import-beat", APP, "--dry-run"], env=env)
    with live_api.client() as client:
        before = [s.id for s in client.iter_schedules() if s.managed_by == SOURCE]
    applied = runner.invoke(main, ["import-beat", APP], env=env)
    again = runner.invoke(main, ["import-beat", APP], env=env)

    assert dry.exit_code == 0 and "9 created" in dry.stdout and before == []
    assert applied.exit_code == 0, applied.stderr
    assert "No changes: 9 schedules" in again.stdout
    with live_api.client() as client:
        for schedule_id, entry_name in CRON_ENTRIES.items():
            for now in NOWS:
                preview = client.schedule_preview(schedule_id, after=now, count=6)
                assert preview.fire_times == beat_fire_times(entry_name, now, 6), schedule_id
        for schedule_id, entry_name in INTERVAL_ENTRIES.items():
            schedule = client.get(schedule_id)
            preview = client.schedule_preview(schedule_id, after=schedule.created_at, count=4)
            expected = beat_fire_times(entry_name, schedule.created_at, 4)
            assert preview.fire_times == expected, schedule_id
        imported = client.get("send-nightly-invoices")
    assert (imported.managed_by, imported.queue, imported.expires_seconds) == (
        SOURCE,
        "billing",
        3600,
    )
