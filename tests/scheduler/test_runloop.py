"""The leader's cycle, stepped directly with an injected clock and a recording publisher
(the sending thread only where it is the subject; no fixed sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError

from scheduler.firing import outbox as outbox_module
from scheduler.firing.bulk import insert_runs, mark_dispatched, new_run
from scheduler.firing.claim import Dispatch
from scheduler.firing.outbox import Outbox
from scheduler.firing.outbox_store import release
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.runloop import STORE_RETRY_S, FireCycle, SundialScheduler
from scheduler.store.history import Audit
from scheduler.store.jobstore import SqlJobStore
from scheduler.store.models import LEADER_ROW, RunTrigger, leader, run_id_for
from scheduler.store.run_store import trigger_run
from tests.clocks import T0, FakeClock
from tests.factories import add_schedule, runs_of, schedule
from tests.services import wait_for


class RecordingPublisher:
    """Accepts messages like a broker would, or refuses them while ``down``."""

    def __init__(self) -> None:
        self.sent: list[Dispatch] = []
        self.revoked: list[str] = []
        self.prepared: list[str] = []
        self.discarded: list[str] = []
        self.down = False

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        if self.down:
            return []
        self.sent.extend(dispatches)
        return [d.run_id for d in dispatches]

    def prepare(self, dispatches: Sequence[Dispatch]) -> None:
        self.prepared.extend(d.run_id for d in dispatches)

    def discard(self, run_ids: Sequence[str]) -> None:
        self.discarded.extend(run_ids)

    def recorded(self, run_ids: Sequence[str]) -> None:
        pass

    def revoke(self, run_ids: Sequence[str]) -> None:
        self.revoked.extend(run_ids)

    def close(self) -> None:
        pass


def _cycle(
    engine: Engine,
    clock: FakeClock,
    publisher: RecordingPublisher,
    poll_s: float = 0.25,
    threaded: bool = False,
    ahead: timedelta = timedelta(0),
    store: SqlJobStore | None = None,
) -> tuple[SqlLease, Outbox, FireCycle]:
    lease = SqlLease(engine, Replica("r1", "h", 1), ttl_s=600, clock=clock)
    outbox = Outbox(engine, publisher, lease, clock, batch_size=2, threaded=threaded)
    cycle = FireCycle(
        engine, lease, outbox, store or SqlJobStore(engine), poll_s=poll_s, batch_size=2,
        clock=clock, ahead=ahead,
    )  # fmt: skip
    return lease, outbox, cycle


def test_follower_publishes_nothing(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    _lease, _outbox, cycle = _cycle(engine, clock, publisher)
    add_schedule(engine, "once", {"type": "date", "run_at": T0.isoformat()}, T0)
    assert cycle() == 0.25
    assert publisher.sent == []


def test_leader_publishes_every_due_fire_in_batches_and_marks_them(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher)
    assert lease.acquire()
    for i in range(5):
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, T0)
    clock.now = T0 + timedelta(seconds=10)

    wait = cycle()

    assert sorted(d.schedule_id for d in publisher.sent) == [f"s{i}" for i in range(5)]
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(5))
    assert 0 < wait <= 0.25


def test_broker_outage_keeps_runs_pending_then_publishes_them_with_the_same_id(
    engine: Engine,
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher)
    assert lease.acquire()
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0, coalesce=False)
    publisher.down = True
    clock.now = T0 + timedelta(seconds=10)
    cycle()
    clock.now = T0 + timedelta(seconds=20)
    cycle()
    assert [r["state"] for r in runs_of(engine, "s")] == ["pending", "pending"]

    publisher.down = False
    clock.now = T0 + timedelta(seconds=22)
    cycle()

    assert [d.run_id for d in publisher.sent] == [
        run_id_for("s", T0 + timedelta(seconds=10)),
        run_id_for("s", T0 + timedelta(seconds=20)),
    ]
    assert [r["state"] for r in runs_of(engine, "s")] == ["dispatched", "dispatched"]


def test_fenced_leader_records_nothing_and_steps_down(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher)
    assert lease.acquire()
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0)
    with engine.begin() as conn:  # another replica started a newer term
        conn.execute(
            update(leader)
            .where(leader.c.name == LEADER_ROW)
            .values(fencing_token=leader.c.fencing_token + 1, holder="other")
        )
    clock.now = T0 + timedelta(seconds=10)

    cycle()

    assert publisher.sent == [] and runs_of(engine, "s") == []
    assert not lease.held()


def test_scheduler_job_store_shows_schedules_as_apscheduler_jobs(engine: Engine) -> None:
    add_schedule(engine, "s", {"type": "cron", "expression": "0 3 * * 0"}, T0)
    store = SqlJobStore(engine)
    SundialScheduler(lambda: 1.0, store)  # registers the store with APScheduler

    job = store.lookup_job("s")

    assert job is not None and job.name == "sundial.echo"
    assert job.next_run_time == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # a Sunday
    assert job.trigger.get_next_fire_time(job.next_run_time, T0) == datetime(
        2026, 11, 29, 3, 0, tzinfo=UTC
    )
    assert store.get_next_run_time() == job.next_run_time
    assert [j.id for j in store.get_due_jobs(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))] == ["s"]


def test_job_store_refuses_to_write_or_delete_schedules(engine: Engine) -> None:
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0)
    store = SqlJobStore(engine)
    SundialScheduler(lambda: 1.0, store)
    job = store.lookup_job("s")

    for call in (
        lambda: store.update_job(job),
        lambda: store.remove_job("s"),
        store.remove_all_jobs,
    ):
        with pytest.raises(TypeError):
            call()

    assert store.lookup_job("s") is not None
    assert schedule(engine, "s")["next_due_at"] == T0 + timedelta(seconds=10)


def test_after_a_broker_refusal_the_loop_looks_again_when_the_backoff_ends(
    engine: Engine,
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(
        engine, clock, publisher, poll_s=5.0
    )  # as with Redis notices: a long safety poll
    assert lease.acquire()
    add_schedule(engine, "s", {"type": "interval", "seconds": 60}, T0)
    publisher.down = True
    clock.now = T0 + timedelta(seconds=60)

    wait = cycle()

    assert 0 < wait <= 1.0  # the backoff, not the 5 s poll
    publisher.down = False
    clock.now += timedelta(seconds=wait)
    cycle()
    assert [d.schedule_id for d in publisher.sent] == ["s"]


def test_store_error_is_retried_soon_without_ending_the_loop(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher, poll_s=5.0)
    assert lease.acquire()

    def broken(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(SqlJobStore, "claim_due", broken)

    assert cycle() == STORE_RETRY_S


def test_threaded_outbox_publishes_every_claimed_batch_in_order(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, outbox, cycle = _cycle(engine, clock, publisher, threaded=True)
    assert lease.acquire()
    for i in range(7):
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, T0, coalesce=False)
    clock.now = T0 + timedelta(seconds=20)
    try:
        cycle()
    finally:
        outbox.close()  # sends what is queued first

    fires = [(d.schedule_id, d.scheduled_for) for d in publisher.sent]
    assert len(fires) == len(set(fires)) == 14
    for i in range(7):
        mine = [t for sid, t in fires if sid == f"s{i}"]
        assert mine == sorted(mine)
        assert [r["state"] for r in runs_of(engine, f"s{i}")] == ["dispatched", "dispatched"]


class GatedPublisher(RecordingPublisher):
    """Holds its first publish until ``gate`` opens; notes each publish in ``events``."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events
        self.gate = threading.Event()

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        if not self.events:
            assert self.gate.wait(timeout=30), "the test never opened the gate"
        self.events.append("push")
        return super().publish(dispatches)


