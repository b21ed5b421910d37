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
