"""RabbitMQ as the broker, on the machine's real server and a real worker: the dispatch
contract, run tracking and the webhook task (test_dispatch.py's tests, run here on
RabbitMQ), priorities with and without ``x-max-priority``, publisher confirms (a run is
dispatched only once RabbitMQ took its message), and what a refused or unanswered publish
leaves behind. Expiry, retries and ``cancel_previous`` run on both brokers in
test_worker_policies.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection
from sqlalchemy import update

from scheduler.firing import dispatch
from scheduler.firing.claim import Dispatch
from scheduler.firing.dispatch import BATCH, AmqpPublisher, create_publisher, create_publisher_app
from scheduler.store.models import run_id_for, runs
from scheduler.timing.clock import utcnow
from tests.conftest import delete_amqp_queues
from tests.factories import add_schedule, runs_of
from tests.faults.processes import TcpProxy
from tests.scheduler import test_dispatch
from tests.scheduler.conftest import LiveLeader
from tests.services import service_missing, wait_for
from tests.worker import running_worker

# Queues whose name starts with this get a RabbitMQ policy: at most one message, further
# publishes refused (nacked). Only test_a_refused_publish... creates such queues.
NACK_PREFIX = "sundial_nack_"
PROBES = ["--include", "tests.jobs.probe_tasks"]


@pytest.fixture(scope="session")
def database_url(new_database_url: Callable[[str], str]) -> str:
    """PostgreSQL only: these tests are about the broker."""
    return new_database_url("postgresql")


@pytest.fixture
def broker_overrides() -> dict[str, Any]:
    """Settings a test changes (by parametrizing this name)."""
    return {}


@pytest.fixture
def broker_settings(
    request: pytest.FixtureRequest,
    redis_url: str,
    amqp_url: str,
    broker_overrides: dict[str, Any],
) -> dict[str, Any]:
    """RabbitMQ with x-max-priority 10, reached through the test's ``proxy`` if it has one."""
    url = amqp_url
    if "proxy" in request.fixturenames:
        url = f"amqp://guest:guest@127.0.0.1:{request.getfixturevalue('proxy').port}//"
    values = {"redis_url": redis_url, "broker_url": url, "broker_queue_max_priority": 10}
    return values | broker_overrides


def test_worker_runs_the_fire_and_its_success_is_recorded(live_leader: LiveLeader) -> None:
    test_dispatch.test_worker_runs_the_fire_and_its_success_is_recorded(live_leader)


def test_webhook_task_sees_dispatch_headers_and_failure_is_recorded(
    live_leader: LiveLeader,
) -> None:
    test_dispatch.test_task_sees_dispatch_headers_and_failure_is_recorded(live_leader)


def _fire(leader: LiveLeader, schedule_id: str, ago_s: float, **fields: Any) -> str:
    now = utcnow()
    run_at = now - timedelta(seconds=ago_s)
    add_schedule(
        leader.engine,
        schedule_id,
        {"type": "date", "run_at": run_at.isoformat()},
        now,
        queue=leader.queue,
        **fields,
    )
    return run_id_for(schedule_id, run_at)


def _state(leader: LiveLeader, schedule_id: str) -> str:
    (run,) = runs_of(leader.engine, schedule_id)
    return str(run["state"])


def _backlog_then_one_worker(leader: LiveLeader) -> list[str]:
    """Publish four priority-0 fires, then a priority-9 one, all before any worker runs;
    then one worker taking one message at a time: the schedules in the order it started
    them."""
    names = [f"low{k}" for k in range(4)]
    for k, name in enumerate(names):
        _fire(leader, name, ago_s=10 - k, priority=0)
    _fire(leader, "high", ago_s=1, priority=9)
    leader.drive(lambda: all(_state(leader, n) == "dispatched" for n in [*names, "high"]), 10, "5")
    with running_worker(
        leader.settings,
        queues=leader.queue,
        pool="solo",
        concurrency=1,
        argv=["--prefetch-multiplier", "1"],
    ):
        leader.drive(
            lambda: all(_state(leader, n) == "succeeded" for n in [*names, "high"]), 30, "all run"
        )
    started = [runs_of(leader.engine, n)[0] for n in [*names, "high"]]
    return [r["schedule_id"] for r in sorted(started, key=lambda r: r["started_at"])]