def _burst_events(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Pushes and marks, in order, of three full batches queued behind a held first push."""
    events: list[str] = []
    clock, publisher = FakeClock(), GatedPublisher(events)
    lease, outbox, cycle = _cycle(engine, clock, publisher, threaded=True)
    assert lease.acquire()
    for i in range(6):
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, T0)

    def mark(engine: Engine, run_ids: Sequence[str], now: datetime) -> None:
        events.append("mark")
        mark_dispatched(engine, run_ids, now)

    monkeypatch.setattr(outbox_module, "mark_dispatched", mark)
    clock.now = T0 + timedelta(seconds=10)
    try:
        cycle()  # three full batches of 2: the first is held at the broker, two queue behind
        publisher.gate.set()
    finally:
        outbox.close()
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(6))
    return events


def test_a_burst_is_pushed_whole_before_its_batches_are_recorded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 30.0)  # however slow the claims
    assert _burst_events(engine, monkeypatch) == ["push"] * 3 + ["mark"] * 3


def test_a_long_burst_is_recorded_as_it_goes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushed batches wait at most MARK_WITHIN_S for their marks (here: not at all)."""
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 0.0)
    assert _burst_events(engine, monkeypatch) == ["push", "mark"] * 3


class NotingPublisher(RecordingPublisher):
    """Notes each publish in ``events``."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        self.events.append("push")
        return super().publish(dispatches)


def _instant_events(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, before_check: Callable[[int, list[str]], None]
) -> list[str]:
    """Pushes and marks, in order, of an instant's six held fires released in three batches
    of 2, each checked in the store first; ``before_check(n, events)`` runs before check n."""
    events: list[str] = []
    clock, publisher = FakeClock(), NotingPublisher(events)
    lease, outbox, cycle = _cycle(
        engine, clock, publisher, threaded=True, ahead=timedelta(seconds=1)
    )
    assert lease.acquire()
    for i in range(6):
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, T0)
    checks = 0

    def hooked_release(*args: Any) -> set[str]:
        nonlocal checks
        before_check(checks, events)
        checks += 1
        return release(*args)

    def mark(engine: Engine, run_ids: Sequence[str], now: datetime) -> None:
        events.append("mark")
        mark_dispatched(engine, run_ids, now)

    monkeypatch.setattr(outbox_module, "release", hooked_release)
    monkeypatch.setattr(outbox_module, "mark_dispatched", mark)
    clock.now = T0 + timedelta(seconds=9.5)
    try:
        cycle()  # the six fires of T0 + 10 s are prepared and held
        assert events == []
        clock.now = T0 + timedelta(seconds=10)
        cycle()  # three checks and three pushes of 2
        wait_for(lambda: events.count("mark") == 3 or None, 10, "the marks")
        assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(6))
    finally:
        outbox.close()
    assert checks == 3
    return events


def test_an_instants_held_fires_are_all_pushed_before_any_is_recorded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sending queue runs empty during every check (each starts once the last batch is
    pushed), and the marks still wait until the instant is pushed."""
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 30.0)  # a loaded machine's checks

    def after_the_last_push(n: int, events: list[str]) -> None:
        wait_for(lambda: events.count("push") == n or None, 10, f"push {n}", 0.001)

    events = _instant_events(engine, monkeypatch, after_the_last_push)
    assert events == ["push"] * 3 + ["mark"] * 3


