"""Fire-ahead: the leader records the fires of the next window before their instant and
publishes them at it, never earlier; pausing, changing or deleting a schedule inside the
window withdraws its prepared fire, and a new term handles an earlier term's prepared
fires exactly once. Stepped with an injected clock and a recording publisher."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from scheduler.errors import Conflict
from scheduler.firing.outbox import Outbox
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.leadership.runloop import FireCycle
from scheduler.store.history import Audit
from scheduler.store.jobstore import SqlJobStore
from scheduler.store.models import LEADER_ROW, RunState, leader, run_id_for
from scheduler.store.run_store import trigger_run
from scheduler.store.schedule_reads import get_schedule
from scheduler.store.schedule_spec import ScheduleValues
from scheduler.store.schedule_updates import (
    delete_schedule,
    pause_schedule,
    replace_schedule,
    resume_schedule,
)
from scheduler.timing.fire_policy import plan
from tests.clocks import T0, FakeClock
from tests.factories import add_schedule, runs_of, schedule, schedule_row
from tests.scheduler.test_runloop import RecordingPublisher

AHEAD = timedelta(milliseconds=500)
EVERY_10S = {"type": "interval", "seconds": 10}
T1 = T0 + timedelta(seconds=10)  # the first fire of a schedule added at T0 every 10 s
WHO = Audit("tester", reason="edge of the window")


def _leader(
    engine: Engine,
    clock: FakeClock,
    publisher: RecordingPublisher,
    name: str = "r1",
    ahead: timedelta = AHEAD,
) -> tuple[SqlLease, Outbox, FireCycle]:
    lease = SqlLease(engine, Replica(name, "h", 1), ttl_s=600, clock=clock)
    outbox = Outbox(engine, publisher, lease, clock, batch_size=100)
    cycle = FireCycle(
        engine,
        lease,
        outbox,
        SqlJobStore(engine),
        poll_s=5,
        batch_size=100,
        clock=clock,
        ahead=ahead,
    )
    return lease, outbox, cycle


def _prepared(engine: Engine, clock: FakeClock, publisher: RecordingPublisher) -> FireCycle:
    """A leader that has prepared the fire of ``s`` at T1, 200 ms before it."""
    lease, _outbox, cycle = _leader(engine, clock, publisher)
    assert lease.acquire()
    clock.now = T1 - timedelta(milliseconds=200)
    wait = cycle()
    assert publisher.sent == []
    assert publisher.prepared == [run_id_for("s", T1)]
    assert wait == pytest.approx(0.2)
    (run,) = runs_of(engine, "s")
    assert (run["state"], run["due_at"]) == ("pending", T1)
    return cycle


def test_plan_prepares_fires_of_the_window_and_never_counts_them_late() -> None:
    row = schedule_row("s", EVERY_10S, T0, misfire_grace_seconds=0, coalesce=True)
    early = plan(row, T1 - timedelta(milliseconds=300), horizon=T1 + timedelta(milliseconds=1))
    ((fire,),) = [early.fires]
    assert (fire.state, fire.due_at) == (RunState.PENDING, T1)
    assert early.arming.next_run_at == T1 + timedelta(seconds=10)
    # Without a horizon nothing is due yet.
    assert plan(row, T1 - timedelta(milliseconds=300)).fires == []


def test_plan_coalesces_a_backlog_but_not_into_a_fire_of_the_window() -> None:
    row = schedule_row("s", EVERY_10S, T0, coalesce=True)
    late = plan(row, T1 + timedelta(seconds=19.8), horizon=T1 + timedelta(seconds=20.1))
    states = [(f.scheduled_for - T1, f.state, f.due_at is not None) for f in late.fires]
    assert states == [
        (timedelta(0), RunState.SKIPPED, False),
        (timedelta(seconds=10), RunState.PENDING, False),
        (timedelta(seconds=20), RunState.PENDING, True),
    ]


def test_a_prepared_fire_is_published_at_its_instant_and_not_a_millisecond_before(
    engine: Engine,
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    cycle = _prepared(engine, clock, publisher)

    clock.now = T1 - timedelta(milliseconds=1)
    assert cycle() == pytest.approx(0.001)
    assert publisher.sent == []

    clock.now = T1
    cycle()
    assert [d.run_id for d in publisher.sent] == [run_id_for("s", T1)]
    assert runs_of(engine, "s")[0]["state"] == "dispatched"
    assert schedule(engine, "s")["run_count"] == 1


def test_schedules_with_an_overlap_policy_are_claimed_at_their_instant(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    lease, _outbox, cycle = _leader(engine, clock, publisher)
    assert lease.acquire()
    add_schedule(engine, "s", EVERY_10S, T0, overlap="skip")
    clock.now = T1 - timedelta(milliseconds=200)
    assert cycle() == pytest.approx(0.2)  # it sleeps until the instant, it does not spin
    assert runs_of(engine, "s") == []
    clock.now = T1
    cycle()
    assert [d.run_id for d in publisher.sent] == [run_id_for("s", T1)]


def test_after_a_broker_refusal_held_fires_go_out_behind_the_refused_ones(
    engine: Engine,
) -> None:
    """A window longer than the broker backoff (1 s) holds fires past the end of it: they
    must not go out before the older fires the refusal left pending in the store."""
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", {"type": "interval", "seconds": 1}, T0)
    lease, _outbox, cycle = _leader(engine, clock, publisher, ahead=timedelta(seconds=1.5))
    assert lease.acquire()
    first, second, third = (run_id_for("s", T0 + timedelta(seconds=n)) for n in (1, 2, 3))
    clock.now = T0 + timedelta(seconds=0.6)
    cycle()
    assert publisher.prepared == [first, second]

    publisher.down = True
    clock.now = T0 + timedelta(seconds=1)
    cycle()  # the first is refused: it waits pending, the broker backs off for 1 s
    clock.now = T0 + timedelta(seconds=1.6)
    cycle()  # backing off: the third is recorded, not held
    assert publisher.sent == []

    publisher.down = False
    for at in (2, 2.6):  # the backoff is over and the second is due
        clock.now = T0 + timedelta(seconds=at)
        cycle()
    assert [d.run_id for d in publisher.sent] == [first, second]
    clock.now = T0 + timedelta(seconds=3)
    cycle()  # the third was held once the relay had run: it goes out at its instant
    sent = [d.run_id for d in publisher.sent]
    assert sent[:3] == [first, second, third]
    assert len(sent) == len(set(sent))  # each once
    assert [r["state"] for r in runs_of(engine, "s")][:3] == ["dispatched"] * 3


def test_a_window_longer_than_the_gaps_between_fires_does_not_hold_up_the_relay(
    engine: Engine,
) -> None:
    """Fires are held at every moment and every look is at an instant of one: each goes out
    at its instant, once, and a manual run waiting in the store still goes out."""
    clock, publisher = FakeClock(), RecordingPublisher()
    every_1s = {"type": "interval", "seconds": 1}
    add_schedule(engine, "a", every_1s, T0)
    add_schedule(engine, "b", every_1s, T0 + timedelta(seconds=0.5))
    lease, _outbox, cycle = _leader(engine, clock, publisher, ahead=timedelta(seconds=1.5))
    assert lease.acquire()
    clock.now = T0 + timedelta(seconds=0.6)
    cycle()
    with engine.begin() as conn:
        manual = trigger_run(conn, "a", clock.now, WHO)["id"]
    expected: list[str] = []
    for at, sid in ((1, "a"), (1.5, "b"), (2, "a"), (2.5, "b")):
        clock.now = T0 + timedelta(seconds=at)
        cycle()
        expected.append(run_id_for(sid, clock.now))
        assert [d.run_id for d in publisher.sent if d.run_id != manual] == expected
    sent = [d.run_id for d in publisher.sent]
    assert manual in sent
    assert len(sent) == len(set(sent))


def _pause(engine: Engine, schedule_id: str, now: datetime) -> None:
    with engine.begin() as conn:
        pause_schedule(conn, schedule_id, now, WHO)


def test_pausing_inside_the_window_withdraws_the_prepared_fire(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    cycle = _prepared(engine, clock, publisher)
    _pause(engine, "s", T1 - timedelta(milliseconds=100))

    clock.now = T1
    cycle()

    assert publisher.sent == []
    assert publisher.discarded == [run_id_for("s", T1)]
    (run,) = runs_of(engine, "s")
    assert run["state"] == "skipped"
    assert run["reason"] == "withdrawn before its instant: the schedule was paused"
    row = schedule(engine, "s")
    assert (row["run_count"], row["skipped_count"]) == (0, 1)


def test_a_one_off_whose_fire_is_prepared_can_still_be_paused(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", {"type": "date", "run_at": T1.isoformat()}, T0)
    cycle = _prepared(engine, clock, publisher)
    assert schedule(engine, "s")["state"] == "completed"
    with pytest.raises(Conflict):  # after its instant it is simply completed
        _pause(engine, "s", T1 + timedelta(seconds=1))

    _pause(engine, "s", T1 - timedelta(milliseconds=100))
    clock.now = T1
    cycle()

    assert schedule(engine, "s")["state"] == "paused"
    assert publisher.sent == []
    assert runs_of(engine, "s")[0]["state"] == "skipped"


def test_deleting_inside_the_window_publishes_nothing(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    cycle = _prepared(engine, clock, publisher)
    with engine.begin() as conn:
        delete_schedule(conn, "s", T1 - timedelta(milliseconds=100), WHO)

    clock.now = T1
    cycle()

    assert publisher.sent == []
    assert publisher.discarded == [run_id_for("s", T1)]
    assert runs_of(engine, "s") == []  # the run history went with the schedule


def _replace(engine: Engine, now: datetime, **changes: Any) -> dict[str, Any]:
    with engine.begin() as conn:
        current = dict(get_schedule(conn, "s", for_update=True))
        values: Any = {k: current[k] for k in _values_of(current)} | changes
        return replace_schedule(conn, current, values, paused=False, now=now, audit=WHO)


def _values_of(row: dict[str, Any]) -> list[str]:
    return [k for k in ScheduleValues.__annotations__ if k in row]


def test_changing_inside_the_window_withdraws_the_prepared_fire_and_fires_the_new_version(
    engine: Engine,
) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0, kwargs={"v": 1})
    cycle = _prepared(engine, clock, publisher)
    changed = _replace(engine, T1 - timedelta(milliseconds=100), kwargs={"v": 2})

    clock.now = T1
    cycle()
    assert publisher.sent == []
    (run,) = runs_of(engine, "s")
    assert run["state"] == "skipped"
    assert run["reason"] == (
        f"withdrawn before its instant: the schedule changed (now version {changed['version']})"
    )

    clock.now = T1 + timedelta(seconds=10)
    cycle()
    assert [d.kwargs for d in publisher.sent] == [{"v": 2}]


def test_a_new_timing_inside_the_window_goes_on_after_the_withdrawn_fire(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    _prepared(engine, clock, publisher)
    # Every 5 s from T0 also has T1: re-armed there it would clash with the withdrawn run,
    # and counted at or before the last fire it would read as completed.
    row = _replace(
        engine, T1 - timedelta(milliseconds=100), trigger={"type": "interval", "seconds": 5}
    )
    assert (row["state"], row["next_run_at"]) == ("active", T1 + timedelta(seconds=5))


def test_resuming_inside_the_window_keeps_the_fire_withdrawn(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    cycle = _prepared(engine, clock, publisher)
    _pause(engine, "s", T1 - timedelta(milliseconds=150))
    with engine.begin() as conn:
        resumed = resume_schedule(conn, "s", T1 - timedelta(milliseconds=100), WHO)
    assert resumed["next_run_at"] == T1 + timedelta(seconds=10)

    clock.now = T1
    cycle()
    assert publisher.sent == []
    assert runs_of(engine, "s")[0]["state"] == "skipped"


def _new_term(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(leader)
            .where(leader.c.name == LEADER_ROW)
            .values(fencing_token=leader.c.fencing_token + 1, holder="other")
        )


def test_a_deposed_leader_publishes_none_of_its_prepared_fires(engine: Engine) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    cycle = _prepared(engine, clock, publisher)
    _new_term(engine)

    clock.now = T1
    cycle()

    assert publisher.sent == []
    assert runs_of(engine, "s")[0]["state"] == "pending"  # the next term's to publish


def test_a_new_term_publishes_an_earlier_terms_prepared_fire_once_at_its_instant(
    engine: Engine,
) -> None:
    clock, old = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    old_lease, _outbox, old_cycle = _leader(engine, clock, old)
    assert old_lease.acquire()
    clock.now = T1 - timedelta(milliseconds=200)
    old_cycle()
    assert old.prepared == [run_id_for("s", T1)]
    old_lease.release()  # the old leader goes away before the instant

    new = RecordingPublisher()
    lease, _outbox, cycle = _leader(engine, clock, new, name="r2")
    clock.now = T1 - timedelta(milliseconds=100)
    assert lease.acquire()
    cycle()
    assert new.sent == []  # not before its instant, even through the relay

    clock.now = T1  # taken over at the term's start: it goes out at its instant, in order
    cycle()
    assert [d.run_id for d in new.sent] == [run_id_for("s", T1)]
    clock.now = T1 + timedelta(milliseconds=600)
    cycle()
    assert [d.run_id for d in new.sent] == [run_id_for("s", T1)]
    assert [r["state"] for r in runs_of(engine, "s")] == ["dispatched"]
    old_cycle()  # the old leader wakes up: it publishes nothing
    assert old.sent == []


def test_a_new_term_withdraws_an_earlier_terms_prepared_fire_of_a_paused_schedule(
    engine: Engine,
) -> None:
    clock, old = FakeClock(), RecordingPublisher()
    add_schedule(engine, "s", EVERY_10S, T0)
    _prepared(engine, clock, old)
    _new_term(engine)
    _pause(engine, "s", T1 - timedelta(milliseconds=100))

    new = RecordingPublisher()
    lease, _outbox, cycle = _leader(engine, clock, new, name="r2")
    with engine.begin() as conn:  # the lease row of the term _new_term began
        conn.execute(update(leader).where(leader.c.name == LEADER_ROW).values(holder=None))
    assert lease.acquire()
    clock.now = T1 + timedelta(seconds=1)
    cycle()

    assert new.sent == []
    assert runs_of(engine, "s")[0]["reason"] == (
        "withdrawn before its instant: the schedule was paused"
    )
