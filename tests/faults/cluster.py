"""One fault test's world: a fresh PostgreSQL (or MariaDB) database behind a cuttable
proxy, a private Redis for the lease and notices, a private Redis broker (or the machine's
RabbitMQ) behind another proxy, a consumer counting deliveries, a leadership log, and the
``sundial`` processes.

The test's own checks read the store directly, never through the proxy, so they see the
truth while the replicas are cut off.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from kombu.connection import Connection
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from scheduler.leadership.notices import CHANNEL
from scheduler.store.db import make_engine
from scheduler.store.models import replicas, runs, schedules
from scheduler.timing.clock import utcnow
from tests.factories import schedule_row
from tests.faults.history import (
    AmqpConsumer,
    BrokerConsumer,
    Consumer,
    LeadershipLog,
    Verdict,
    judge,
)
from tests.faults.processes import ProcessGroup, RedisServer, Service, TcpProxy
from tests.services import (
    AMQP_TEST_URL,
    FAULTS_FIRE_AHEAD_MS,
    PG_ADMIN_URL,
    unique_name,
    wait_for,
)

TTL_S = 3.0
# Bounds on a process starting, not paces: on this 2-core machine, loaded to 30 by other
# test runs, a Python process took over 30 s to import and connect.
START_TIMEOUT_S = 90.0
# The same for the history settling after a fault: under that load one pass of the checker
# over a few thousand runs took seconds, and a 30 s bound ran out just before it settled.
SETTLE_S = 90.0
# Replicas connect with this application_name, so a test can kill their backends (and
# only theirs, in its own database) with pg_terminate_backend.
REPLICA_APP = "sundial_faults_replica"
PG_PORT = 5432
AMQP_PORT = 5672
MYSQL_PORT = 3306
STEP_DOWN_LINES = ("lost the key", "fenced off", "is now follower")
Spec = tuple[str, dict[str, Any], dict[str, Any]]


def interval(seconds: float) -> dict[str, Any]:
    """An interval trigger."""
    return {"type": "interval", "seconds": seconds}


def cron(expression: str) -> dict[str, Any]:
    """A cron trigger in UTC (six fields: a leading seconds field)."""
    return {"type": "cron", "expression": expression, "timezone": "UTC"}


def once(at: datetime) -> dict[str, Any]:
    """A one-off (date) trigger."""
    return {"type": "date", "run_at": at.isoformat()}


def mixed_workload(now: datetime, one_offs_for_s: float) -> list[Spec]:
    """1 s and 2 s intervals, every-second crons and a one-off every 3 s.

    Most schedules do not coalesce, so every fire due during a fault must be published
    late, once; one coalesces, so its fires during a gap are recorded as skipped.
    """
    specs: list[Spec] = [(f"every1-{i}", interval(1), {"coalesce": False}) for i in range(6)]
    specs += [("every2", interval(2), {"coalesce": False}), ("every2-coalesced", interval(2), {})]
    specs += [(f"cron-{i}", cron("* * * * * *"), {"coalesce": False}) for i in range(3)]
    specs += [
        (f"once-{k}", once(now + timedelta(seconds=k)), {})
        for k in range(3, int(one_offs_for_s), 3)
    ]
    return specs


@dataclass(frozen=True)
class TermFires:
    """The runs one fencing token recorded."""

    count: int
    first: datetime | None
    last: datetime | None


@dataclass
class Cluster:
    """Everything a fault scenario drives and inspects."""

    folder: Path
    engine: Engine
    db_name: str
    proxied_db_url: str
    lease_redis: RedisServer
    # The private Redis broker; None when the broker is the machine's RabbitMQ.
    broker_redis: RedisServer | None
    pg_proxy: TcpProxy
    broker_proxy: TcpProxy
    consumer: Consumer
    leadership: LeadershipLog
    procs: ProcessGroup
    queue: str
    # When the test crashed a publisher (SIGKILL, SIGSTOP, killed backends): a message
    # published around then may legitimately be published again by the next leader.
    crashes: list[datetime] = field(default_factory=list)

    def add(self, specs: Iterable[Spec], now: datetime | None = None) -> list[dict[str, Any]]:
        """Insert armed schedules on the test's queue, then announce them like the API does."""
        at = now or utcnow()
        rows = [
            schedule_row(sid, trigger, at, **({"queue": self.queue} | overrides))
            for sid, trigger, overrides in specs
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(schedules), rows)
        self.notify()
        return rows

    def notify(self, schedule_id: str = "*") -> None:
        """A change notice on the lease Redis, as the API publishes after every write."""
        with contextlib.suppress(redis.RedisError):
            self.lease_redis.command("PUBLISH", CHANNEL, schedule_id)

    def start_replicas(self, count: int, hook: Sequence[str] = ()) -> list[Service]:
        """Start ``count`` replicas (under a fault hook of :mod:`tests.faults.hooks` if
        given) and wait until all run and one of them leads."""
        started = [self.procs.start_scheduler(hook) for _ in range(count)]
        for service in started:
            self.wait_ready(service)
        self.leadership.wait_term(after=0, timeout=START_TIMEOUT_S, what="a first leader")
        return started

    def wait_ready(self, service: Service, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until a replica registered itself: it seeks the lease from then on."""

        def registered() -> bool:
            if not service.alive():
                raise AssertionError(f"{service.name} exited:\n{service.tail()}")
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(replicas.c.replica_id).where(replicas.c.pid == service.pid)
                ).first()
            return row is not None

        wait_for(registered, timeout, f"{service.name} to register")

    def leader(self) -> Service:
        """The process holding the current term."""
        term = self.leadership.current()
        assert term is not None and term.pid is not None, "no leader right now"
        return self.procs.by_pid(term.pid)

    def crash(self, service: Service, signum: int = signal.SIGKILL) -> datetime:
        """Send ``signum`` (SIGKILL, SIGSTOP) and note the moment as a crash."""
        at = utcnow()
        service.signal(signum)
        self.crashes.append(at)
        return at

    def judge(self, until: datetime, **kwargs: Any) -> Verdict:
        """The history of fires due by ``until`` (see :func:`history.judge`)."""
        kwargs.setdefault("crashes", self.crashes)
        return judge(self.engine, self.consumer, self.leadership, until=until, **kwargs)

    def settle(self, until: datetime, timeout: float = SETTLE_S, **kwargs: Any) -> Verdict:
        """Wait until every fire due by ``until`` is recorded, published and delivered."""

        def settled() -> Verdict | None:
            verdict = self.judge(until, **kwargs)
            return None if verdict.incomplete else verdict

        try:
            return wait_for(settled, timeout, "the history to settle", interval=0.25)
        except AssertionError:
            verdict = self.judge(until, **kwargs)
            raise AssertionError(
                f"history did not settle in {timeout}s: {verdict.incomplete[:10]}; "
                f"violations {verdict.violations[:10]}"
            ) from None

    def terminate_replica_backends(self) -> int:
        """pg_terminate_backend every replica connection to this test's database only."""
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :db AND application_name = :app "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"db": self.db_name, "app": REPLICA_APP},
                ).scalar_one()
        finally:
            admin.dispose()
        return int(killed)

    def fires_under(self, token: int) -> TermFires:
        """How many runs ``token`` recorded, and when the first and last were written."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    func.count(), func.min(runs.c.created_at), func.max(runs.c.created_at)
                ).where(runs.c.fencing_token == token)
            ).one()
        return TermFires(int(row[0]), row[1], row[2])

    def wait_fires_under(self, token: int, at_least: int, timeout: float = 10) -> TermFires:
        """Wait until ``token`` recorded ``at_least`` runs."""

        def enough() -> TermFires | None:
            fires = self.fires_under(token)
            return fires if fires.count >= at_least else None

        return wait_for(enough, timeout, f"{at_least} fires under token {token}", interval=0.02)

    def fires_since(self, since: datetime) -> int:
        """How many runs were recorded after ``since``."""
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(runs).where(runs.c.created_at > since)
            ).scalar_one()
        return int(count)

    def wait_fires_since(self, since: datetime, at_least: int, timeout: float = 10) -> int:
        """Wait until ``at_least`` runs were recorded after ``since``."""
        return wait_for(
            lambda: (n := self.fires_since(since)) >= at_least and n,
            timeout,
            f"{at_least} fires after {since}",
            interval=0.02,
        )

    def step_downs(self, service: Service) -> int:
        """How many times a replica's log says it stopped leading."""
        return sum(len(self.log_lines(service, line)) for line in STEP_DOWN_LINES)

    def log_lines(self, service: Service, needle: str) -> list[str]:
        """Lines of a process's log that contain ``needle``."""
        return [line for line in service.log().splitlines() if needle in line]


