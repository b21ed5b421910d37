"""Recording what happened and checking it.

* :class:`BrokerConsumer` (:class:`AmqpConsumer` on RabbitMQ) pops every Celery message
  off the broker's list for the test's
  queue and records each delivery: duplicates stay countable (the ``runs`` table cannot hold
  any, by its unique key, so it alone would hide them).
* :class:`LeadershipLog` polls the ``scheduler_leader`` row: which pid held which fencing
  token, and when each term started.
* :func:`judge` reads the ``runs`` table and checks the history against the guarantees:
  every expected fire recorded once, no write under a stale token, each published run
  delivered once (a redelivery is tolerated only across a crash of its publisher) and never
  before its instant, skipped and missed fires never delivered and always explained,
  per-schedule fire-time order.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from kombu.connection import Connection
from sqlalchemy import Engine, select

from scheduler.store.models import LEADER_ROW, RunState, leader, run_id_for, runs, schedules
from scheduler.timing.clock import utcnow
from scheduler.timing.fire_policy import fire_times_of
from tests.services import wait_for

# Runs in these states were published (or are past it): each must have been delivered.
PUBLISHED = {
    RunState.DISPATCHED,
    RunState.STARTED,
    RunState.SUCCEEDED,
    RunState.FAILED,
    RunState.RETRYING,
    RunState.EXPIRED,
    RunState.REVOKED,
}
NOT_RUN = {RunState.SKIPPED, RunState.MISSED}
POP_BATCH = 500


def parse_instant(text: str) -> datetime:
    """An RFC 3339 instant from a message header."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Delivery:
    """One Celery message taken off the broker."""

    run_id: str
    schedule_id: str
    scheduled_for: datetime
    task: str
    kwargs: dict[str, Any]
    at: datetime


def decode_message(raw: bytes, at: datetime) -> Delivery:
    """A kombu Redis-transport envelope holding a Celery protocol-2 message."""
    envelope = json.loads(raw)
    headers = envelope["headers"]
    body = json.loads(base64.b64decode(envelope["body"]))
    return Delivery(
        run_id=headers["id"],
        schedule_id=headers["sundial_schedule_id"],
        scheduled_for=parse_instant(headers["sundial_scheduled_for"]),
        task=headers["task"],
        kwargs=body[1],
        at=at,
    )


class Consumer:
    """What :func:`judge` reads: every delivery of the test's queue, and what was not ours.
    Subclasses consume one broker's queue from a thread of their own."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self.undecodable: list[bytes] = []
        self.errors: list[str] = []
        self._stop = threading.Event()

    def start(self) -> None:
        """Begin consuming."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop consuming."""
        raise NotImplementedError

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def deliveries(self) -> list[Delivery]:
        """Everything consumed so far, in arrival order."""
        with self._lock:
            return list(self._deliveries)

    def of(self, schedule_id: str) -> list[Delivery]:
        """The deliveries of one schedule, in arrival order."""
        return [d for d in self.deliveries() if d.schedule_id == schedule_id]


class BrokerConsumer(Consumer):
    """A fast consumer on the broker's Redis list for ``queue``: counts every delivery."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        super().__init__(queue)
        self._client = client
        self._thread = threading.Thread(target=self._run, name="broker-consumer", daemon=True)

    def start(self) -> None:
        """Begin consuming."""
        self._thread.start()

    def stop(self) -> None:
        """Stop consuming."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()

    def _pop(self) -> list[Any]:
        """Up to a batch of messages, oldest first, or one after a short wait: one message
        per round trip fell behind a soak's firing rate on a loaded machine."""
        batch = self._client.rpop(self.queue, POP_BATCH)
        if batch:
            return list(cast(list[Any], batch))
        item = self._client.brpop([self.queue], timeout=0.2)
        return [] if item is None else [item[1]]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._pop()
            except Exception as exc:  # the checker's thread must outlive any surprise
                if not isinstance(exc, redis.RedisError):
                    self.errors.append(repr(exc))
                self._stop.wait(0.2)
                continue
            at = utcnow()
            decoded = []
            for item in items:
                raw = item if isinstance(item, bytes) else str(item).encode()
                try:
                    decoded.append(decode_message(raw, at))
                except (ValueError, KeyError, IndexError, TypeError):
                    self.undecodable.append(raw)
            with self._lock:
                self._deliveries.extend(decoded)

    def alive(self) -> bool:
        """True while the consuming thread runs."""
        return self._thread.is_alive()


