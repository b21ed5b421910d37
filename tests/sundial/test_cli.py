"""The command line: settings are validated at start with a message naming the variable;
server commands keep their options and load only their own layer."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

import jobs.app
from sundial.cli import api_from_environment, load_settings, main


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


def test_worker_passes_celery_options_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(jobs.app, "run_worker", lambda _settings, argv: seen.append(argv))

    result = CliRunner().invoke(main, ["worker", "--pool=solo", "-Q", "reports", "-E"])

    assert result.exit_code == 0, result.output
    assert seen == [["--pool=solo", "-Q", "reports", "-E"]]


@pytest.mark.parametrize(("setting", "logged"), [(None, False), ("true", True)])
def test_api_access_log_is_off_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str | None, logged: bool
) -> None:
    monkeypatch.setenv("SUNDIAL_DATABASE_URL", f"sqlite:///{tmp_path / 'sundial.db'}")
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: seen.append(kwargs))
    monkeypatch.delenv("SUNDIAL_API_ACCESS_LOG", raising=False)
    if setting is not None:
        monkeypatch.setenv("SUNDIAL_API_ACCESS_LOG", setting)

    for workers in ("1", "2"):
        result = CliRunner().invoke(main, ["api", "--workers", workers])
        assert result.exit_code == 0, result.output

    assert [kwargs["access_log"] for kwargs in seen] == [logged, logged]


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give back to the collector what a test's ``sundial api`` froze."""
    yield
    gc.unfreeze()


def _collector_sees(obj: object) -> bool:
    return any(tracked is obj for tracked in gc.get_objects())


@pytest.mark.usefixtures("unfrozen")
def test_the_api_serves_with_its_start_up_out_of_the_collectors_sight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNDIAL_DATABASE_URL", f"sqlite:///{tmp_path / 'sundial.db'}")
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kwargs: served.append(app))

    result = CliRunner().invoke(main, ["api", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert not _collector_sees(served[0])
    assert _collector_sees([]), "a new object is collected as before"

    gc.unfreeze()
    each_worker = api_from_environment()  # what uvicorn calls in each of several workers
    assert not _collector_sees(each_worker)


def test_other_commands_refuse_unknown_options() -> None:
    result = CliRunner().invoke(main, ["scheduler", "--pool=solo"])

    assert result.exit_code == 2
    assert "--pool" in result.output


@pytest.mark.parametrize(
    ("command", "forbidden"),
    [
        ("worker", ("fastapi", "sqlalchemy", "uvicorn")),
        ("scheduler", ("fastapi", "uvicorn")),
        ("list", ("fastapi", "sqlalchemy", "celery", "apscheduler", "uvicorn")),
    ],
)
def test_each_command_loads_only_its_own_layer(command: str, forbidden: tuple[str, ...]) -> None:
    # Resolve the command (as `sundial COMMAND` does) without running it.
    code = (
        "import sys\n"
        "from sundial.cli import main\n"
        f"main.get_command(None, {command!r})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert not [name for name in forbidden if f"'{name}'" in loaded], loaded


def test_the_client_package_imports_no_server_layer() -> None:
    code = "import sys, sundial.client; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name in ("fastapi", "sqlalchemy", "starlette", "celery", "scheduler", "api", "jobs"):
        assert f"'{name}'" not in loaded, name
