"""The store fails under the replicas: a 30-second outage (PostgreSQL and MariaDB), and
PostgreSQL backends killed mid-claim.

The replicas reach the store through the test's proxy (an outage without stopping the
machine's server); the test reads it directly. Killed backends are only the replicas' own,
in the test's own database.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest

from scheduler.store.models import RunState
from scheduler.timing.clock import monotonic, utcnow
from tests.faults.cluster import TTL_S, Cluster, interval, mixed_workload
from tests.services import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE_S = 30.0


# SQLAlchemy's pool logs the failed rollback of a connection the cut killed while it was
# checked out, with its traceback, and drops that connection: handled, not a crash (seen
# on MariaDB, whose driver reports the lost connection only at that rollback).
POOL_RESET = "Exception during reset or similar"
_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def _tracebacks(cluster: Cluster) -> list[str]:
    """Log lines of a replica thread (or process) dying on an uncaught exception."""
    found = []
    for s in cluster.procs.schedulers():
        record, previous = "", ""  # the log record a traceback would belong to; last line
        for line in s.log().splitlines():
            if _RECORD.match(line):
                record = line
            elif "Traceback" in line and not (
                # The pool's handled reset failure: its traceback follows the record, and an
                # exception it chains prints one more, each after its "During handling…".
                POOL_RESET in record and (previous == record or previous in _CHAINED)
            ):
                found.append(f"{s.name}: {line}")
            if line.strip():
                previous = line
    return found


def _count(cluster: Cluster, needle: str) -> int:
    return sum(len(cluster.log_lines(s, needle)) for s in cluster.procs.schedulers())


@pytest.mark.parametrize("cluster", ["postgresql", "mariadb"], indirect=True)
def test_store_unreachable_for_30s_keeps_replicas_alive_and_catches_up_per_policy(
    cluster: Cluster,
) -> None:
    start = utcnow()
    specs = mixed_workload(start, one_offs_for_s=45)
    specs += [
        ("every1-grace5", interval(1), {"coalesce": False, "misfire_grace_seconds": 5.0}),
        ("every1-coalesced", interval(1), {}),
    ]
    cluster.add(specs)
    replicas = cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 20)

    cut_at = utcnow()
    cluster.pg_proxy.cut()
    threading.Event().wait(OUTAGE_S)
    assert all(r.alive() for r in replicas), "a replica died while the store was away"
    restored_at = utcnow()
    cluster.pg_proxy.restore()
    verdict = cluster.settle(restored_at)
    caught_up_s = (utcnow() - restored_at).total_seconds()
    cluster.wait_fires_since(utcnow(), 10)

    backlog = [r for r in verdict.runs if r.created_at > restored_at and r.scheduled_for < cut_at]
    outage = [r for r in verdict.runs if cut_at < r.scheduled_for <= restored_at]
    late = [r for r in outage if r.schedule_id == "every1-0"]
    missed = [r for r in verdict.runs_of("every1-grace5") if r.state is RunState.MISSED]
    coalesced = [r for r in verdict.runs_of("every1-coalesced") if r.state is RunState.SKIPPED]
    terms = [t.token for t in cluster.leadership.terms()]
    print(
        f"\n{cluster.engine.dialect.name} cut {OUTAGE_S:.0f}s: {len(outage)} outage fires settled "
        f"{caught_up_s:.2f}s after restore ({len(backlog)} older ones too); "
        f"{len(missed)} missed beyond grace, {len(coalesced)} coalesced; terms {terms}; "
        f"{_count(cluster, 'store unavailable')} store errors caught, "
        f"{cluster.pg_proxy.refused} connections refused; {verdict.summary()}"
    )
    assert verdict.violations == []
    assert all(r.alive() for r in replicas)
    assert _tracebacks(cluster) == []
    assert all(r.state is RunState.DISPATCHED for r in late) and len(late) >= OUTAGE_S - 1
    assert missed and all("grace 5s" in (r.reason or "") for r in missed)
    assert coalesced and all("coalesced into" in (r.reason or "") for r in coalesced)


def test_replica_backends_killed_mid_claim_leave_the_loop_running_and_nothing_doubled(
    cluster: Cluster,
) -> None:
    start = utcnow()
    specs = mixed_workload(start, one_offs_for_s=30)
    # Enough schedules that each second's claim takes a while to be killed in.
    specs += [(f"load-{i}", interval(1), {"coalesce": False}) for i in range(200)]
    cluster.add(specs)
    replicas = cluster.start_replicas(2)
    term = cluster.leadership.wait_term(after=0, timeout=10)
    cluster.wait_fires_under(term.token, 600)

    killed = rounds = 0
    ends = monotonic() + 10
    while monotonic() < ends:
        # Not crashes: the replicas live on, so no message may go out twice.
        killed += cluster.terminate_replica_backends()
        rounds += 1
        threading.Event().wait(0.3)
    stopped_at = utcnow()
    verdict = cluster.settle(stopped_at)
    cluster.wait_fires_since(utcnow(), 200)
    wait_for(lambda: all(r.alive() for r in replicas), 1, "replicas alive")

    lateness = [
        (r.created_at - r.scheduled_for).total_seconds()
        for r in verdict.runs
        if r.created_at <= stopped_at + timedelta(seconds=TTL_S)
    ]
    print(
        f"\npg_terminate_backend x{rounds}: {killed} backends killed; "
        f"{_count(cluster, 'store unavailable')} store errors caught, "
        f"{_count(cluster, 'published runs failed')} retried marks, "
        f"{_count(cluster, 'attempt failed')} lease attempts failed; terms "
        f"{[t.token for t in cluster.leadership.terms()]}; max lateness {max(lateness):.2f}s; "
        f"{verdict.summary()}"
    )
    assert verdict.violations == []
    assert all(r.alive() for r in replicas)
    assert _tracebacks(cluster) == []
