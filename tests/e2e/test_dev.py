"""`sundial dev` as a user runs it: one command, no servers, a delay job fires and succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from scheduler.firing.embedded_broker import STATE_FILE
from tests.services import free_port, wait_for

pytestmark = pytest.mark.slow


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_dev_fires_a_one_second_delay_job_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")} | {
        "PYTHONUNBUFFERED": "1"
    }
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sundial", "dev", "--port", str(port)],
            cwd=tmp_path,  # embedded defaults: ./sundial.db and ./.sundial
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return proc.poll() is not None  # stop waiting if it died

            wait_for(ready, 90, "sundial dev to be ready", interval=0.2)
            assert proc.poll() is None, log_path.read_text()

            created = client.post(
                "/v1/schedules",
                json={
                    "task": "sundial.echo",
                    "kwargs": {"hello": "world"},
                    "trigger": {"type": "delay", "seconds": 1},
                },
            )
            assert created.status_code == 201, created.text
            schedule = created.json()
            assert schedule["trigger"]["type"] == "date"

            def succeeded() -> dict[str, object] | None:
                items = client.get(f"/v1/schedules/{schedule['id']}/runs").json()["items"]
                return items[0] if items and items[0]["state"] == "succeeded" else None

            run = wait_for(succeeded, 30, "the run to succeed", interval=0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    published_late = _parse(str(run["dispatched_at"])) - _parse(str(run["scheduled_for"]))
    assert published_late.total_seconds() < 1.0, run
    assert run["result"] == {"args": [], "kwargs": {"hello": "world"}}
    assert code == 0, log_path.read_text()[-3000:]
    assert (tmp_path / "sundial.db").exists()
    # The embedded broker it started is stopped too, its queue kept on disk.
    broker = tmp_path / ".sundial" / "broker"
    assert (broker / "appendonlydir").is_dir()
    assert not (broker / STATE_FILE).exists()