def test_an_instants_pushed_fires_are_recorded_within_the_bound_while_a_check_hangs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow check (a lock wait) does not hold the marks of what went before past
    MARK_WITHIN_S: a leader killed meanwhile would leave them pending."""
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 0.05)

    def second_check_hangs_until_a_mark(n: int, events: list[str]) -> None:
        if n == 1:
            wait_for(lambda: "mark" in events or None, 10, "the first mark", 0.001)

    events = _instant_events(engine, monkeypatch, second_check_hangs_until_a_mark)
    assert events[:2] == ["push", "mark"]
    assert sorted(events) == ["mark"] * 3 + ["push"] * 3


def test_a_relay_asked_for_at_an_instant_waits_for_its_fires_instead_of_skipping(
    engine: Engine,
) -> None:
    """Held instants closer together than BUSY_RELAY_S must not keep the relay off: at the
    instant the relay waits for the release's batches to be recorded, then runs."""
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, outbox, cycle = _cycle(
        engine, clock, publisher, threaded=True, ahead=timedelta(seconds=1)
    )
    assert lease.acquire()
    add_schedule(engine, "s", {"type": "interval", "seconds": 10}, T0)
    clock.now = T0 + timedelta(seconds=9.5)
    try:
        cycle()  # the fire of T0 + 10 s is prepared and held
        with engine.begin() as conn:
            manual = trigger_run(conn, "s", clock.now, Audit("tester"))["id"]
        outbox.request_relay()  # as a change notice does
        clock.now = T0 + timedelta(seconds=10)
        cycle()
        assert [d.run_id for d in publisher.sent] == [run_id_for("s", clock.now), manual]
    finally:
        outbox.close()


def _due_at_ten(engine: Engine, count: int = 6) -> list[str]:
    """Schedules whose first fires fall 1 ms apart just after T0 + 10 s: their runs, in
    fire-time order."""
    firsts = [T0 + timedelta(seconds=10, milliseconds=i) for i in range(count)]
    for i, first in enumerate(firsts):
        start = first - timedelta(seconds=10)
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, start)
    return [run_id_for(f"s{i}", first) for i, first in enumerate(firsts)]


class RefusingOne(RecordingPublisher):
    """Refuses the ``nth`` batch it is handed and accepts every other; the first waits for
    ``go``."""

    def __init__(self, nth: int = 1) -> None:
        super().__init__()
        self.nth = nth
        self.calls = 0
        self.refused: list[str] = []
        self.go = threading.Event()
        self.go.set()

    def publish(self, dispatches: Sequence[Dispatch]) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            assert self.go.wait(10)
        if self.calls == self.nth:
            self.refused = [d.run_id for d in dispatches]
            return []
        return super().publish(dispatches)


