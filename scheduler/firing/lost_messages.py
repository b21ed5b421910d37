"""Runs whose message a Redis broker lost between queue and worker, published again.

kombu's Redis transport takes a message off its queue with ``BRPOP`` and only then, in a
second round trip, files it among the ``unacked`` messages that a visibility timeout would
bring back. A connection cut between the two (a broker restart, a network blip) loses the
message: it is in neither place, the worker never saw it, and its run would wait
``dispatched`` until the outcome timeout settles it as failed.

A run still ``dispatched`` and never started may also have executed with its task events
lost (no leader listening for a moment, the store down when they came). Sending it again is
only safe where the workers keep the execution ledger (:mod:`jobs.ledger`: sundial's own
tasks, or :mod:`jobs.dedupe` for any Celery app), which also tells the two cases apart. So
the leader takes a run for lost only when all of these hold:

* it was dispatched between ``after`` and ``after`` + :data:`WINDOW` ago and never started,
  and its schedule has no exchange or routing key of its own (then its queue is unknown);
* its queue's workers keep the ledger: the runs of that queue that started last all have
  their ledger entry (a queue served without the ledger, or partly without it, never has a
  run taken for lost);
* the ledger has no entry for the run: no worker began executing it;
* its message is neither in its queue's lists nor among the unacknowledged messages, at two
  looks in a row (a message between the two places is found the second time).

Such a run goes back to ``pending`` with the reason written on it, once at most; its
publish-once marker is dropped and the relay publishes it again under the same run id.

Only a Redis broker can be asked; RabbitMQ acknowledges deliveries and loses nothing so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, case, or_, select, update

from scheduler.firing.claim import check_fencing
from scheduler.firing.dispatch import REDIS_SCHEMES
from scheduler.firing.messages import PRIORITY_STEPS, redis_list_key
from scheduler.firing.push_once import PushOnce
from scheduler.leadership.chores import LeaderChore
from scheduler.runs.execution_ledger import begun
from scheduler.store.db import among
from scheduler.store.models import RunState, runs, schedules
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.lost_messages")

# Runs looked at per sweep, oldest dispatch first.
CANDIDATES = 200
# Runs dispatched longer ago than ``after`` + this are left to the outcome timeout: a lost
# message is found within minutes, and the sweep's reads stay within recent runs.
WINDOW = timedelta(minutes=10)
# A sweep reads every message held (queued or unacknowledged) once, ~10 µs each; past this
# many it would block the broker too long, and waits for a shorter backlog.
MAX_MESSAGES = 20_000
# How a run put back starts its reason; such a run is never put back a second time.
REASON = "published again:"
# Sweeps come a quarter of ``after`` apart, within these bounds.
MIN_PERIOD_S = 0.5
MAX_PERIOD_S = 30.0
# A queue found to be served with the ledger is not asked again for this long (without it:
# for ``after``, at most this long).
EVIDENCE_TTL = timedelta(minutes=5)
# A queue keeps the ledger when this many of its latest started runs have their entry.
SAMPLES = 3
# Transport options that rename kombu's keys; with any of them set the sweep stays off.
RENAMING_OPTIONS = ("global_keyprefix", "sep", "priority_steps")
_STARTED = [RunState.STARTED, RunState.RETRYING, RunState.SUCCEEDED, RunState.FAILED]

# KEYS: the queues' lists, then the unacked hash. ARGV[1]: the message budget; ARGV[2..]:
# run ids. Returns the run ids whose message is held, or nil over budget. One pass: each
# message's task id is its kombu envelope's ``correlation_id`` (in the unacked hash, the
# same envelope inside a list); a quote inside a header's text is escaped, so the first
# match is the property itself.
_HELD = """
local wanted = {}
for i = 2, #ARGV do wanted[ARGV[i]] = true end
local unacked = KEYS[#KEYS]
local total = redis.call('HLEN', unacked)
for k = 1, #KEYS - 1 do total = total + redis.call('LLEN', KEYS[k]) end
if total > tonumber(ARGV[1]) then return nil end
local found, out = {}, {}
local function look(items)
  for _, item in ipairs(items) do
    local id = string.match(item, '"correlation_id":%s*"([^"]*)"')
    if id and wanted[id] and not found[id] then
      found[id] = true
      out[#out + 1] = id
    end
  end
end
for k = 1, #KEYS - 1 do look(redis.call('LRANGE', KEYS[k], 0, -1)) end
look(redis.call('HVALS', unacked))
return out
"""


class BrokerInventory:
    """Tells which runs' messages a Redis broker still holds, queued or delivered."""

    def __init__(
        self, client: redis.Redis, unacked_key: str = "unacked", clock: Clock = utcnow
    ) -> None:
        self._client = client
        self._unacked = unacked_key
        self._held = client.register_script(_HELD)
        self._once = PushOnce(client, clock)

    def held(self, runs_by_queue: Iterable[tuple[str, str]]) -> set[str] | None:
        """Of these ``(run id, queue)`` pairs, the runs whose message is at the broker, in
        their queue (at any priority) or delivered unacknowledged; None when the backlog is
        too long to look through now."""
        pairs = list(runs_by_queue)
        if not pairs:
            return set()
        queues = sorted({queue for _, queue in pairs})
        lists = [redis_list_key(queue, step) for queue in queues for step in PRIORITY_STEPS]
        found = self._held(
            keys=[*lists, self._unacked], args=[MAX_MESSAGES, *(run for run, _ in pairs)]
        )
        if found is None:
            return None
        return {item.decode() if isinstance(item, bytes) else str(item) for item in found}

    def forget(self, run_ids: Sequence[str]) -> None:
        """Drop the runs' publish-once markers, so that the relay sends them again."""
        self._once.forget(run_ids)

    def close(self) -> None:
        """Release its broker connection."""
        self._client.close()


def unstarted_dispatches(
    engine: Engine,
    now: datetime,
    after: timedelta,
    passed_over: Iterable[str] = (),
    limit: int = CANDIDATES,
) -> list[tuple[str, str]]:
    """``(run id, queue)`` of runs dispatched ``after`` to ``after`` + :data:`WINDOW` ago,
    never started and never put back before, oldest dispatch first; runs of the
    ``passed_over`` queues (served without the ledger) and of schedules routed by their own
    exchange or routing key (whose queue the store does not know) are left out."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.id, schedules.c.queue)
            .join(schedules, schedules.c.id == runs.c.schedule_id)
            .where(
                runs.c.state == RunState.DISPATCHED.value,
                runs.c.started_at.is_(None),
                runs.c.dispatched_at < now - after,
                runs.c.dispatched_at >= now - after - WINDOW,
                # Once only: a copy sent again that goes unreported too is not sent a third
                # time.
                or_(runs.c.reason.is_(None), ~runs.c.reason.contains(REASON)),
                schedules.c.exchange.is_(None),
                schedules.c.routing_key.is_(None),
                schedules.c.queue.not_in(sorted(passed_over)),
            )
            .order_by(runs.c.dispatched_at)
            .limit(limit)
        ).all()
    return [(run_id, queue) for run_id, queue in rows]


def latest_started(engine: Engine, queue: str, since: datetime) -> list[str]:
    """The :data:`SAMPLES` runs of ``queue`` that started last, scheduled since ``since``."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(runs.c.id)
                .join(schedules, schedules.c.id == runs.c.schedule_id)
                .where(
                    runs.c.state.in_([s.value for s in _STARTED]),
                    runs.c.scheduled_for >= since,
                    runs.c.started_at.is_not(None),
                    schedules.c.queue == queue,
                )
                .order_by(runs.c.started_at.desc())
                .limit(SAMPLES)
            ).scalars()
        )


