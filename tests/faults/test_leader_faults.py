"""The leader process fails: SIGKILL, SIGSTOP past its lease, SIGTERM, a starved renew
thread."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.timing.clock import utcnow
from tests.faults.cluster import TTL_S, Cluster, mixed_workload
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_sigkilled_leader_is_replaced_within_ttl_plus_2s_and_no_fire_is_lost_or_doubled(
    cluster: Cluster,
) -> None:
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=45))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    figures = []
    for _ in range(4):
        before = cluster.fires_under(term.token).count
        cluster.wait_fires_under(term.token, before + 20)  # about 2 s of steady firing
        assert term.pid is not None
        killed_at = cluster.crash(cluster.procs.by_pid(term.pid))
        restarted = cluster.procs.start_scheduler()  # the killed one comes back, a follower
        new = cluster.leadership.wait_term(after=term.token, timeout=TTL_S + 10)
        first_new = cluster.wait_fires_under(new.token, 1).first
        cluster.wait_ready(restarted)
        assert first_new is not None
        last_old = cluster.fires_under(term.token).last
        assert last_old is not None
        figures.append(
            {
                "acquired_s": round((new.since - killed_at).total_seconds(), 2),
                "first_fire_s": round((first_new - killed_at).total_seconds(), 2),
                "fire_gap_s": round((first_new - last_old).total_seconds(), 2),
            }
        )
        term = new
    until = utcnow() - timedelta(seconds=1)
    verdict = cluster.settle(until)
    lateness = [
        (r.created_at - r.scheduled_for).total_seconds()
        for r in verdict.runs
        if r.scheduled_for <= until and r.fencing_token is not None
    ]
    print(f"\nSIGKILL x4: {figures}\n  {verdict.summary()}, max lateness {max(lateness):.2f}s")
    assert verdict.violations == []
    for gap in figures:
        assert gap["first_fire_s"] <= TTL_S + 2, f"failover too slow: {figures}"


def test_sigstopped_leader_is_fenced_after_its_ttl_and_steps_down_on_sigcont(
    cluster: Cluster,
) -> None:
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=30))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    assert term.pid is not None
    victim = cluster.procs.by_pid(term.pid)
    cluster.wait_fires_under(term.token, 20)

    # A pause shorter than the lease: fires come late, the leadership stays.
    cluster.crash(victim, signal.SIGSTOP)
    threading.Event().wait(TTL_S / 2)
    victim.signal(signal.SIGCONT)
    resumed = cluster.fires_under(term.token).count
    cluster.wait_fires_under(term.token, resumed + 10, timeout=TTL_S + 2)
    current = cluster.leadership.current()
    assert current is not None and current.token == term.token, "a short pause changed leader"

    # A pause of 2 x TTL: a follower takes over while the leader is frozen.
    before = cluster.step_downs(victim)
    stopped_at = cluster.crash(victim, signal.SIGSTOP)
    new = cluster.leadership.wait_term(after=term.token, timeout=2 * TTL_S)
    threading.Event().wait(max(0.0, 2 * TTL_S - (utcnow() - stopped_at).total_seconds()))
    frozen = cluster.fires_under(term.token)
    victim.signal(signal.SIGCONT)
    resumed_at = utcnow()
    wait_for(lambda: cluster.step_downs(victim) > before, 5, "the ex-leader to step down")
    stepped_down_s = (utcnow() - resumed_at).total_seconds()
    after_resume = cluster.fires_under(new.token).count
    cluster.wait_fires_under(new.token, after_resume + 20)

    assert victim.alive()
    assert cluster.fires_under(term.token) == frozen, "the ex-leader recorded under its token"
    assert frozen.last is not None and frozen.last < new.since
    current = cluster.leadership.current()
    assert current is not None and current.token == new.token
    verdict = cluster.settle(utcnow() - timedelta(seconds=1))
    print(
        f"\nSIGSTOP 2xTTL: takeover {(new.since - stopped_at).total_seconds():.2f}s after stop; "
        f"ex-leader stepped down {stepped_down_s:.2f}s after SIGCONT; {verdict.summary()}"
    )
    assert verdict.violations == []


def test_sigterm_hands_the_lease_over_in_under_a_second(cluster: Cluster) -> None:
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=20))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    handovers = []
    for _ in range(3):
        cluster.wait_fires_under(term.token, cluster.fires_under(term.token).count + 10)
        assert term.pid is not None
        leaving = cluster.procs.by_pid(term.pid)
        asked_at = utcnow()
        leaving.signal(signal.SIGTERM)
        new = cluster.leadership.wait_term(after=term.token, timeout=TTL_S + 5)
        first = cluster.wait_fires_under(new.token, 1).first
        assert first is not None
        assert leaving.proc.wait(timeout=15) == 0
        assert cluster.log_lines(leaving, f"released token {term.token}")
        handovers.append(
            ((new.since - asked_at).total_seconds(), (first - asked_at).total_seconds())
        )
        cluster.wait_ready(cluster.procs.start_scheduler())
        term = new
    verdict = cluster.settle(utcnow() - timedelta(seconds=1))
    rounded = [(round(lease, 3), round(fire, 3)) for lease, fire in handovers]
    print(f"\nSIGTERM handovers (lease, first fire) s: {rounded}; {verdict.summary()}")
    assert verdict.violations == []
    assert all(lease < 1.0 for lease, _ in handovers), f"slow handover: {handovers}"


def test_leader_whose_renew_thread_is_starved_stops_at_its_deadline_and_is_fenced(
    cluster: Cluster, tmp_path: Path
) -> None:
    trigger = tmp_path / "starve-renew"
    fired = trigger.with_name(trigger.name + ".fired")
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=30))
    cluster.start_replicas(2, hook=("starve-renew", str(trigger)))
    term = cluster.leadership.wait_term(after=0, timeout=10)
    assert term.pid is not None
    victim = cluster.procs.by_pid(term.pid)
    cluster.wait_fires_under(term.token, 20)

    # Only the leader renews: its lease thread blocks; its fire loop runs on.
    trigger.touch()
    wait_for(fired.exists, TTL_S, "the leader's renewal to block")
    starved_at = utcnow()
    new = cluster.leadership.wait_term(after=term.token, timeout=2 * TTL_S)
    cluster.wait_fires_under(new.token, cluster.fires_under(new.token).count + 10)
    before = cluster.step_downs(victim)
    stale = cluster.fires_under(term.token)
    fired.unlink()  # the renewal goes through now, a whole term late
    resumed_at = utcnow()
    wait_for(lambda: cluster.step_downs(victim) > before, 5, "the ex-leader to step down")
    cluster.wait_fires_under(new.token, cluster.fires_under(new.token).count + 20)

    assert victim.alive()
    assert new.pid != victim.pid
    assert cluster.fires_under(term.token) == stale, "the starved leader recorded afterwards"
    assert stale.last is not None and stale.last < new.since
    # Its last fire came before its local deadline (TTL less the safety margin), not later.
    assert (stale.last - starved_at).total_seconds() < TTL_S
    verdict = cluster.settle(utcnow() - timedelta(seconds=1), crashes=[])
    print(
        f"\nrenew thread starved: last fire {(stale.last - starved_at).total_seconds():.2f}s "
        f"after the block, new term {(new.since - starved_at).total_seconds():.2f}s after it; "
        f"ex-leader stepped down {(utcnow() - resumed_at).total_seconds():.2f}s after the "
        f"renewal returned; {verdict.summary()}"
    )
    assert verdict.violations == []
