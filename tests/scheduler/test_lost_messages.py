"""Runs whose message the Redis broker lost between queue and worker: found by looking
through the real broker's lists and unacked hash and the workers' execution ledger, and put
back for the relay only when missing twice, never begun, on a queue whose workers keep the
ledger, once, and only under the current term."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from kombu.utils import json as kombu_json
from sqlalchemy import Engine, select, update

from scheduler.errors import LeadershipLost
from scheduler.firing import lost_messages
from scheduler.firing.claim import Dispatch
from scheduler.firing.lost_messages import (
    WINDOW,
    BrokerInventory,
    LostMessages,
    create_lost_messages,
)
from scheduler.firing.messages import MessageBuilder, redis_list_key
from scheduler.runs.execution_ledger import ledger_key
from scheduler.runs.outcomes import record_outcome
from scheduler.store.db import make_engine
from scheduler.store.models import RunState, runs, schedules
from tests.factories import add_run, add_schedule, runs_of
from tests.scheduler.conftest import T0
from tests.services import unique_name

pytestmark = pytest.mark.services

AFTER = timedelta(seconds=60)


@pytest.fixture
def client(redis_url: str, engine: Engine) -> Iterator[redis.Redis]:
    """The test Redis (broker and ledger); the keys a test makes go afterwards: those
    starting ``lost-``, and the ledger entries of the runs in its store."""
    made = redis.Redis.from_url(redis_url)
    try:
        yield made
    finally:
        keys = list(made.scan_iter(match="lost-*"))
        with engine.connect() as conn:
            keys += [ledger_key(run_id, 0) for run_id in conn.execute(select(runs.c.id)).scalars()]
        if keys:
            made.delete(*keys)
        made.close()


def _envelope(
    run_id: str, queue: str, priority: int | None = None, args: list[Any] | None = None
) -> str:
    """The message the Redis fast path pushes for a run."""
    return MessageBuilder().envelope(
        Dispatch(
            run_id=run_id,
            schedule_id="s",
            scheduled_for=T0,
            task="sundial.echo",
            args=args or [],
            kwargs={},
            queue=queue,
            priority=priority,
            expires_at=None,
        )
    )


def test_inventory_finds_messages_queued_at_any_priority_or_delivered(
    client: redis.Redis,
) -> None:
    queue, unacked = unique_name("lost-q"), unique_name("lost-u")
    queued, urgent, delivered, gone = (f"00000000-0000-0000-0000-00000000000{i}" for i in range(4))
    client.lpush(queue, _envelope(queued, queue))
    client.lpush(redis_list_key(queue, 9), _envelope(urgent, queue, 9))
    # Another run's message whose arguments spell the missing run's property: its header
    # text is escaped JSON, so it does not count as that run's message.
    spelled = f'"correlation_id": "{gone}"'
    client.lpush(queue, _envelope("00000000-0000-0000-0000-0000000000ff", queue, args=[spelled]))
    # A message a worker took and has not acknowledged: kombu files [message, exchange, key].
    raw = kombu_json.loads(_envelope(delivered, queue))
    client.hset(unacked, "tag-1", kombu_json.dumps([raw, "", queue]))
    inventory = BrokerInventory(client, unacked)
    asked = [(run, queue) for run in (queued, urgent, delivered, gone)]

    assert inventory.held(asked) == {queued, urgent, delivered}
    assert inventory.held([]) == set()


def test_inventory_declines_a_backlog_too_long_to_search(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, unacked = unique_name("lost-q"), unique_name("lost-u")
    client.lpush(queue, *(_envelope(f"run-{i}", queue) for i in range(10)))
    inventory = BrokerInventory(client, unacked)
    assert inventory.held([("run-1", queue), ("run-x", queue)]) == {"run-1"}

    monkeypatch.setattr(lost_messages, "MAX_MESSAGES", 9)
    assert inventory.held([("run-1", queue)]) is None


def _dispatched(engine: Engine, ago: timedelta, **overrides: object) -> str:
    """A run of schedule ``s`` fired and dispatched ``ago`` before T0."""
    scheduled_for = T0 - ago
    row = add_run(
        engine,
        "s",
        scheduled_for,
        state=overrides.pop("state", RunState.DISPATCHED.value),
        dispatched_at=scheduled_for,
        **overrides,
    )
    return str(row["id"])


def _begun(client: redis.Redis, run_id: str) -> None:
    """A worker keeping the ledger began the run (sundial's tasks, jobs.dedupe)."""
    client.set(ledger_key(run_id, 0), "done", ex=600)


@pytest.fixture
def queue(engine: Engine) -> str:
    """The queue of schedule ``s``, whose runs the tests dispatch."""
    name = unique_name("lost-q")
    add_schedule(
        engine, "s", {"type": "interval", "seconds": 1}, T0 - timedelta(hours=1), queue=name
    )
    return name


@pytest.fixture
def served(engine: Engine, client: redis.Redis, queue: str) -> str:
    """A run of the queue that started on a worker keeping the ledger: the evidence."""
    run_id = _dispatched(engine, timedelta(seconds=100), state="succeeded", started_at=T0)
    _begun(client, run_id)
    return run_id


@pytest.fixture
def sweep(engine: Engine, client: redis.Redis) -> LostMessages:
    """A sweep over the test Redis as broker and ledger, with an unacked hash of its own."""
    return LostMessages(engine, BrokerInventory(client, unique_name("lost-u")), client, AFTER)


def _state(engine: Engine, run_id: str) -> tuple[str, str | None]:
    [run] = [r for r in runs_of(engine, "s") if r["id"] == run_id]
    return run["state"], run["reason"]


@pytest.mark.usefixtures("served")
def test_sweep_puts_back_only_runs_missing_twice_never_begun_nor_started(
    engine: Engine, token: int, client: redis.Redis, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, timedelta(seconds=120))
    queued = _dispatched(engine, timedelta(seconds=119))
    # Executed, its task events lost (no leader listening for a moment): the ledger knows.
    executed = _dispatched(engine, timedelta(seconds=118))
    _begun(client, executed)
    started = _dispatched(engine, timedelta(seconds=117), state="started", started_at=T0)
    _begun(client, started)
    recent = _dispatched(engine, timedelta(seconds=30))
    too_old = _dispatched(engine, AFTER + WINDOW + timedelta(seconds=1))
    client.lpush(queue, _envelope(queued, queue))

    # Missing once may be a message between the queue and the unacked hash.
    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == [lost]

    state, reason = _state(engine, lost)
    assert state == RunState.PENDING.value
    assert reason is not None and "neither queued nor delivered" in reason
    assert [_state(engine, r) for r in (queued, executed, started, recent, too_old)] == [
        ("dispatched", None),
        ("dispatched", None),
        ("started", None),
        ("dispatched", None),
        ("dispatched", None),
    ]


def test_nothing_is_taken_for_lost_on_a_queue_served_without_the_ledger(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    # Its worker reports task events but keeps no ledger: a copy could run twice there.
    _dispatched(engine, timedelta(seconds=100), state="succeeded", started_at=T0)
    silent = _dispatched(engine, timedelta(seconds=120))

    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert _state(engine, silent) == ("dispatched", None)


@pytest.mark.usefixtures("served")
def test_nothing_is_taken_for_lost_where_a_worker_without_the_ledger_shares_the_queue(
    engine: Engine, token: int, sweep: LostMessages
) -> None:
    # The run started last ran on a worker without the ledger (a mixed fleet, an upgrade).
    _dispatched(engine, timedelta(seconds=90), state="succeeded", started_at=T0)
    silent = _dispatched(engine, timedelta(seconds=120))

    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert _state(engine, silent) == ("dispatched", None)


@pytest.mark.usefixtures("served")
def test_runs_of_a_schedule_with_its_own_routing_are_left_alone(
    engine: Engine, token: int, client: redis.Redis, sweep: LostMessages
) -> None:
    # Routed by exchange and routing key, its message may sit in any bound queue.
    with engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == "s").values(routing_key="k"))
    routed = _dispatched(engine, timedelta(seconds=120))

    assert sweep.sweep(T0, token) == []
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert _state(engine, routed) == ("dispatched", None)


