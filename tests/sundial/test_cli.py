"""The command line: settings are validated at start with a message naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sundial.cli import cmd_timeline, load_settings, parse_args
from sundial.timeline_cli import show_timeline
from tests.api.support import FakeClock, TestClient, put, z


def test_bad_setting_exits_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDIAL_LEASE_TTL_SECONDS", "soon")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert "SUNDIAL_LEASE_TTL_SECONDS" in str(exit_info.value.code)


def test_bad_api_key_role_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDIAL_API_KEYS", "abc:admin")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert "SUNDIAL_API_KEYS" in str(exit_info.value.code)


def test_broker_defaults_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDIAL_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.delenv("SUNDIAL_BROKER_URL", raising=False)
    settings = load_settings()
    assert settings.broker_url == "redis://127.0.0.1:6379/3"
    assert not settings.embedded_broker


def test_worker_passes_celery_options_through() -> None:
    args = parse_args(["worker", "--pool=solo", "-Q", "reports"])
    assert args.celery_args == ["--pool=solo", "-Q", "reports"]


def test_other_commands_refuse_unknown_options() -> None:
    with pytest.raises(SystemExit):
        parse_args(["scheduler", "--pool=solo"])


def test_timeline_prints_each_planned_instant_with_its_cause(
    capsys: pytest.CaptureFixture[str], client: TestClient, clock: FakeClock
) -> None:
    put(client, "s", trigger={"type": "interval", "seconds": 600})
    clock.advance(3600)
    since = z(clock.now - timedelta(minutes=30))
    assert show_timeline(client, "s", since, z(clock.now + timedelta(minutes=20))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert "not_fired" in lines[0] and "no_record" in lines[0]
    assert "upcoming" in lines[-1] and "not yet due" in lines[-1]
    assert parse_args(["timeline", "s", "--since", since]).func is cmd_timeline


def test_timeline_of_an_unknown_schedule_exits_1(
    capsys: pytest.CaptureFixture[str], client: TestClient
) -> None:
    assert show_timeline(client, "nope", None, None) == 1
    assert "404" in capsys.readouterr().err
