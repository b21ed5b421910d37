"""The leader's wall clock steps an hour forward, then an hour back (FAULTS.md 14 and 15).

The replica that leads runs under libfaketime (Debian's ``faketime`` package) with its
offset in a file the test rewrites; its monotonic clock is left alone, as an NTP step
leaves it. Its next claim reads the database's clock in the same transaction, sees the
hour and steps down without recording anything (``scheduler/skew.py``); the replica whose
clock agrees takes over. Nothing fires early, twice, or is lost.
"""

from __future__ import annotations

import glob
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.store.models import RunState
from scheduler.timing.clock import utcnow
from tests.faults.cluster import START_TIMEOUT_S, TTL_S, Cluster, mixed_workload
from tests.faults.history import Term
from tests.faults.processes import Service
from tests.services import service_missing, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.long]

LIBFAKETIME = "/usr/lib/*/faketime/libfaketimeMT.so.1"


def _faked_clock(offset: Path) -> dict[str, str]:
    """Environment that runs a process with its wall clock offset by ``offset``'s text."""
    found = glob.glob(LIBFAKETIME)
    if not found:
        service_missing("libfaketime is not installed (apt-get install faketime)")
    return {
        "LD_PRELOAD": found[0],
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        # Re-read every second: the step happens within a second of the file changing.
        # (Re-reading it at every clock call slows the whole process down.)
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def test_leader_clock_stepped_an_hour_either_way_fires_nothing_early_twice_or_never(
    cluster: Cluster, tmp_path: Path
) -> None:
    offset = tmp_path / "clock-offset"
    offset.write_text("+0\n")
    start = utcnow()
    cluster.add(mixed_workload(start, one_offs_for_s=60))
    skewed = cluster.procs.start_scheduler(env=_faked_clock(offset))
    cluster.wait_ready(skewed)

    _leads(cluster, skewed)
    healthy = cluster.procs.start_scheduler()
    cluster.wait_ready(healthy)
    figures = {}
    for step in ("+1h", "-1h"):
        term = _leads(cluster, skewed)
        stepped_at = utcnow()
        offset.write_text(f"{step}\n")
        new = _leads(cluster, healthy, fires=1, timeout=4 * TTL_S)
        cluster.wait_fires_since(stepped_at + timedelta(seconds=3), 20)
        # Once the step reached it (libfaketime re-reads the offset every second), the
        # stepped replica never led again.
        relapsed = [
            change
            for change in cluster.leadership.changes
            if change[2] == skewed.pid and change[0] > stepped_at + timedelta(seconds=2)
        ]
        assert relapsed == [], "the replica with the stepped clock led again"
        # What it recorded, it recorded with its clock still right: the step reaches the
        # process within a second (libfaketime's cache) and its next claim refuses.
        fires = cluster.fires_under(term.token)
        assert fires.first is not None and fires.last is not None
        assert term.since - timedelta(seconds=1) <= fires.first, fires
        assert fires.last <= stepped_at + timedelta(seconds=3), (fires, stepped_at)
        figures[step] = round((new.since - stepped_at).total_seconds(), 2)
        offset.write_text("+0\n")
        if step == "+1h":
            # Its clock is right again: hand it the lease back for the backward step.
            healthy.signal(signal.SIGTERM)
            assert healthy.proc.wait(timeout=15) == 0
            term = _leads(cluster, skewed)
            healthy = cluster.procs.start_scheduler()
            cluster.wait_ready(healthy)

    verdict = cluster.settle(utcnow() - timedelta(seconds=1), crashes=[])
    early = [
        f"{d.schedule_id} @ {d.scheduled_for} delivered at {d.at}"
        for d in verdict.deliveries
        if d.at < d.scheduled_for
    ]
    future = [r for r in verdict.runs if r.scheduled_for > utcnow() + timedelta(seconds=2)]
    missed = [r for r in verdict.runs if r.state is RunState.MISSED]
    refusals = cluster.log_lines(skewed, "wall clock is")
    print(
        f"\nleader clock stepped (takeover s after the step): {figures}; "
        f"{len(refusals)} refusals logged by the stepped replica; {verdict.summary()}"
    )
    assert verdict.violations == []
    assert early == [] and future == [] and missed == []
    assert any("ahead of the database" in line for line in refusals)
    assert any("behind the database" in line for line in refusals)


def _leads(
    cluster: Cluster, service: Service, fires: int = 20, timeout: float = START_TIMEOUT_S
) -> Term:
    """Wait until ``service`` leads and has fired ``fires`` times in its current term, and
    return that term: on a loaded machine a replica may lose and retake its lease."""

    def leads_and_fires() -> Term | None:
        term = cluster.leadership.current()
        if term is None or term.pid != service.pid:
            return None
        return term if cluster.fires_under(term.token).count >= fires else None

    return wait_for(leads_and_fires, timeout, f"{service.name} to lead and fire")
