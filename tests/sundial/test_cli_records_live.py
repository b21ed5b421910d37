"""``sundial timeline``, ``history``, ``audit``, ``restore``, ``calendars`` and ``alerts``,
``--reason`` on writes, and calendars in apply files, against a real ``sundial api``
process on SQLite and PostgreSQL, error paths included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.runs.alerts import AlertKind
from tests.services import wait_for
from tests.sundial.conftest import WRITER, LiveApi
from tests.sundial.test_cli_live import failed, ok, run

pytestmark = pytest.mark.slow


def _json(live_api: LiveApi, *args: str) -> Any:
    return json.loads(ok(run(live_api, *args, "-o", "json")))


def _create(live_api: LiveApi, schedule_id: str, task: str, *options: str) -> None:
    """``sundial create TASK OPTIONS --id SCHEDULE_ID``, which must succeed."""
    ok(run(live_api, "create", task, *options, "--id", schedule_id))


def test_timeline_shows_each_instant_in_the_schedules_zone_and_utc(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    sid = name("tick")
    # Every second (six fields: a leading seconds field), read in Berlin.
    _create(live_api, sid, "sundial.echo", "--cron", "* * * * * *", "--tz", "Europe/Berlin")
    ok(run(live_api, "pause", sid, "--reason", "incident 4711"))

    def paused() -> list[dict[str, Any]]:
        entries = _json(live_api, "timeline", sid, "--since", "1h")
        return [e for e in entries if e["cause"] == "paused"] if len(entries) >= 3 else []

    entries = wait_for(paused, 20, "paused instants in the timeline", interval=0.3)
    table = ok(run(live_api, "timeline", sid, "--since", "1h"))
    as_yaml = yaml.safe_load(ok(run(live_api, "timeline", sid, "-o", "yaml", "--limit", "2")))

    header = table.splitlines()[0]
    assert "TIME (Europe/Berlin)" in header and "UTC" in header and "CAUSE" in header
    assert " CET " in table and "Z " in table
    assert f"paused by {WRITER} since " in table and "Z: incident 4711" in table
    assert entries[0]["paused"]["actor"] == WRITER and entries[0]["status"] == "not_fired"
    assert len(as_yaml) == 2 and {"scheduled_for", "status", "cause"} <= set(as_yaml[0])


def test_timeline_errors_are_one_line(live_api: LiveApi, name: Callable[[str], str]) -> None:
    sid = name("s")
    _create(live_api, sid, "sundial.echo", "--every", "1h")

    missing = failed(run(live_api, "timeline", name("nope")))
    backwards = failed(run(live_api, "timeline", sid, "--since", "1h", "--until", "2h"))
    unreadable = run(live_api, "timeline", sid, "--since", "last tuesday")

    assert "HTTP 404: no schedule" in missing
    assert "HTTP 422" in backwards and "until must be after since" in backwards
    assert unreadable.exit_code == 2 and "--since" in unreadable.stderr
    assert "Traceback" not in unreadable.stderr


def test_reasons_history_audit_and_restore(live_api: LiveApi, name: Callable[[str], str]) -> None:
    sid = name("nightly")
    _create(live_api, sid, "reports.generate", "--cron", "0 3 * * *", "--reason", "new report")
    ok(run(live_api, "pause", sid, "--reason", "vendor down"))
    ok(run(live_api, "resume", sid, "--reason", "vendor back"))
    ok(run(live_api, "trigger", sid, "--reason", "rerun for finance"))
    history = ok(run(live_api, "history", sid))
    audit = _json(
        live_api,
        "audit",
        "--schedule",
        sid,
        "--kind",
        "pause",
        "--kind",
        "resume",
        "--actor",
        WRITER,
        "--since",
        "1h",
    )
    restored = ok(run(live_api, "restore", sid, "1", "--reason", "undo"))
    ok(run(live_api, "delete", sid, "--reason", "retired"))
    after = _json(live_api, "history", sid, "--limit", "2")
    nothing = run(live_api, "audit", "--schedule", sid, "--until", "2000-01-01T00:00:00Z")
    read_only = failed(run(live_api, "restore", sid, "1", key="read"))

    lines = history.splitlines()
    assert lines[0].split() == [
        "WHEN",
        "┃",
        "KIND",
        "┃",
        "ACTOR",
        "┃",
        "VERSION",
        "┃",
        "REASON",
        "┃",
        "WHAT",
    ]
    assert "trigger" in lines[2] and "rerun for finance" in lines[2] and "run_id=" in lines[2]
    assert "vendor down" in history and "paused: false → true" in history
    assert "create" in lines[-1] and "new report" in lines[-1] and WRITER in lines[-1]
    assert [(c["kind"], c["reason"]) for c in audit] == [
        ("resume", "vendor back"),
        ("pause", "vendor down"),
    ]
    assert f"restored {sid} to version 1, now version 4 (active)" in restored
    assert [(c["kind"], c["reason"]) for c in after] == [("delete", "retired"), ("restore", "undo")]
    assert nothing.exit_code == 0 and "No changes recorded." in nothing.stderr
    assert "HTTP 403" in read_only


CALENDARS = """\
- name: {holidays}
  description: Bavarian public holidays
  rules:
    - {{type: holidays, country: DE, subdivision: BY}}
    - {{type: dates, dates: ["2026-12-24", "2026-12-31"]}}
- name: {weekend}
  rules: [{{type: weekly, days: [sat-sun]}}]
