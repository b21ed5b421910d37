"""Which task events are outcomes of a run."""

from __future__ import annotations

from scheduler.runs.tracking import outcome
from scheduler.store.models import RunState


def test_a_rejected_message_fails_the_run() -> None:
    found = outcome({"type": "task-rejected", "uuid": "r1", "timestamp": 0.0, "requeue": False})
    assert found is not None and found[0] is RunState.FAILED


def test_a_message_requeued_by_its_worker_is_not_an_outcome() -> None:
    # Exactly-once requeues a duplicate that finds its run still running elsewhere.
    assert (
        outcome({"type": "task-rejected", "uuid": "r1", "timestamp": 0.0, "requeue": True}) is None
    )


def test_a_hard_time_limit_is_recorded_as_itself_not_as_billiards_wrapper() -> None:
    event = {
        "type": "task-failed",
        "uuid": "r1",
        "timestamp": 0.0,
        "exception": "ExceptionWithTraceback()",
        "traceback": 'Traceback (most recent call last):\n  File "pool.py", line 745\n'
        "billiard.exceptions.TimeLimitExceeded: TimeLimitExceeded(1.5,)\n",
    }

    found = outcome(event)

    assert found is not None
    error = found[1]["error"]
    assert (error["type"], error["message"]) == ("TimeLimitExceeded", "1.5")
    assert error["traceback"].endswith("TimeLimitExceeded(1.5,)")


def test_an_ordinary_failure_keeps_its_type_and_message() -> None:
    found = outcome(
        {"type": "task-failed", "uuid": "r1", "timestamp": 0.0, "exception": "ValueError('boom')"}
    )

    assert found is not None
    assert found[1]["error"] == {"type": "ValueError", "message": "boom", "traceback": None}


def test_the_worker_that_ended_a_run_is_recorded_not_only_the_one_that_started_it() -> None:
    # After a redelivery (a worker killed mid-task, acks_late) they differ.
    started = outcome({"type": "task-started", "uuid": "r1", "timestamp": 1.0, "hostname": "a@h"})
    ended = outcome(
        {"type": "task-succeeded", "uuid": "r1", "timestamp": 2.0, "hostname": "b@h", "result": "1"}
    )
    failed = outcome({"type": "task-failed", "uuid": "r1", "timestamp": 2.0, "hostname": "c@h"})
    assert started is not None and started[1]["worker"] == "a@h"
    assert ended is not None and ended[1]["worker"] == "b@h"
    assert failed is not None and failed[1]["worker"] == "c@h"
