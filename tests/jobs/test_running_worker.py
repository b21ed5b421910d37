"""The ``running_worker`` test helper itself: start-up failures are reported, not hung on."""

from __future__ import annotations

import pytest

from tests.worker import running_worker, settings_env


def test_worker_that_exits_before_ready_fails_with_its_log(settings_factory):
    settings = settings_factory()
    with (
        pytest.raises(AssertionError, match=r"exited with .* before it was ready") as failure,
        running_worker(settings, argv=["--no-such-option"]),
    ):
        pass
    assert "no-such-option" in str(failure.value)


def test_settings_survive_the_trip_through_the_environment(settings_factory, monkeypatch):
    settings = settings_factory(
        broker_url="redis://127.0.0.1:6379/13", webhook_allowed_hosts=["a", "*.b"]
    )
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    rebuilt = type(settings)(_env_file=None)
    assert rebuilt == settings
