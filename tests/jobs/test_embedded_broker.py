"""The embedded (file-system) broker: no server, yet a worker consumes across processes."""

from __future__ import annotations

import pytest

from jobs.tasks import ECHO
from scheduler.broker import embedded_broker_dir
from tests.worker import running_worker

pytestmark = pytest.mark.services


def test_worker_consumes_message_published_by_another_process(
    settings_factory, celery_client, tmp_path
):
    results = tmp_path / "results"
    results.mkdir()
    settings = settings_factory(result_backend=f"file://{results}")
    assert settings.embedded_broker
    app = celery_client(settings)

    with running_worker(settings) as worker:
        result = app.send_task(
            ECHO, args=["hello"], kwargs={"n": 1}, headers={"sundial_run_id": "x"}
        )
        assert result.get(timeout=20) == {"args": ["hello"], "kwargs": {"n": 1}}

    assert embedded_broker_dir(settings).is_relative_to(tmp_path)
    assert f"{ECHO}[{result.id}] succeeded" in worker.log()
