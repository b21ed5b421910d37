"""The outbox against real PostgreSQL (reached through a proxy the test can cut) and the real
Redis broker, counting every message the broker holds: no run is published twice, neither
by the leader that published it nor by the next term."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from scheduler.firing.claim import Dispatch, claim_due
from scheduler.firing.dispatch import (
    CeleryPublisher,
    Publisher,
    RedisPublisher,
    create_publisher_app,
)
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.runloop import STORE_RETRY_S, FireCycle
from scheduler.settings import Settings
from scheduler.store.db import make_engine
from scheduler.store.jobstore import SqlJobStore
from tests.clocks import T0, FakeClock
from tests.factories import add_schedule, runs_of
from tests.faults.history import decode_message
from tests.faults.processes import TcpProxy
from tests.services import unique_name

pytestmark = pytest.mark.services

EVERY_10S = {"type": "interval", "seconds": 10}


@dataclass
class Broker:
    """The test Redis as a broker: a queue of the test's own, read back message by message."""

    client: redis.Redis
    app: Celery
    queue: str

    def deliveries(self) -> Counter[str]:
        """How many messages the queue holds for each run id."""
        raw: list[bytes] = self.client.lrange(self.queue, 0, -1)  # type: ignore[assignment]
        return Counter(decode_message(item, T0).run_id for item in raw)


@pytest.fixture
def pg_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("postgresql")


@pytest.fixture
def broker(redis_url: str, pg_url: str, tmp_path: Path) -> Iterator[Broker]:
    settings = Settings(
        _env_file=None, database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data"
    )
    app = create_publisher_app(settings)
    client = redis.Redis.from_url(redis_url)
    made = Broker(client, app, unique_name("q"))
    try:
        yield made
    finally:
        client.delete(made.queue, f"_kombu.binding.{made.queue}")
        client.close()
        app.close()


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_url)
    proxy = TcpProxy(url.port or 5432, "postgresql", url.host or "127.0.0.1")
    try:
        yield proxy
    finally:
        proxy.close()


def _through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


class CutAfterPublish:
    """Publishes, then cuts the database off once: the broker holds the batch, the mark fails."""

    def __init__(self, publisher: Publisher, proxy: TcpProxy) -> None:
        self._publisher = publisher
        self._proxy = proxy
        self.cuts = 0

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        sent = self._publisher.publish(dispatches)
        if not self.cuts:
            self.cuts += 1
            self._proxy.cut()
        return sent

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        self._publisher.prepare(dispatches)

    def discard(self, run_ids: Sequence[str]) -> None:
        self._publisher.discard(run_ids)

    def recorded(self, run_ids: Sequence[str]) -> None:
        self._publisher.recorded(run_ids)

    def revoke(self, run_ids: Sequence[str]) -> None:
        self._publisher.revoke(run_ids)

    def close(self) -> None:
        self._publisher.close()


def _schedules(engine: Engine, queue: str, count: int) -> list[str]:
    ids = [f"{queue}-{i}" for i in range(count)]
    for sid in ids:
        add_schedule(engine, sid, EVERY_10S, T0, queue=queue, coalesce=False)
    return ids


@pytest.mark.parametrize("fast_path", [False, True], ids=["kombu", "redis-markers"])
def test_runs_published_while_the_store_is_cut_are_recorded_later_and_never_sent_again(
    pg_url: str, pg_proxy: TcpProxy, broker: Broker, fast_path: bool
) -> None:
    direct = make_engine(pg_url)
    engine = make_engine(_through(pg_proxy, pg_url))
    clock = FakeClock()
    lease = SqlLease(engine, Replica("r1", "h", 1), ttl_s=600, clock=clock)
    real: Publisher = (
        RedisPublisher(broker.app, redis.Redis.from_url(broker.app.conf.broker_url))
        if fast_path
        else CeleryPublisher(broker.app)
    )
    publisher = CutAfterPublish(real, pg_proxy)
    outbox = Outbox(engine, publisher, lease, clock, batch_size=100)
    cycle = FireCycle(
        engine, lease, outbox, SqlJobStore(engine), poll_s=0.25, batch_size=100, clock=clock
    )
    try:
        ids = _schedules(direct, broker.queue, 3)
        assert lease.acquire()

        clock.now = T0 + timedelta(seconds=10)
        cycle()  # claims and publishes three fires; the store is cut before they are marked
        assert publisher.cuts == 1
        assert sorted(broker.deliveries().values()) == [1, 1, 1]
        assert {r["state"] for sid in ids for r in runs_of(direct, sid)} == {"pending"}

        clock.now += timedelta(seconds=1)
        assert cycle() <= STORE_RETRY_S  # still cut: nothing claimed, nothing relayed
        assert sorted(broker.deliveries().values()) == [1, 1, 1]

        pg_proxy.restore()
        for _ in range(3):  # relays come and go: none may publish those runs again
            outbox.request_relay()
            clock.now += timedelta(seconds=1)
            cycle()

        runs = [r for sid in ids for r in runs_of(direct, sid)]
        assert [r["state"] for r in runs] == ["dispatched"] * 3
        assert broker.deliveries() == Counter({r["id"]: 1 for r in runs})

        clock.now = T0 + timedelta(seconds=20)
        cycle()  # the next fires go out as usual, once each
        assert sorted(broker.deliveries().values()) == [1] * 6
    finally:
        outbox.close()
        engine.dispose()
        direct.dispose()


def test_a_new_term_records_what_a_dead_leader_published_instead_of_sending_it_again(
    pg_url: str, broker: Broker
) -> None:
    engine = make_engine(pg_url)
    clock = FakeClock()
    client = redis.Redis.from_url(broker.app.conf.broker_url)
    publisher = RedisPublisher(broker.app, client)
    try:
        ids = _schedules(engine, broker.queue, 3)
        dead = SqlLease(engine, Replica("dead", "h", 1), ttl_s=5, clock=clock)
        assert dead.acquire() and dead.token is not None
        # The old leader claims and publishes, and dies before recording anything.
        clock.now = T0 + timedelta(seconds=10)
        claimed = claim_due(engine, clock.now, dead.token, 100).dispatches
        assert len(publisher.publish(claimed)) == 3

        clock.now += timedelta(seconds=6)  # its lease has expired
        lease = SqlLease(engine, Replica("new", "h", 2), ttl_s=600, clock=clock)
        assert lease.acquire()
        outbox = Outbox(engine, publisher, lease, clock, batch_size=100)
        cycle = FireCycle(
            engine, lease, outbox, SqlJobStore(engine), poll_s=0.25, batch_size=100, clock=clock
        )
        cycle()  # the new term relays the three pending runs first

        runs = [r for sid in ids for r in runs_of(engine, sid)]
        assert [r["state"] for r in runs] == ["dispatched"] * 3
        assert broker.deliveries() == Counter({d.run_id: 1 for d in claimed})

        # The old leader was only paused: its late publish of the same runs is dropped.
        assert len(publisher.publish(claimed)) == 3
        assert broker.deliveries() == Counter({d.run_id: 1 for d in claimed})
    finally:
        publisher.close()
        engine.dispose()