@pytest.mark.usefixtures("served")
def test_the_reason_is_added_to_what_the_run_said(
    engine: Engine, token: int, sweep: LostMessages
) -> None:
    retry = _dispatched(engine, timedelta(seconds=120), reason="attempt 2 of 3")
    sweep.sweep(T0, token)
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == [retry]

    state, reason = _state(engine, retry)
    assert state == "pending"
    assert reason is not None and reason.startswith("attempt 2 of 3; published again:")


@pytest.mark.parametrize(
    ("broker", "options", "after"),
    [
        ("amqp://guest@localhost//", {}, 60),
        ("redis://localhost/0", {}, 0),
        ("redis://localhost/0", {"global_keyprefix": "app:"}, 60),
        ("redis://localhost/0", {"priority_steps": list(range(10))}, 60),
        ("redis://localhost/0", {"ack_emulation": False}, 60),
    ],
)
def test_the_sweep_is_off_where_it_cannot_tell(
    broker: str, options: dict[str, Any], after: float
) -> None:
    engine = make_engine("sqlite://")
    try:
        found = create_lost_messages(
            engine, broker, "redis://localhost/0", options, timedelta(seconds=after)
        )
        assert found is None
        assert create_lost_messages(engine, broker, None, {}, AFTER) is None
    finally:
        engine.dispose()


def test_the_sweep_is_on_with_a_redis_broker_and_a_ledger() -> None:
    engine = make_engine("sqlite://")
    try:
        sweep = create_lost_messages(
            engine, "redis://localhost/0", "redis://localhost/1", {"visibility_timeout": 5}, AFTER
        )
        assert sweep is not None and sweep.period == timedelta(seconds=15)
        sweep.stop()
    finally:
        engine.dispose()


@pytest.mark.usefixtures("served")
def test_a_run_is_put_back_once_only(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, timedelta(seconds=120))
    sweep.sweep(T0, token)
    assert sweep.sweep(T0 + timedelta(seconds=15), token) == [lost]
    # Sent again and recorded dispatched, then unreported again.
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == lost).values(state="dispatched"))

    assert sweep.sweep(T0 + timedelta(seconds=30), token) == []
    assert sweep.sweep(T0 + timedelta(seconds=45), token) == []
    assert _state(engine, lost)[0] == "dispatched"


@pytest.mark.usefixtures("served")
def test_a_run_that_starts_between_sweeps_is_left_alone(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    slow = _dispatched(engine, timedelta(seconds=120))
    assert sweep.sweep(T0, token) == []
    # Its task event arrives late: the message was with a worker after all.
    assert record_outcome(engine, slow, RunState.STARTED, {"started_at": T0}, T0)

    assert sweep.sweep(T0 + timedelta(seconds=15), token) == []
    assert _state(engine, slow) == ("started", None)


@pytest.mark.usefixtures("served")
def test_a_stale_term_puts_nothing_back(
    engine: Engine, token: int, queue: str, sweep: LostMessages
) -> None:
    lost = _dispatched(engine, timedelta(seconds=120))
    assert sweep.sweep(T0, token) == []

    with pytest.raises(LeadershipLost):
        sweep.sweep(T0 + timedelta(seconds=15), token - 1)
    assert _state(engine, lost) == ("dispatched", None)