def test_a_refusal_while_an_instant_is_released_keeps_its_later_batches_behind_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sending thread sees the refusal after the next batch's check has begun, and that
    check outlasts the broker backoff: the later batches still wait pending for the relay,
    which sends all six in fire-time order, and the messages built for them are let go."""
    clock, publisher = FakeClock(), RefusingOne()
    lease, outbox, cycle = _cycle(
        engine, clock, publisher, threaded=True, ahead=timedelta(seconds=1)
    )
    assert lease.acquire()
    expected = _due_at_ten(engine)
    checks = 0

    def second_check_outlasts_the_backoff(*args: Any) -> set[str]:
        nonlocal checks
        checks += 1
        if checks == 2:
            publisher.go.set()  # the first batch is refused now
            wait_for(outbox.wake_at, 10, "the backoff")
            clock.now += timedelta(seconds=2)
        return release(*args)

    monkeypatch.setattr(outbox_module, "release", second_check_outlasts_the_backoff)
    clock.now = T0 + timedelta(seconds=9.5)
    try:
        cycle()
        assert publisher.prepared == expected
        publisher.go.clear()
        clock.now = T0 + timedelta(seconds=10.01)
        cycle()  # the release, then the relay: the backoff is over by then
    finally:
        outbox.close()
    assert publisher.refused == expected[:2]
    assert checks == 2  # the third batch was not even checked
    assert [d.run_id for d in publisher.sent] == expected
    assert set(expected) <= set(publisher.discarded)
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(6))


class HookedClaims(SqlJobStore):
    """Calls ``before(n)`` ahead of its n-th claim (from 1), which then claims at the
    clock's time: the hook may move it."""

    def __init__(self, engine: Engine, clock: FakeClock, before: Callable[[int], None]) -> None:
        super().__init__(engine)
        self.hooked_clock = clock
        self.before = before
        self.claims = 0

    def claim_due(
        self, now: datetime, token: int, limit: int, ahead: timedelta = timedelta(0)
    ) -> Any:
        self.claims += 1
        self.before(self.claims)
        return super().claim_due(self.hooked_clock.now, token, limit, ahead)


def test_a_refusal_inside_a_burst_keeps_its_later_fires_behind_it(engine: Engine) -> None:
    """A burst's claims go on past the broker backoff: the fires claimed after the refusal
    wait pending with the refused ones, and the next relay sends them all in order."""
    clock, publisher = FakeClock(), RefusingOne()

    def second_claim_after_the_backoff(n: int) -> None:
        if n == 2:  # the first batch has been published (here: refused)
            clock.now += timedelta(seconds=2)

    store = HookedClaims(engine, clock, second_claim_after_the_backoff)
    lease, _outbox, cycle = _cycle(engine, clock, publisher, store=store)
    assert lease.acquire()
    expected = _due_at_ten(engine)
    clock.now = T0 + timedelta(seconds=10.01)
    cycle()  # the first two are refused, four more are claimed after the backoff
    assert publisher.refused == expected[:2]
    assert publisher.sent == []
    cycle()
    assert [d.run_id for d in publisher.sent] == expected
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(6))