class AmqpConsumer(Consumer):
    """The same on RabbitMQ: consumes the test's queue (declared as Celery declares it) over
    its own connection, straight to the broker, so a cut of the replicas' proxy leaves it be.
    Messages are acked on receipt: RabbitMQ delivers each once unless it is published twice.
    """

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(queue)
        self._url = url
        self._thread = threading.Thread(target=self._run, name="amqp-consumer", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        """Declare the queue and begin consuming."""
        self._thread.start()
        wait_for(self._ready.is_set, 10, "the AMQP consumer")

    def stop(self) -> None:
        """Stop consuming and delete the queue."""
        self._stop.set()
        self._thread.join(timeout=5)
        with Connection(self._url, connect_timeout=2) as conn:
            conn.default_channel.queue_delete(self.queue)

    def _on_message(self, message: Any) -> None:
        at = utcnow()
        try:
            headers = message.headers
            body = json.loads(message.body)
            delivery = Delivery(
                run_id=headers["id"],
                schedule_id=headers["sundial_schedule_id"],
                scheduled_for=parse_instant(headers["sundial_scheduled_for"]),
                task=headers["task"],
                kwargs=body[1],
                at=at,
            )
        except (ValueError, KeyError, IndexError, TypeError):
            self.undecodable.append(bytes(message.body))
            return
        self._record(delivery)

    def _run(self) -> None:
        with Connection(self._url, connect_timeout=2) as conn:
            channel = conn.default_channel
            channel.queue_declare(self.queue, durable=True, auto_delete=False)
            tag = channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)
            self._ready.set()
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
            channel.basic_cancel(tag)  # deliveries in flight are still read


@dataclass(frozen=True)
class Term:
    """A leadership term as the ``scheduler_leader`` row showed it."""

    token: int
    pid: int | None
    since: datetime


