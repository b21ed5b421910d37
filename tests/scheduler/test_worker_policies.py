"""Run lifecycle and policies reached for real: a Celery worker process on the real Redis
broker, task events tracked into PostgreSQL, the leader's cycle stepped by the test."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.timing.clock import utcnow
from tests.factories import add_schedule, runs_of, schedule
from tests.scheduler.conftest import LiveLeader
from tests.worker import running_worker

PROBES = ["--include", "tests.jobs.probe_tasks"]


@pytest.fixture(scope="session")
def database_url(new_database_url: Callable[[str], str]) -> str:
    """PostgreSQL only: these tests are about the worker, the stores are covered elsewhere."""
    return new_database_url("postgresql")


def _one_off(leader: LiveLeader, schedule_id: str, task: str, **fields: Any) -> None:
    now = utcnow()
    add_schedule(
        leader.engine,
        schedule_id,
        {"type": "date", "run_at": now.isoformat()},
        now,
        task=task,
        queue=leader.queue,
        **fields,
    )


def _states(leader: LiveLeader, schedule_id: str) -> list[str]:
    return [r["state"] for r in runs_of(leader.engine, schedule_id)]


def test_policy_retry_redispatches_with_backoff_and_counts_the_final_failure(
    live_leader: LiveLeader,
) -> None:
    policy = {"max_attempts": 2, "backoff_seconds": 1, "backoff_max_seconds": 1}
    with running_worker(live_leader.settings, queues=live_leader.queue, argv=PROBES):
        _one_off(live_leader, "fails", "sundial_test.fail", retry=policy)
        live_leader.drive(
            lambda: _states(live_leader, "fails") == ["failed", "failed"], 30, "two failed attempts"
        )
    first, second = runs_of(live_leader.engine, "fails")
    assert (first["attempt"], second["attempt"], second["trigger"]) == (1, 2, "retry")
    assert second["id"] != first["id"] and second["scheduled_for"] == first["scheduled_for"]
    assert second["dispatched_at"] - first["finished_at"] >= timedelta(seconds=0.9)
    assert first["error"]["type"] == "ValueError" and "boom" in first["error"]["message"]
    assert "final failure" in second["reason"]
    assert schedule(live_leader.engine, "fails")["failure_count"] == 1


def test_task_retried_by_celery_passes_through_retrying_to_succeeded(
    live_leader: LiveLeader,
) -> None:
    with running_worker(live_leader.settings, queues=live_leader.queue, argv=PROBES):
        _one_off(live_leader, "flaky", "sundial_test.flaky")
        live_leader.drive(lambda: _states(live_leader, "flaky") == ["succeeded"], 30, "success")
    (run,) = runs_of(live_leader.engine, "flaky")
    assert run["result"] == "ok on retry"
    assert "first attempt fails" in run["error"]["message"]  # left by the retrying event


def test_message_not_started_within_expires_is_recorded_expired(
    live_leader: LiveLeader, tmp_path: Path
) -> None:
    with running_worker(
        live_leader.settings, queues=live_leader.queue, argv=PROBES, pool="solo", concurrency=1
    ):
        # One worker slot: the hog (fired first) holds it past the late message's expiry.
        _one_off(live_leader, "hog", "sundial_test.sleep", kwargs={"seconds": 3})
        _one_off(live_leader, "late", "sundial.echo", expires_seconds=1.0)
        live_leader.drive(lambda: _states(live_leader, "late") == ["expired"], 30, "expiry")
    assert _states(live_leader, "late") == ["expired"]


def test_overlap_skip_never_runs_two_at_once(live_leader: LiveLeader, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with running_worker(live_leader.settings, queues=live_leader.queue, argv=PROBES, concurrency=4):
        now = utcnow()
        add_schedule(
            live_leader.engine,
            "slow",
            {"type": "interval", "seconds": 1},
            now,
            task="sundial_test.sleep",
            queue=live_leader.queue,
            overlap="skip",
            kwargs={"seconds": 2.5, "ledger": str(ledger)},
            coalesce=False,
        )
        live_leader.drive(
            lambda: (
                _states(live_leader, "slow").count("succeeded") >= 2
                and _states(live_leader, "slow").count("skipped") >= 2
            ),
            40,
            "two runs and some skipped fires",
        )
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    spans: dict[str, dict[str, float]] = {}
    for entry in entries:
        spans.setdefault(entry["run"], {})[entry["event"]] = entry["at"]
    ordered = sorted(spans.values(), key=lambda s: s["start"])
    for earlier, later in itertools.pairwise(ordered):
        assert "end" in earlier and earlier["end"] <= later["start"], ordered


def test_cancel_previous_terminates_the_running_run(
    live_leader: LiveLeader, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with running_worker(
        live_leader.settings,
        queues=live_leader.queue,
        argv=PROBES,
        pool="prefork",
        concurrency=2,
    ):
        now = utcnow()
        add_schedule(
            live_leader.engine,
            "cancel",
            {"type": "interval", "seconds": 2},
            now,
            task="sundial_test.sleep",
            queue=live_leader.queue,
            overlap="cancel_previous",
            kwargs={"seconds": 30, "ledger": str(ledger)},
        )
        live_leader.drive(
            lambda: _states(live_leader, "cancel")[:2] == ["revoked", "started"],
            30,
            "the first run revoked and the second started",
        )
    first = runs_of(live_leader.engine, "cancel")[0]
    assert "cancel_previous" in first["reason"]
    ended = [json.loads(x)["run"] for x in ledger.read_text().splitlines() if '"end"' in x]
    assert first["id"] not in ended  # terminated mid-sleep, never finished