def test_priority_overtakes_a_backlog_on_a_queue_with_x_max_priority(
    live_leader: LiveLeader,
) -> None:
    assert live_leader.settings.broker_queue_max_priority == 10
    order = _backlog_then_one_worker(live_leader)
    assert order == ["high", "low0", "low1", "low2", "low3"]


@pytest.mark.parametrize("broker_overrides", [{"broker_queue_max_priority": None}])
def test_without_x_max_priority_rabbitmq_ignores_priority(live_leader: LiveLeader) -> None:
    assert live_leader.settings.broker_queue_max_priority is None
    order = _backlog_then_one_worker(live_leader)
    assert order == ["low0", "low1", "low2", "low3", "high"]  # first in, first out


def test_a_queue_declared_without_priority_refuses_a_publisher_that_wants_one(
    live_leader: LiveLeader, caplog: pytest.LogCaptureFixture
) -> None:
    # The queue exists as a worker without task_queue_max_priority declared it.
    with Connection(live_leader.settings.broker_url) as conn:
        conn.default_channel.queue_declare(live_leader.queue, durable=True, auto_delete=False)
    _fire(live_leader, "mismatch", ago_s=0.01)
    live_leader.cycle()
    assert _state(live_leader, "mismatch") == "pending"
    assert "inequivalent arg 'x-max-priority'" in caplog.text
    assert "runs stay pending" in caplog.text


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    made = TcpProxy(5672, "rabbitmq")
    try:
        yield made
    finally:
        made.close()


def _take_all(url: str, queue: str) -> list[str]:
    """Every message waiting in ``queue``, taken off it: their task ids."""
    taken: list[str] = []
    with Connection(url) as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            taken.append(str(message.headers["id"]))
    return taken


def test_an_unconfirmed_publish_leaves_the_run_pending_and_it_goes_out_once_later(
    live_leader: LiveLeader, proxy: TcpProxy, amqp_url: str
) -> None:
    run_id = _fire(live_leader, "cut", ago_s=0.01)
    proxy.cut()
    live_leader.cycle()
    assert _state(live_leader, "cut") == "pending"
    proxy.restore()
    live_leader.drive(lambda: _state(live_leader, "cut") == "dispatched", 10, "dispatched")
    assert _take_all(amqp_url, live_leader.queue) == [run_id]


