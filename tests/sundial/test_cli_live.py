"""The ``sundial`` client subcommands against a real ``sundial api`` process, on SQLite and
PostgreSQL: ad-hoc commands, apply/diff/export, and every error path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from sundial.cli import main
from tests.services import free_port
from tests.sundial.conftest import READ_KEY, WRITE_KEY, LiveApi

pytestmark = pytest.mark.slow


def run(live_api: LiveApi, *args: str, key: str | None = "write") -> Result:
    env = live_api.env({"write": WRITE_KEY, "read": READ_KEY, None: None}[key])
    return CliRunner().invoke(main, list(args), env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    """The one line a failed command prints on stderr."""
    assert result.exit_code == code, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and "Traceback" not in result.stderr, result.stderr
    if code == 1:
        assert len(lines) == 1, lines
    return result.stderr.strip()


def test_ad_hoc_commands(live_api: LiveApi, name: Callable[[str], str]) -> None:
    team = name("team")
    sid = name("nightly")
    created = ok(
        run(
            live_api,
            "create",
            "reports.generate",
            "--cron",
            "0 3 * * 1-5",
            "--tz",
            "Europe/Berlin",
            "--id",
            sid,
            "-l",
            f"team={team}",
            "--kwargs",
            '{"format": "pdf"}',
        )
    )
    ok(run(live_api, "create", "sundial.echo", "--every", "15m", "-l", f"team={team}"))
    listed = ok(run(live_api, "list", "-l", f"team={team}"))
    as_json = json.loads(ok(run(live_api, "list", "-l", f"team={team}", "-o", "json")))
    only_cron = json.loads(
        ok(run(live_api, "list", "-l", f"team={team}", "--task", "reports.generate", "-o", "json"))
    )
    paused = ok(run(live_api, "pause", sid, "--reason", "vendor down"))
    paused_list = yaml.safe_load(
        ok(run(live_api, "list", "-l", f"team={team}", "--state", "paused", "-o", "yaml"))
    )
    resumed = ok(run(live_api, "resume", sid))
    got = ok(run(live_api, "get", sid))
    triggered = ok(run(live_api, "trigger", sid))
    runs = ok(run(live_api, "runs", sid))
    preview = ok(run(live_api, "preview", sid, "--count", "2", "--after", "2027-01-04T00:00:00Z"))
    cron_preview = json.loads(
        ok(
            run(
                live_api,
                "preview",
                "--cron",
                "*/15 * * * *",
                "--after",
                "2027-01-01T00:00:00Z",
                "--count",
                "2",
                "-o",
                "json",
            )
        )
    )
    deleted = ok(run(live_api, "delete", sid))

    assert f"created {sid}: At 03:00, Monday through Friday (Europe/Berlin)" in created
    assert "At 03:00, Monday through Friday (Europe/Berlin)" in listed
    assert "Every 15 minutes" in listed and f"team={team}" in listed
    assert "in " in listed and "Z)" in listed  # relative and absolute next run
    assert len(as_json) == 2 and [s["id"] for s in only_cron] == [sid]
    assert "paused (vendor down)" in paused
    assert [s["id"] for s in paused_list] == [sid]
    assert f"{sid}: active" in resumed
    assert "reports.generate" in got and '{"format":"pdf"}' in got
    assert "pending" in triggered and "manual" in runs
    # Monday 4 January 2027, 03:00 in Berlin = 02:00Z, then Tuesday.
    assert "2027-01-04 02:00:00Z" in preview and "2027-01-05 02:00:00Z" in preview
    assert cron_preview["fire_times"] == ["2027-01-01T00:15:00Z", "2027-01-01T00:30:00Z"]
    assert f"deleted {sid}" in deleted
    failed(run(live_api, "get", sid))


def _schedule(schedule_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": schedule_id,
        "task": "sundial.echo",
        "trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
        **fields,
    }


def test_apply_diff_prune_drift_and_export_round_trip(
    live_api: LiveApi,
    name: Callable[[str], str],
    tmp_files: Callable[[str, str], Path],
) -> None:
    a, b, c, hand = name("a"), name("b"), name("c"), name("hand")
    source = name("team")
    directory = tmp_files(f"{source}/one.yaml", yaml.safe_dump([_schedule(a), _schedule(b)])).parent
    tmp_files(f"{source}/two.json", json.dumps({"schedules": [_schedule(c, queue="q")]}))
    ok(run(live_api, "create", "sundial.echo", "--every", "1h", "--id", hand))
    ok(run(live_api, "apply", "-f", str(directory), "--source", source, "--dry-run"))
    nothing_yet = run(live_api, "get", a)

    applied = ok(run(live_api, "apply", "-f", str(directory), "--source", source))
    again = ok(run(live_api, "apply", "-f", str(directory), "--source", source))
    # A hand edit of a managed schedule, and a changed file.
    ok(run(live_api, "pause", b, "--reason", "incident"))
    (directory / "two.json").unlink()
    options = {"time_limit_seconds": 60, "exchange": "ex", "routing_key": "rk", "headers": {"t": 1}}
    tmp_files(
        f"{source}/one.yaml",
        yaml.safe_dump([_schedule(a, queue="fast"), _schedule(b, **options)]),
    )
    diff = run(live_api, "diff", "-f", str(directory), "--source", source, "--prune", "--exit-code")
    applied_prune = ok(
        run(live_api, "apply", "-f", str(directory), "--source", source, "--prune", "-o", "json")
    )
    exported = ok(run(live_api, "export", "--source", source))
    export_file = tmp_files("export.yaml", exported)
    round_trip = ok(run(live_api, "apply", "-f", str(export_file), "--source", source))
    hand_made = ok(run(live_api, "get", hand, "-o", "json"))

    failed(nothing_yet)
    assert "3 created" in applied
    assert "No changes: 3 schedules" in again
    assert diff.exit_code == 3, diff.output
    assert f"~ {a}: change" in diff.stdout and 'queue: "celery" → "fast"' in diff.stdout
    assert "drift since the last apply: paused: false → true" in diff.stdout
    assert f"- {c}: would be pruned" in diff.stdout
    plan = json.loads(applied_prune)
    assert [e["id"] for e in plan["pruned"]] == [c]
    assert {e["id"] for e in plan["changed"]} == {a, b}
    by_id = {s["id"]: s for s in yaml.safe_load(exported)}
    assert set(by_id) == {a, b}
    assert {k: by_id[b][k] for k in options} == options
    assert "No changes: 2 schedules" in round_trip
    assert json.loads(hand_made)["managed_by"] is None


def test_an_invalid_entry_changes_nothing_and_names_file_entry_and_field(
    live_api: LiveApi, name: Callable[[str], str], tmp_files: Callable[[str, str], Path]
) -> None:
    good, bad = name("good"), name("bad")
    path = tmp_files(
        "bad.yaml",
        yaml.safe_dump(
            [_schedule(good), _schedule(bad, trigger={"type": "cron", "expression": "61 * * * *"})]
        ),
    )

    message = failed(run(live_api, "apply", "-f", str(path), "--source", name("s")))

    assert f"bad.yaml, entry 2 (id '{bad}'): trigger" in message and "minute" in message
    failed(run(live_api, "get", good))


def test_api_errors_are_one_line_and_exit_1(
    live_api: LiveApi, name: Callable[[str], str], tmp_files: Callable[[str, str], Path]
) -> None:
    path = tmp_files("one.yaml", yaml.safe_dump([_schedule(name("x"))]))

    unauthorized = failed(run(live_api, "list", key=None))
    forbidden = failed(run(live_api, "apply", "-f", str(path), key="read"))
    invalid = failed(run(live_api, "create", "x.y", "--cron", "99 * * * *"))
    missing = failed(run(live_api, "pause", name("nope")))
    readable = run(live_api, "list", "--limit", "1", key="read")

    assert "HTTP 401: missing API key" in unauthorized and "SUNDIAL_API_KEY" in unauthorized
    assert "HTTP 403" in forbidden
    assert "HTTP 422: body.trigger.expression: minute: 99 is outside 0-59" in invalid
    assert "HTTP 404: no schedule" in missing
    assert readable.exit_code == 0


def test_usage_errors_exit_2(live_api: LiveApi, tmp_files: Callable[[str, str], Path]) -> None:
    empty = tmp_files("empty.yaml", "")
    broken = tmp_files("broken.yaml", "[: nope")

    for args in (
        ["create", "x.y"],
        ["create", "x.y", "--every", "5q"],
        ["create", "x.y", "--every", "5m", "--cron", "* * * * *"],
        ["create", "x.y", "--at", "2027-01-01T00:00:00"],
        ["create", "x.y", "--in", "1m", "--kwargs", "[1]"],
        ["apply", "-f", "/does/not/exist"],
        ["apply", "-f", str(empty)],
        ["apply", "-f", str(broken)],
        ["list", "--state", "sleepy"],
        ["preview"],
    ):
        result = run(live_api, *args)
        assert result.exit_code == 2, (args, result.output, result.stderr)
        assert "Traceback" not in result.stderr


def test_failures_in_a_real_process_print_one_line_and_no_traceback(live_api: LiveApi) -> None:
    def sundial(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sundial", *args],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )

    unreachable = sundial(
        "list", env={**live_api.env(), "SUNDIAL_API_URL": f"http://127.0.0.1:{free_port()}"}
    )
    unauthorized = sundial("list", env=live_api.env(None))

    for result, text in ((unreachable, "cannot reach the sundial API"), (unauthorized, "HTTP 401")):
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
