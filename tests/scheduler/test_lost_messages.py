"""Runs whose message the Redis broker lost between queue and worker: found by looking
through the real broker's lists and unacked hash, and put back for the relay only when
missing twice, never started, and only under the current term."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine, update

from scheduler.errors import LeadershipLost
from scheduler.firing import lost_messages
from scheduler.firing.claim import Dispatch
from scheduler.firing.lost_messages import BrokerInventory, LostMessages
from scheduler.firing.messages import PRIORITY_SEP, MessageBuilder, redis_list_key
from scheduler.runs.outcomes import record_outcome
from scheduler.store.models import RunState, runs
from tests.factories import add_run, add_schedule, runs_of
from tests.scheduler.conftest import T0
from tests.services import unique_name

pytestmark = pytest.mark.services

AFTER = timedelta(seconds=60)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """The test Redis; every key a test makes starts ``lost-`` and goes afterwards."""
    made = redis.Redis.from_url(redis_url)
    try:
        yield made
    finally:
        keys = list(made.scan_iter(match="lost-*"))
        if keys:
            made.delete(*keys)
        made.close()


def _envelope(run_id: str, queue: str, priority: int | None = None) -> str:
    """The message the Redis fast path pushes for a run."""
    return MessageBuilder().envelope(
        Dispatch(
            run_id=run_id,
            schedule_id="s",
            scheduled_for=T0,
            task="sundial.echo",
            args=[],
            kwargs={},
            queue=queue,
            priority=priority,
            expires_at=None,
        )
    )


def test_inventory_finds_messages_queued_at_any_priority_routed_or_delivered(
    client: redis.Redis,
) -> None:
    queue, routed, unacked = unique_name("lost-q"), unique_name("lost-r"), unique_name("lost-u")
    binding = f"_kombu.binding.{unique_name('lost-x')}"
    queued, urgent, elsewhere, delivered, gone = (
        f"00000000-0000-0000-0000-00000000000{i}" for i in range(5)
    )
    client.lpush(queue, _envelope(queued, queue))
    client.lpush(redis_list_key(queue, 9), _envelope(urgent, queue, 9))
    # A message routed by exchange and routing key sits in a queue a binding names.
    client.sadd(binding, PRIORITY_SEP.join(["key", "", routed]))
    client.lpush(routed, _envelope(elsewhere, routed))
    # A message a worker took and has not acknowledged: kombu files [message, exchange, key].
    client.hset(unacked, "tag-1", json.dumps([json.loads(_envelope(delivered, queue)), "", queue]))
    try:
        inventory = BrokerInventory(client, unacked)
        asked = [(run, queue) for run in (queued, urgent, elsewhere, delivered, gone)]

        assert inventory.held(asked) == {queued, urgent, elsewhere, delivered}
        assert inventory.held([]) == set()
    finally:
        client.delete(binding, redis_list_key(queue, 9))


def test_inventory_declines_a_backlog_too_long_to_search(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, unacked = unique_name("lost-q"), unique_name("lost-u")
    client.lpush(queue, *(_envelope(f"run-{i}", queue) for i in range(10)))
    inventory = BrokerInventory(client, unacked)
    monkeypatch.setattr(lost_messages, "MAX_COMPARISONS", 19)

    # Two runs against ten messages is 20 comparisons: over the budget, no answer.
    assert inventory.held([("run-1", queue), ("run-x", queue)]) is None
    assert inventory.held([("run-1", queue)]) == {"run-1"}


def _dispatched(engine: Engine, schedule_id: str, ago: timedelta, **overrides: object) -> str:
    scheduled_for = T0 - ago
    row = add_run(
        engine,
        schedule_id,
        scheduled_for,
        state=overrides.pop("state", RunState.DISPATCHED.value),
        dispatched_at=scheduled_for,
        **overrides,
    )
    return str(row["id"])


@pytest.fixture
def queue(engine: Engine) -> str:
    """The queue of schedule ``s``, whose runs the tests dispatch."""
    name = unique_name("lost-q")
    add_schedule(
        engine, "s", {"type": "interval", "seconds": 1}, T0 - timedelta(hours=1), queue=name
    )
    return name


@pytest.fixture
def sweep(engine: Engine, client: redis.Redis) -> LostMessages:
    """A sweep over the test Redis, with an unacked hash of its own."""
    return LostMessages(engine, BrokerInventory(client, unique_name("lost-u")), AFTER)


def _overtaken(engine: Engine, schedule_id: str) -> None:
    """A run dispatched later than the others and started: the queue has a worker."""
    _dispatched(
        engine, schedule_id, timedelta(seconds=100), state=RunState.SUCCEEDED.value, started_at=T0
    )


def test_sweep_puts_back_only_runs_missing_twice_and_never_started(
    engine: Engine, token: int, client: redis.Redis, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, "s", timedelta(seconds=120))
    queued = _dispatched(engine, "s", timedelta(seconds=119))
    started = _dispatched(
        engine, "s", timedelta(seconds=118), state=RunState.STARTED.value, started_at=T0
    )
    recent = _dispatched(engine, "s", timedelta(seconds=30))
    client.lpush(queue, _envelope(queued, queue))

    # Missing once may be a message between the queue and the unacked hash.
    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == [lost]

    by_id = {run["id"]: run for run in runs_of(engine, "s")}
    assert by_id[lost]["state"] == RunState.PENDING.value
    assert by_id[lost]["due_at"] is None
    assert "neither queued nor delivered" in by_id[lost]["reason"]
    assert [by_id[r]["state"] for r in (queued, started, recent)] == [
        RunState.DISPATCHED.value,
        RunState.STARTED.value,
        RunState.DISPATCHED.value,
    ]
    assert all(by_id[r]["reason"] is None for r in (queued, started, recent))


def test_a_run_is_put_back_once_only(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, "s", timedelta(seconds=120))
    _overtaken(engine, "s")
    sweep.sweep(T0, token)
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == [lost]
    # Sent again and recorded dispatched, then unreported again (its events lost too).
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == lost).values(state=RunState.DISPATCHED.value))

    assert sweep.sweep(T0 + timedelta(seconds=30), token) == []
    assert sweep.sweep(T0 + timedelta(seconds=45), token) == []
    assert runs_of(engine, "s")[0]["state"] == RunState.DISPATCHED.value


def test_a_run_that_starts_between_sweeps_is_left_alone(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    slow = _dispatched(engine, "s", timedelta(seconds=120))
    _overtaken(engine, "s")
    assert sweep.sweep(T0, token) == []
    # Its task event arrives late: the message was with a worker after all.
    assert record_outcome(engine, slow, RunState.STARTED, {"started_at": T0}, T0)

    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert runs_of(engine, "s")[0]["state"] == RunState.STARTED.value


def test_nothing_is_taken_for_lost_on_a_queue_whose_worker_reports_no_start(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    start = T0 - timedelta(hours=1)
    add_schedule(engine, "other", {"type": "interval", "seconds": 1}, start, queue="lost-other")
    silent = _dispatched(engine, "s", timedelta(seconds=120))
    # A worker without task events (no -E) consumed it; only another queue's worker reports.
    _overtaken(engine, "other")

    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert runs_of(engine, "s")[0]["id"] == silent
    assert runs_of(engine, "s")[0]["state"] == RunState.DISPATCHED.value


def test_a_stale_term_puts_nothing_back(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, "s", timedelta(seconds=120))
    _overtaken(engine, "s")
    assert sweep.sweep(T0, token) == []

    with pytest.raises(LeadershipLost):
        sweep.sweep(T0 + timedelta(seconds=15), token - 1)
    run = runs_of(engine, "s")[0]
    assert (run["id"], run["state"], run["reason"]) == (lost, RunState.DISPATCHED.value, None)