"""


def test_calendars_apply_list_get_and_delete(
    live_api: LiveApi, name: Callable[[str], str], tmp_files: Callable[[str, str], Path]
) -> None:
    holidays, weekend, sid = name("holidays"), name("weekend"), name("s")
    path = tmp_files("calendars.yaml", CALENDARS.format(holidays=holidays, weekend=weekend))

    first = ok(run(live_api, "calendars", "apply", "-f", str(path), "--reason", "season"))
    again = ok(run(live_api, "calendars", "apply", "-f", str(path)))
    listed = ok(run(live_api, "calendars", "list"))
    _create(
        live_api,
        sid,
        "sundial.echo",
        "--cron",
        "0 3 * * *",
        "--exclude-calendar",
        holidays,
        "--on-excluded",
        "next_allowed",
    )
    shown = ok(run(live_api, "calendars", "get", holidays))
    got = ok(run(live_api, "get", sid))
    fetched = ok(run(live_api, "calendars", "get", weekend, "-o", "yaml"))
    refetched = tmp_files("fetched.yaml", fetched)
    unchanged = ok(run(live_api, "calendars", "apply", "-f", str(refetched)))
    in_use = failed(run(live_api, "calendars", "delete", holidays))
    deleted = ok(run(live_api, "calendars", "delete", weekend, "--reason", "not needed"))
    audit = _json(live_api, "audit", "--calendar", weekend)

    assert f"{holidays}: created (version 1)" in first and f"{weekend}: created" in first
    assert f"{holidays}: unchanged (version 1)" in again
    assert "public holidays DE-BY; dates 2026-12-24, 2026-12-31" in listed
    assert "weekly sat-sun" in listed
    assert sid in shown and "Bavarian public holidays" in shown
    assert f"{holidays} (excluded fires are run at the next allowed instant)" in got
    assert f"{weekend}: unchanged" in unchanged
    assert "HTTP 409" in in_use and sid in in_use
    assert f"deleted calendar {weekend}" in deleted
    assert [(c["kind"], c["reason"]) for c in audit] == [
        ("calendar_delete", "not needed"),
        ("calendar_create", "season"),
    ]


def test_a_bad_calendar_rule_is_one_line_naming_file_calendar_and_field(
    live_api: LiveApi, name: Callable[[str], str], tmp_files: Callable[[str, str], Path]
) -> None:
    bad = name("bad")
    path = tmp_files("bad.yaml", f"- name: {bad}\n  rules: [{{type: dates, dates: [20261224]}}]\n")
    nameless = tmp_files("nameless.yaml", "rules: [{type: weekly, days: [sun]}]\n")

    message = failed(run(live_api, "calendars", "apply", "-f", str(path)))
    usage = run(live_api, "calendars", "apply", "-f", str(nameless))

    assert f"bad.yaml, calendar 1 (name '{bad}'): rules.0.dates.dates.0" in message
    assert "YYYY-MM-DD" in message
    assert usage.exit_code == 2 and "needs a name" in usage.stderr
    failed(run(live_api, "calendars", "get", bad))


def test_an_apply_file_defines_calendars_with_its_schedules_and_export_round_trips(
    live_api: LiveApi, name: Callable[[str], str], tmp_files: Callable[[str, str], Path]
) -> None:
    xmas, sid, source = name("xmas"), name("report"), name("src")
    document = {
        "calendars": [{"name": xmas, "rules": [{"type": "dates", "dates": ["2026-12-25"]}]}],
        "schedules": [
            {
                "id": sid,
                "task": "sundial.echo",
                "trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"},
                "exclude_calendars": [xmas],
            }
        ],
    }
    path = tmp_files("with-calendars.yaml", yaml.safe_dump(document))
    broken = {**document, "calendars": [{"name": xmas, "rules": [{"type": "dates", "dates": [1]}]}]}
    broken_path = tmp_files("broken.yaml", yaml.safe_dump(broken))

    refused = failed(run(live_api, "apply", "-f", str(broken_path), "--source", source))
    nothing = run(live_api, "get", sid)
    applied = ok(run(live_api, "apply", "-f", str(path), "--source", source, "--reason", "ship"))
    again = ok(run(live_api, "apply", "-f", str(path), "--source", source))
    exported = ok(run(live_api, "export", "--source", source))
    round_trip = ok(
        run(live_api, "apply", "-f", str(tmp_files("export.yaml", exported)), "--source", source)
    )

    assert "broken.yaml, calendar 1" in refused and "rules.0.dates.dates.0" in refused
    assert nothing.exit_code == 1
    assert f"+ calendar {xmas}: create" in applied and f"+ {sid}: create" in applied
    assert "Calendars were: 1 created" in applied
    assert "No changes: 1 schedule" in again
    assert yaml.safe_load(exported)["calendars"] == [
        {"name": xmas, "description": "", "rules": [{"type": "dates", "dates": ["2026-12-25"]}]}
    ]
    assert "No changes: 1 schedule" in round_trip


def test_alerts_lists_open_alerts(live_api: LiveApi, name: Callable[[str], str]) -> None:
    late = name("late")
    quiet = run(live_api, "alerts", "--open", "--schedule", late)
    live_api.raise_alert(late, AlertKind.DEADLINE, f"schedule {late}: not succeeded within 3600s")

    table = ok(run(live_api, "alerts", "--open", "--schedule", late))
    as_json = _json(live_api, "alerts", "--schedule", late, "--kind", "deadline")

    assert quiet.exit_code == 0 and "No open alerts." in quiet.stderr
    assert "deadline" in table and "open" in table and "not succeeded within 3600s" in table
    assert [(a["schedule_id"], a["resolved_at"]) for a in as_json] == [(late, None)]