@contextlib.contextmanager
def build_cluster(folder: Path, database_url: str, broker: str = "redis") -> Iterator[Cluster]:
    """Start the services of a cluster (no replicas yet); stop everything on the way out.

    ``broker`` is ``redis`` (a private redis-server) or ``rabbitmq`` (the machine's, reached
    through the cluster's proxy, on a queue of the test's own)."""
    lease_redis = RedisServer(folder, "lease-redis")
    broker_redis = RedisServer(folder, "broker-redis") if broker == "redis" else None
    direct = make_url(database_url)
    is_pg = direct.get_backend_name() == "postgresql"
    pg_proxy = TcpProxy(
        direct.port or (PG_PORT if is_pg else MYSQL_PORT), "store", direct.host or "127.0.0.1"
    )
    broker_proxy: TcpProxy | None = None
    engine = make_engine(database_url)
    consumer: Consumer | None = None
    leadership = LeadershipLog(engine)
    procs: ProcessGroup | None = None
    queue = unique_name("faults")
    try:
        lease_redis.start()
        if broker_redis is not None:
            broker_redis.start()
            broker_proxy = TcpProxy(broker_redis.port, "broker")
            broker_url = f"redis://127.0.0.1:{broker_proxy.port}/0"
            consumer = BrokerConsumer(broker_redis.client(), queue)
        else:
            amqp = Connection(AMQP_TEST_URL)  # parses the URL, connects to nothing
            broker_proxy = TcpProxy(amqp.port or AMQP_PORT, "broker", str(amqp.hostname))
            broker_url = f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}//"
            consumer = AmqpConsumer(AMQP_TEST_URL, queue)
        proxied = direct.set(
            host="127.0.0.1",
            port=pg_proxy.port,
            query={"application_name": REPLICA_APP} if is_pg else {},
        ).render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")} | {
            "SUNDIAL_DATABASE_URL": proxied,
            "SUNDIAL_SCHEDULER_METRICS_PORT": "0",  # many replicas on one machine
            "SUNDIAL_REDIS_URL": lease_redis.url,
            "SUNDIAL_BROKER_URL": broker_url,
            "SUNDIAL_LEASE_TTL_SECONDS": str(TTL_S),
            "SUNDIAL_DATA_DIR": str(folder / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        if FAULTS_FIRE_AHEAD_MS:
            # A scenario that sets its own window, 0 included, keeps it.
            env["SUNDIAL_FIRE_AHEAD_MS"] = FAULTS_FIRE_AHEAD_MS
        procs = ProcessGroup(folder, env)
        consumer.start()
        leadership.start()
        yield Cluster(
            folder=folder,
            engine=engine,
            db_name=str(direct.database),
            proxied_db_url=proxied,
            lease_redis=lease_redis,
            broker_redis=broker_redis,
            pg_proxy=pg_proxy,
            broker_proxy=broker_proxy,
            consumer=consumer,
            leadership=leadership,
            procs=procs,
            queue=queue,
        )
    finally:
        if procs is not None:
            procs.stop_all()
        leadership.stop()
        if consumer is not None:
            consumer.stop()
        pg_proxy.close()
        if broker_proxy is not None:
            broker_proxy.close()
        lease_redis.kill()
        if broker_redis is not None:
            broker_redis.kill()
        engine.dispose()