class LeadershipLog:
    """Polls ``scheduler_leader`` every ``interval_s``; keeps each term and each change."""

    def __init__(self, engine: Engine, interval_s: float = 0.05) -> None:
        self._engine = engine
        self._interval = interval_s
        self._lock = threading.Lock()
        self._terms: dict[int, Term] = {}
        # (seen at, token, holder pid or None when the lease was released)
        self.changes: list[tuple[datetime, int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadership-log", daemon=True)

    def start(self) -> None:
        """Begin polling (after one synchronous read)."""
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def poll(self) -> None:
        """Read the row once."""
        with self._engine.connect() as conn:
            row = conn.execute(select(leader).where(leader.c.name == LEADER_ROW)).one()
        seen = utcnow()
        token = int(row.fencing_token)
        pid = row.pid if row.holder is not None else None
        with self._lock:
            if token not in self._terms and row.since is not None and token > 0:
                self._terms[token] = Term(token, row.pid, row.since)
            if not self.changes or self.changes[-1][1:] != (token, pid):
                self.changes.append((seen, token, pid))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # the checker's own connection was reset: poll again
                continue

    def terms(self) -> list[Term]:
        """Every term seen, oldest first."""
        with self._lock:
            return sorted(self._terms.values(), key=lambda t: t.token)

    def current(self) -> Term | None:
        """The newest term whose holder still holds the row, or None."""
        with self._lock:
            if not self.changes or self.changes[-1][2] is None:
                return None
            return self._terms.get(self.changes[-1][1])

    def wait_term(self, after: int, timeout: float, what: str = "a new leader") -> Term:
        """The first held term with a token above ``after``."""

        def probe() -> Term | None:
            term = self.current()
            return term if term is not None and term.token > after else None

        return wait_for(probe, timeout, what)

    def next_start(self, token: int) -> datetime | None:
        """When the first term after ``token`` began (None if none was seen)."""
        later = [t.since for t in self.terms() if t.token > token]
        return min(later) if later else None


@dataclass(frozen=True)
class RunRow:
    """The columns of a run the checks read."""

    id: str
    schedule_id: str
    scheduled_for: datetime
    attempt: int
    trigger: str
    state: RunState
    fencing_token: int | None
    reason: str | None
    created_at: datetime
    dispatched_at: datetime | None
    due_at: datetime | None


def load_runs(engine: Engine) -> list[RunRow]:
    """Every run, oldest fire first."""
    cols = [getattr(runs.c, name) for name in RunRow.__dataclass_fields__]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(runs.c.scheduled_for, runs.c.id)).all()
    return [RunRow(**{**row._asdict(), "state": RunState(row.state)}) for row in rows]


def expected_fires(
    engine: Engine, until: datetime, ids: Collection[str] | None = None
) -> dict[str, set[datetime]]:
    """Every fire time each schedule's trigger had from its creation up to ``until``."""
    with engine.connect() as conn:
        rows = conn.execute(select(schedules)).mappings().all()
    out: dict[str, set[datetime]] = {}
    for row in rows:
        if ids is not None and row["id"] not in ids:
            continue
        fires = fire_times_of(dict(row))
        times: set[datetime] = set()
        current = fires.first(row["created_at"])
        while current is not None and current <= until:
            times.add(current)
            current = fires.next_after(current)
        out[row["id"]] = times
    return out


@dataclass
class Verdict:
    """What a history shows: ``incomplete`` may still resolve; ``violations`` never may."""

    runs: list[RunRow]
    deliveries: list[Delivery]
    incomplete: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # Run ids delivered more than once, each across a crash of its publisher.
    redelivered: list[str] = field(default_factory=list)

    def runs_of(self, schedule_id: str) -> list[RunRow]:
        """One schedule's runs, oldest fire first."""
        return [r for r in self.runs if r.schedule_id == schedule_id]

    def summary(self) -> str:
        """Counts, for a test's printed figures."""
        states = Counter(r.state.value for r in self.runs)
        return (
            f"{len(self.runs)} runs {dict(states)}, {len(self.deliveries)} deliveries, "
            f"{len(self.redelivered)} redelivered across a crash"
        )


def _explained(first: datetime, last: datetime, crashes: Sequence[datetime]) -> bool:
    # Published, then the publisher died (or lost the store) before marking the run
    # dispatched: the next leader publishes the same id again. At-least-once, by contract.
    # So the first copy went out just before the crash and the second after it.
    return any(
        first - timedelta(seconds=2) <= c <= last and first <= c + timedelta(seconds=0.5)
        for c in crashes
    )


def judge(
    engine: Engine,
    consumer: Consumer,
    log: LeadershipLog,
    *,
    until: datetime,
    crashes: Sequence[datetime] = (),
    expect_for: Collection[str] | None = None,
    stale_slack_s: float = 0.5,
) -> Verdict:
    """Check the history of fires due by ``until`` (see the module docstring)."""
    deliveries = consumer.deliveries()  # first: every run delivered is committed by now
    all_runs = load_runs(engine)
    verdict = Verdict(all_runs, deliveries)
    problems, pending = verdict.violations, verdict.incomplete

    keys = Counter((r.schedule_id, r.scheduled_for, r.attempt) for r in all_runs)
    problems += [f"fire recorded {n} times: {k}" for k, n in keys.items() if n > 1]

    # Every fire the triggers had by `until` is a run, in some explained state.
    recorded: dict[str, set[datetime]] = defaultdict(set)
    for r in all_runs:
        if r.trigger == "schedule":
            recorded[r.schedule_id].add(r.scheduled_for)
    for sid, times in expected_fires(engine, until, expect_for).items():
        missing = sorted(times - recorded[sid])
        if missing:
            pending.append(f"{sid}: {len(missing)} fires not recorded, first {missing[0]}")
        extra = sorted(t for t in recorded[sid] - times if t <= until)
        if extra:
            problems.append(f"{sid}: fires its trigger never had: {extra[:3]}")

    # Stale tokens: a run of term T is written before term T+1 starts (the claim's fencing
    # check share-locks the leader row that a new term updates).
    for r in all_runs:
        if r.fencing_token is None:
            continue
        later = log.next_start(r.fencing_token)
        if later is not None and r.created_at > later + timedelta(seconds=stale_slack_s):
            problems.append(
                f"run {r.id} ({r.schedule_id} @ {r.scheduled_for}) recorded at {r.created_at} "
                f"under token {r.fencing_token}, after the next term began at {later}"
            )

    # Only runs on the consumer's queue can be delivered to it; a real worker's queue is
    # checked from that worker's own execution record.
    with engine.connect() as conn:
        watched = {
            row.id
            for row in conn.execute(
                select(schedules.c.id).where(schedules.c.queue == consumer.queue)
            )
        }
    counts = Counter(d.run_id for d in deliveries)
    by_run: dict[str, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        by_run[d.run_id].append(d)
    known = {r.id for r in all_runs}
    if consumer.undecodable:
        problems.append(f"{len(consumer.undecodable)} messages were not sundial fires")
    for run_id, ds in by_run.items():
        if run_id not in known:
            problems.append(f"delivered run {run_id} ({ds[0].schedule_id}) has no run record")
    for r in all_runs:
        n = counts[r.id]
        if r.trigger == "schedule" and r.id != run_id_for(r.schedule_id, r.scheduled_for):
            problems.append(f"run {r.id} does not carry its deterministic id")
        if r.state in NOT_RUN:
            if n:
                problems.append(f"{r.state.value} run {r.id} ({r.schedule_id}) was delivered")
            if not r.reason:
                problems.append(f"{r.state.value} run {r.id} ({r.schedule_id}) has no reason")
        elif r.state in PUBLISHED and n == 0 and r.schedule_id in watched:
            pending.append(f"dispatched run {r.id} ({r.schedule_id}) not delivered yet")
        elif r.state is RunState.PENDING and r.scheduled_for <= until:
            pending.append(f"run {r.id} ({r.schedule_id} @ {r.scheduled_for}) still pending")
        if n > 1:
            first, last = by_run[r.id][0].at, by_run[r.id][-1].at
            if _explained(first, last, crashes):
                verdict.redelivered.append(r.id)
            else:
                problems.append(
                    f"run {r.id} ({r.schedule_id} @ {r.scheduled_for}) delivered {n} times "
                    f"({first} .. {last}) with no crash in between"
                )
        for d in by_run.get(r.id, []):
            if (d.schedule_id, d.scheduled_for) != (r.schedule_id, r.scheduled_for):
                problems.append(f"message {r.id} headers disagree with its run")
            if d.at < (r.due_at or r.scheduled_for):
                # Fires are recorded ahead of their instant (fire-ahead), never sent ahead.
                problems.append(f"run {r.id} delivered at {d.at}, before its instant")

    # The first delivery of each fire goes out in fire-time order, per schedule.
    ordered: dict[str, list[datetime]] = defaultdict(list)
    seen_ids: set[str] = set()
    for d in deliveries:
        if d.run_id not in seen_ids:
            seen_ids.add(d.run_id)
            ordered[d.schedule_id].append(d.scheduled_for)
    for sid, sequence in ordered.items():
        if sequence != sorted(sequence):
            problems.append(f"{sid}: published out of fire-time order: {sequence}")
    return verdict
