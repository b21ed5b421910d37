"""The lease Redis fails under a live leader: FLUSHALL, restart, a write pause, an outage.

The fencing token lives in SQL, so none of these may let two terms record fires, and a
leader that cannot renew stops at its own deadline, before its key could expire.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from scheduler.store.models import RunState
from scheduler.timing.clock import utcnow
from tests.faults.cluster import TTL_S, Cluster, interval, mixed_workload
from tests.faults.history import Verdict
from tests.faults.processes import Service
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _activity(verdict: Verdict, cluster: Cluster, start: datetime, end: datetime) -> list[str]:
    """Runs recorded or published, and messages delivered, within ``[start, end]``."""
    out = [
        f"{r.schedule_id} @ {r.scheduled_for} recorded at {r.created_at}"
        for r in verdict.runs
        if start <= r.created_at <= end
    ]
    out += [
        f"{r.schedule_id} @ {r.scheduled_for} published at {r.dispatched_at}"
        for r in verdict.runs
        if r.dispatched_at is not None and start <= r.dispatched_at <= end
    ]
    out += [
        f"{d.schedule_id} @ {d.scheduled_for} delivered at {d.at}"
        for d in cluster.consumer.deliveries()
        if start <= d.at <= end
    ]
    return out


def _takeover(
    cluster: Cluster, old: Service, before: int, after: int, fault_at: datetime
) -> tuple[int, float, float]:
    """Wait for a new term and for the old holder to notice: (token, new term s, overlap s).

    ``before`` is the old holder's step-down count before the fault. The overlap is how long
    it went on believing it led after the new term began (0 when it re-acquired the lease
    itself); it cannot record anything meanwhile.
    """
    new = cluster.leadership.wait_term(after=after, timeout=TTL_S + 2)
    if new.pid == old.pid:
        overlap = 0.0
    else:
        wait_for(lambda: cluster.step_downs(old) > before, TTL_S, "the old leader to notice")
        overlap = max(0.0, (utcnow() - new.since).total_seconds())
    cluster.wait_fires_under(new.token, 10)
    return new.token, (new.since - fault_at).total_seconds(), overlap


def test_lease_redis_flushed_restarted_paused_or_frozen_never_lets_two_terms_fire(
    cluster: Cluster,
) -> None:
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=40))
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)
    figures: dict[str, tuple[float, float]] = {}

    old, before = cluster.leader(), cluster.step_downs(cluster.leader())
    flushed_at = utcnow()
    cluster.lease_redis.command("FLUSHALL")
    token, took, overlap = _takeover(cluster, old, before, term.token, flushed_at)
    figures["flushall"] = (round(took, 3), round(overlap, 3))

    old, before = cluster.leader(), cluster.step_downs(cluster.leader())
    restarted_at = utcnow()
    cluster.lease_redis.kill()
    cluster.lease_redis.start()
    token, took, overlap = _takeover(cluster, old, before, token, restarted_at)
    figures["restart"] = (round(took, 3), round(overlap, 3))

    # Writes paused for 2 x TTL: renewals block and the key cannot expire meanwhile; the
    # leader stops at its deadline, nobody fires until the pause ends.
    quiet: list[tuple[datetime, datetime]] = []
    terms: dict[str, tuple[int, int]] = {}
    paused_at = utcnow()
    cluster.lease_redis.command("CLIENT", "PAUSE", str(int(2 * TTL_S * 1000)), "WRITE")
    threading.Event().wait(2 * TTL_S)
    unpaused_at = paused_at + timedelta(seconds=2 * TTL_S)
    cluster.wait_fires_since(unpaused_at, 10, timeout=TTL_S + 5)
    quiet.append((paused_at + timedelta(seconds=TTL_S), unpaused_at))
    terms["write pause"] = (token, _current_token(cluster))

    # The server frozen (SIGSTOP) for 2 x TTL: nothing answers; when it wakes the key has
    # expired by its clock.
    token = _current_token(cluster)
    frozen_at = utcnow()
    cluster.lease_redis.freeze()
    threading.Event().wait(2 * TTL_S)
    thawed_at = utcnow()
    cluster.lease_redis.thaw()
    cluster.wait_fires_since(thawed_at, 10, timeout=TTL_S + 5)
    quiet.append((frozen_at + timedelta(seconds=TTL_S), thawed_at))
    terms["server frozen"] = (token, _current_token(cluster))

    verdict = cluster.settle(utcnow() - timedelta(seconds=1))
    fenced = sum(len(cluster.log_lines(s, "fenced off")) for s in cluster.procs.schedulers())
    print(
        f"\nlease Redis faults (new term s, old leader overlap s): {figures}; "
        f"terms across {2 * TTL_S:.0f}s stalls (before, after): {terms}; "
        f"{fenced} claims by an ex-leader fenced off; {verdict.summary()}"
    )
    assert verdict.violations == []
    for start_quiet, end_quiet in quiet:
        assert _activity(verdict, cluster, start_quiet, end_quiet) == []


def _current_token(cluster: Cluster) -> int:
    term = cluster.leadership.current()
    assert term is not None, "no leader"
    return term.token


def test_lease_redis_down_for_three_ttls_fails_closed_then_one_leader_catches_up(
    cluster: Cluster,
) -> None:
    start = utcnow()
    specs = mixed_workload(start, one_offs_for_s=30)
    specs += [
        ("every1-grace2", interval(1), {"coalesce": False, "misfire_grace_seconds": 2.0}),
        ("every1-coalesced", interval(1), {}),
    ]
    cluster.add(specs)
    cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)

    down_at = utcnow()
    cluster.lease_redis.kill()
    threading.Event().wait(3 * TTL_S)
    up_at = utcnow()
    cluster.lease_redis.start()
    new = cluster.leadership.wait_term(after=term.token, timeout=TTL_S + 2)
    verdict = cluster.settle(up_at)
    catch_up_s = (utcnow() - up_at).total_seconds()
    cluster.wait_fires_under(new.token, cluster.fires_under(new.token).count + 10)

    outage = [r for r in verdict.runs if r.created_at > up_at and r.scheduled_for <= up_at]
    missed = [r for r in verdict.runs_of("every1-grace2") if r.state is RunState.MISSED]
    coalesced = [r for r in verdict.runs_of("every1-coalesced") if r.state is RunState.SKIPPED]
    later_terms = [t for t in cluster.leadership.terms() if t.since > up_at]
    print(
        f"\nlease Redis down {3 * TTL_S:.0f}s: new leader "
        f"{(new.since - up_at).total_seconds():.2f}s after it returned; {len(outage)} outage "
        f"fires recorded after it, all settled within {catch_up_s:.2f}s; "
        f"{len(missed)} missed beyond grace, {len(coalesced)} coalesced; {verdict.summary()}"
    )
    assert verdict.violations == []
    assert _activity(verdict, cluster, down_at + timedelta(seconds=TTL_S), up_at) == []
    assert [t.token for t in later_terms] == [new.token], "more than one term after recovery"
    assert missed and all("grace 2s" in (r.reason or "") for r in missed)
    assert coalesced and all("coalesced into" in (r.reason or "") for r in coalesced)
    # Fires due after the leader had to stop could only be recorded after recovery: late,
    # once, published (the default grace is 60 s).
    stopped_by = down_at + timedelta(seconds=TTL_S)
    late = [r for r in verdict.runs_of("every1-0") if stopped_by < r.scheduled_for <= up_at]
    assert len(late) >= 2 * TTL_S - 1
    assert all(r.created_at > up_at and r.state is RunState.DISPATCHED for r in late)