def requeue_lost(engine: Engine, token: int, run_ids: Sequence[str], reason: str) -> list[str]:
    """Put runs the broker lost back to ``pending`` for the relay, under the leader's
    ``token`` (a stale term raises :class:`~scheduler.errors.LeadershipLost`); those that
    moved on meanwhile (started, settled) are left alone. Returns the runs requeued."""
    if not run_ids:
        return []
    with engine.begin() as conn:
        check_fencing(conn, token)
        # Locked first, updated second: MariaDB has no UPDATE ... RETURNING.
        still = list(
            conn.execute(
                select(runs.c.id)
                .where(
                    among(conn, runs.c.id, list(run_ids)),
                    runs.c.state == RunState.DISPATCHED.value,
                    runs.c.started_at.is_(None),
                )
                .with_for_update()
            ).scalars()
        )
        if still:
            # Added to what the run said already (a retry, a backfill, a buffered fire).
            said = case((runs.c.reason.is_(None), reason), else_=runs.c.reason + "; " + reason)
            conn.execute(
                update(runs)
                .where(among(conn, runs.c.id, still))
                .values(state=RunState.PENDING.value, due_at=None, reason=said)
            )
        return still


class LostMessages:
    """The leader's sweep for lost messages (see the module docstring), every ``period``
    from a thread of its own; ``requeued`` is told when runs went back, so that the relay
    looks at once."""

    def __init__(
        self,
        engine: Engine,
        inventory: BrokerInventory,
        ledger: redis.Redis,
        after: timedelta,
        clock: Clock = utcnow,
        token: Callable[[], int | None] = lambda: None,
        requeued: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._inventory = inventory
        self._ledger = ledger
        self._after = after
        self._clock = clock
        self._token = token
        self._requeued = requeued
        self._chore: LeaderChore | None = None
        # Runs missing at the last sweep: missing again now means lost.
        self._missing: set[str] = set()
        # Per queue: whether its workers keep the ledger, and until when that is believed.
        self._evidence: dict[str, tuple[bool, datetime]] = {}

    @property
    def period(self) -> timedelta:
        """Time between sweeps: a lost run goes back within ``after`` + two periods."""
        return timedelta(
            seconds=max(MIN_PERIOD_S, min(MAX_PERIOD_S, self._after.total_seconds() / 4))
        )

    def start(self, leading: Callable[[], bool]) -> None:
        """Sweep in the background whenever ``leading()`` holds."""
        self._chore = LeaderChore(
            "lost-messages", self.period.total_seconds(), self._round, self._clock, self._forget
        )
        self._chore.start(leading)

    def stop(self) -> None:
        """Stop sweeping and release the broker and ledger connections."""
        if self._chore is not None:
            self._chore.stop()
        self._inventory.close()
        self._ledger.close()

    def _round(self, now: datetime) -> None:
        token = self._token()
        if token is not None and self.sweep(now, token):
            self._requeued()

    def _forget(self) -> None:
        # A later term looks afresh: what went missing under this one may have come back.
        self._missing = set()

    def _with_ledger(self, queues: set[str], now: datetime) -> set[str]:
        """Those of these queues whose workers keep the execution ledger: the runs of the
        queue that started last all have their entry."""
        for queue in queues:
            known = self._evidence.get(queue)
            if known is not None and now < known[1]:
                continue
            samples = latest_started(self._engine, queue, now - self._after - WINDOW)
            keeps = bool(samples) and begun(self._ledger, samples) == set(samples)
            # A queue with no sample yet (its worker just started) is asked again soon.
            ttl = EVIDENCE_TTL if keeps else min(EVIDENCE_TTL, self._after)
            self._evidence[queue] = (keeps, now + ttl)
        return {q for q in queues if self._evidence[q][0]}

    def _passed_over(self, now: datetime) -> set[str]:
        return {q for q, (keeps, until) in self._evidence.items() if not keeps and now < until}

    def sweep(self, now: datetime, token: int) -> list[str]:
        """Look once; requeue the runs found lost this time and the last."""
        candidates = unstarted_dispatches(self._engine, now, self._after, self._passed_over(now))
        served = self._with_ledger({queue for _, queue in candidates}, now)
        candidates = [(run_id, queue) for run_id, queue in candidates if queue in served]
        executed = begun(self._ledger, [run_id for run_id, _ in candidates])
        candidates = [(run_id, queue) for run_id, queue in candidates if run_id not in executed]
        held = self._inventory.held(candidates)
        if held is None:
            log.info("lost messages: broker backlog too long to look through; later")
            return []
        missing = {run_id for run_id, _ in candidates} - held
        lost = sorted(missing & self._missing)
        self._missing = missing - set(lost)
        reason = (
            f"{REASON} {self._after.total_seconds():g}s after dispatch its message was neither "
            "queued nor delivered at the broker, and no worker had begun it (lost between "
            "queue and worker)"
        )
        # Markers first: a relay between the two steps would otherwise take the runs for
        # published and record them dispatched again, unsent.
        self._inventory.forget(lost)
        requeued = requeue_lost(self._engine, token, lost, reason)
        if requeued:
            log.warning(
                "lost messages: %d runs dispatched but never delivered by the broker were "
                "put back for publishing: %s",
                len(requeued),
                ", ".join(requeued[:10]),
            )
        return requeued


def create_lost_messages(
    engine: Engine,
    broker_url: str,
    ledger_url: str | None,
    transport_options: Mapping[str, Any],
    after: timedelta,
    clock: Clock = utcnow,
    token: Callable[[], int | None] = lambda: None,
    requeued: Callable[[], None] = lambda: None,
) -> LostMessages | None:
    """The sweep for a Redis broker whose workers keep a ledger; None for other brokers, with
    ``after`` zero (off), or with transport options that rename kombu's keys."""
    if after <= timedelta(0) or not broker_url.startswith(REDIS_SCHEMES) or ledger_url is None:
        return None
    renaming = [name for name in RENAMING_OPTIONS if name in transport_options]
    if renaming or transport_options.get("ack_emulation", True) is False:
        # Without ack emulation no delivered message is kept in ``unacked``: every message
        # a worker holds would look lost.
        log.warning(
            "lost messages: off, the broker transport options %s",
            f"rename kombu's keys ({', '.join(renaming)})" if renaming else "turn acks off",
        )
        return None
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=2)
    unacked = str(transport_options.get("unacked_key", "unacked"))
    ledger = redis.Redis.from_url(ledger_url, socket_timeout=5, socket_connect_timeout=2)
    return LostMessages(
        engine, BrokerInventory(client, unacked, clock), ledger, after, clock, token, requeued
    )