def test_a_connection_idle_too_long_is_replaced_before_the_next_batch(
    live_leader: LiveLeader, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fire(live_leader, "before", ago_s=0.01)
    live_leader.cycle()
    assert _state(live_leader, "before") == "dispatched"
    # While the leader idles, the connection dies (a broker restart, a NAT timeout).
    proxy.cut()
    proxy.restore()
    monkeypatch.setattr(dispatch, "AMQP_IDLE_S", 0.0)
    _fire(live_leader, "after", ago_s=0.01)
    live_leader.cycle()
    assert _state(live_leader, "after") == "dispatched"  # first try, no refusal


def test_a_large_publish_is_confirmed_batch_by_batch_in_order(
    live_leader: LiveLeader, amqp_url: str
) -> None:
    now = utcnow()
    items = [
        Dispatch(
            run_id=f"big-{k:04d}",
            schedule_id="big",
            scheduled_for=now,
            task="sundial.echo",
            args=[k],
            kwargs={},
            queue=live_leader.queue,
            priority=None,
            expires_at=None,
        )
        for k in range(2 * BATCH + 10)
    ]
    app = create_publisher_app(live_leader.settings)
    publisher = create_publisher(app)
    assert isinstance(publisher, AmqpPublisher)
    try:
        sent = publisher.publish(items)
    finally:
        publisher.close()
        app.close()
    ids = [item.run_id for item in items]
    assert sent == ids
    # Confirmed means RabbitMQ holds them: all there, once each, in order.
    assert _take_all(amqp_url, live_leader.queue) == ids


@pytest.fixture
def nack_policy(amqp_url: str) -> Iterator[None]:
    """A RabbitMQ policy on this test's queues: one message at most, then publishes are
    refused (``basic.nack``). Set with rabbitmqctl, as the management API may be off."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        service_missing("rabbitmqctl not found: cannot set a RabbitMQ policy")
    name = "sundial-test-nack"
    definition = '{"max-length": 1, "overflow": "reject-publish"}'
    args = [str(ctl), "-q", "set_policy", "--apply-to", "queues", name, f"^{NACK_PREFIX}"]
    done = subprocess.run(
        [*args, definition], check=False, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        service_missing(f"rabbitmqctl set_policy failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(
            [str(ctl), "-q", "clear_policy", name], check=False, capture_output=True, timeout=60
        )


def test_a_refused_publish_leaves_runs_pending_and_each_goes_out_once_in_order(
    live_leader: LiveLeader, nack_policy: None, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    live_leader.queue = f"{NACK_PREFIX}{live_leader.queue}"
    ids = [_fire(live_leader, f"n{k}", ago_s=3 - k) for k in range(3)]
    try:
        _publish_against_the_policy(live_leader, amqp_url, ids, caplog)
    finally:
        delete_amqp_queues(amqp_url, live_leader.queue)


def _publish_against_the_policy(
    live_leader: LiveLeader, amqp_url: str, ids: list[str], caplog: pytest.LogCaptureFixture
) -> None:

    def states() -> list[str]:
        return [_state(live_leader, f"n{k}") for k in range(3)]

    live_leader.cycle()
    # RabbitMQ took the first and refused the others: they stay pending.
    assert states() == ["dispatched", "pending", "pending"]
    assert "2 refused, 0 unconfirmed" in caplog.text
    taken = _take_all(amqp_url, live_leader.queue)

    def all_through() -> bool:
        live_leader.cycle()
        taken.extend(_take_all(amqp_url, live_leader.queue))  # room for one more
        return states() == ["dispatched"] * 3

    wait_for(all_through, 20, "all three runs dispatched")
    taken.extend(_take_all(amqp_url, live_leader.queue))
    assert taken == ids


def test_a_run_published_twice_runs_once_on_a_worker_with_the_ledger(
    live_leader: LiveLeader, tmp_path: Path
) -> None:
    """What covers AMQP's gap: a leader that died after RabbitMQ confirmed a batch but
    before recording it leaves the runs pending, and the next term publishes them again.
    Here the run is put back to pending by hand and relayed: two messages, one execution."""
    ledger = tmp_path / "ledger.jsonl"
    run_id = _fire(
        live_leader,
        "twice",
        ago_s=0.01,
        task="sundial_test.sleep",
        kwargs={"seconds": 0.2, "ledger": str(ledger)},
    )
    live_leader.cycle()
    assert _state(live_leader, "twice") == "dispatched"
    with live_leader.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(state="pending"))
    live_leader.drive(lambda: _state(live_leader, "twice") == "dispatched", 10, "relayed")
    with Connection(live_leader.settings.broker_url) as conn:
        waiting = conn.default_channel.queue_declare(live_leader.queue, passive=True)
    assert waiting.message_count == 2
    with running_worker(live_leader.settings, queues=live_leader.queue, argv=PROBES) as worker:
        live_leader.drive(lambda: _state(live_leader, "twice") == "succeeded", 30, "success")
        wait_for(lambda: "duplicate" in worker.log().lower(), 10, "the duplicate dropped")
    starts = [line for line in ledger.read_text().splitlines() if '"start"' in line]
    assert len(starts) == 1