def test_a_refusal_seen_while_a_short_batch_waits_for_the_queue_keeps_it_behind(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst's last, short batch waits for the full ones before it: one of those is
    refused, and recording the other outlasts the backoff (a slow store). The short batch
    must then stay pending too, behind the refused one."""
    clock, publisher = FakeClock(), RefusingOne(nth=2)
    publisher.go.clear()  # the first batch is pushed once the short one waits for the queue
    last_claim = threading.Event()

    def last_claim_lets_the_first_batch_go(n: int) -> None:
        if n == 3:
            last_claim.set()

    marks: list[Sequence[str]] = []

    def slow_mark(engine: Engine, run_ids: Sequence[str], now: datetime) -> None:
        if not marks:
            clock.now += timedelta(seconds=2)
        marks.append(run_ids)
        mark_dispatched(engine, run_ids, now)

    monkeypatch.setattr(outbox_module, "mark_dispatched", slow_mark)
    store = HookedClaims(engine, clock, last_claim_lets_the_first_batch_go)
    lease, outbox, cycle = _cycle(engine, clock, publisher, threaded=True, store=store)
    assert lease.acquire()
    assert outbox._queue is not None
    join = outbox._queue.join

    def join_then_go() -> None:
        if last_claim.is_set():
            publisher.go.set()
        join()

    monkeypatch.setattr(outbox._queue, "join", join_then_go)
    expected = _due_at_ten(engine, 5)
    clock.now = T0 + timedelta(seconds=10.01)
    try:
        cycle()  # two full batches to the sending thread, the second refused; one of 1 left
        assert publisher.refused == expected[2:4]
        assert [d.run_id for d in publisher.sent] == expected[:2]
        clock.now = T0 + timedelta(seconds=15)  # every backoff is over
        cycle()
    finally:
        outbox.close()
    assert [d.run_id for d in publisher.sent] == expected
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(5))


def test_runs_whose_mark_failed_are_marked_later_and_never_relayed_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, outbox, cycle = _cycle(engine, clock, publisher, threaded=True)
    assert lease.acquire()
    for i in range(4):
        add_schedule(engine, f"s{i}", {"type": "interval", "seconds": 10}, T0)
    real = mark_dispatched
    failures = {"left": 3}

    def flaky(*args: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("UPDATE", {}, Exception("connection reset"))
        real(*args)

    monkeypatch.setattr(outbox_module, "mark_dispatched", flaky)
    try:
        clock.now = T0 + timedelta(seconds=10)
        for _ in range(6):  # a full batch goes to the sending thread; relays are asked for
            cycle()
            outbox.request_relay()
            clock.now += timedelta(seconds=1)
    finally:
        outbox.close()

    sent = [d.run_id for d in publisher.sent]
    assert len(sent) == len(set(sent)) == 4
    assert failures["left"] == 0
    assert all(runs_of(engine, f"s{i}")[0]["state"] == "dispatched" for i in range(4))


def test_a_waiting_run_is_relayed_when_due_without_the_loop_spinning(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher, poll_s=5.0)
    assert lease.acquire()
    add_schedule(engine, "s", {"type": "interval", "seconds": 3600}, T0)
    cycle()  # a new term relays at once; the next relay may come 0.5 s later
    retry = new_run(
        run_id="retry-2",
        schedule_id="s",
        scheduled_for=T0,
        task="sundial.echo",
        trigger=RunTrigger.RETRY,
        now=T0,
        attempt=2,
        due_at=T0 + timedelta(seconds=0.2),
        schedule_version=1,
    )
    with engine.begin() as conn:
        insert_runs(conn, [retry])

    clock.now = T0 + timedelta(seconds=0.1)
    assert cycle() == pytest.approx(0.4)  # the relay's next turn, not 0.1 s and then 0 s
    clock.now = T0 + timedelta(seconds=0.5)
    cycle()

    assert [d.run_id for d in publisher.sent] == ["retry-2"]


def test_a_fire_due_by_the_next_look_needs_no_wake_up_and_one_due_before_it_does(
    engine: Engine,
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher, poll_s=5.0)
    assert lease.acquire()
    # Before the first cycle nothing is planned: every notice wakes the loop.
    assert not cycle.looks_by(T0 + timedelta(days=1))
    add_schedule(engine, "s", {"type": "interval", "seconds": 60}, T0)
    clock.now = T0 + timedelta(seconds=58)

    wait = cycle()  # the next look: the fire at T0 + 60 s

    assert wait == 2.0
    assert cycle.looks_by(T0 + timedelta(seconds=60))
    assert cycle.looks_by(T0 + timedelta(seconds=61))
    assert not cycle.looks_by(T0 + timedelta(seconds=59))


def test_the_next_look_counts_the_fire_ahead_window(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher, poll_s=5.0, ahead=timedelta(seconds=1))
    assert lease.acquire()
    clock.now = T0

    assert cycle() == 5.0  # nothing stored: the poll

    # A fire at T0 + 5.5 s is claimed a second ahead, at T0 + 4.5 s: before the look.
    assert not cycle.looks_by(T0 + timedelta(seconds=5.5))
    assert cycle.looks_by(T0 + timedelta(seconds=6))


def test_while_a_cycle_runs_every_notice_wakes_the_loop(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _cycle(engine, clock, publisher, poll_s=5.0)
    assert lease.acquire()
    clock.now = T0
    cycle()
    assert cycle.looks_by(T0 + timedelta(seconds=10))
    seen: list[bool] = []
    claim_due = SqlJobStore.claim_due

    def claiming(store: SqlJobStore, *args: Any) -> Any:
        # A change committed now may be missed by this cycle's read of the due times.
        seen.append(cycle.looks_by(T0 + timedelta(seconds=10)))
        return claim_due(store, *args)

    monkeypatch.setattr(SqlJobStore, "claim_due", claiming)
    cycle()

    assert seen == [False]
    assert cycle.looks_by(T0 + timedelta(seconds=10))
