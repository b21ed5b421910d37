"""The command line: settings are validated at start with a message naming the variable."""

from __future__ import annotations

import pytest

from sundial.cli import load_settings, parse_args


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
