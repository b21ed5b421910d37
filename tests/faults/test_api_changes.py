"""An idle leader and changes through the REST API: each takes effect within a second.

With Redis the leader re-reads the store only every 5 s; the API's change notice is what
wakes it. So a fire picked up more than a second late means the notice path failed.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from scheduler.timing.clock import utcnow
from tests.faults.cluster import START_TIMEOUT_S, Cluster
from tests.faults.history import parse_instant
from tests.services import free_port, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

REACTION_S = 1.0
DELETE_AHEAD_S = 1.0


def _cron_at(at: datetime) -> dict[str, Any]:
    """A six-field cron firing once a day at ``at``'s second."""
    return {
        "type": "cron",
        "expression": f"{at.second} {at.minute} {at.hour} * * *",
        "timezone": "UTC",
    }


def _whole_second(at: datetime) -> datetime:
    return at.replace(microsecond=0) + timedelta(seconds=1)


def test_idle_leader_fires_creates_and_moves_within_a_second_and_never_a_deleted_one(
    cluster: Cluster,
) -> None:
    port = free_port()
    cluster.procs.start(["api", "--port", str(port)], "api")
    cluster.start_replicas(2)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

        def ready() -> bool:
            try:
                return http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, START_TIMEOUT_S, "the API to be ready", interval=0.1)
        term = cluster.leadership.current()
        shown = http.get("/v1/scheduler").json()["leader"]
        assert term is not None and shown is not None
        assert (shown["pid"], shown["fencing_token"]) == (term.pid, term.token)

        def create(trigger: dict[str, Any], schedule_id: str | None = None) -> dict[str, Any]:
            body = {"task": "sundial.echo", "queue": cluster.queue, "trigger": trigger}
            if schedule_id is None:
                response = http.post("/v1/schedules", json=body)
            else:
                response = http.put(f"/v1/schedules/{schedule_id}", json=body)
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        t0 = utcnow()
        delay = create({"type": "delay", "seconds": 1})
        one_off = create({"type": "date", "run_at": (t0 + timedelta(seconds=2)).isoformat()})
        old_time = _whole_second(t0 + timedelta(seconds=40))
        new_time = _whole_second(t0 + timedelta(seconds=4))
        create(_cron_at(old_time), "moved-cron")
        doomed_at = t0 + timedelta(seconds=6)
        doomed = create({"type": "date", "run_at": doomed_at.isoformat()})
        moved = http.patch("/v1/schedules/moved-cron", json={"trigger": _cron_at(new_time)})
        assert moved.status_code == 200, moved.text
        assert parse_instant(moved.json()["next_run_at"]) == new_time

        # A second before it is due: the DELETE must land before the fire time even on a
        # loaded machine (0.3 s was not always enough for the request itself).
        threading.Event().wait(max(0.0, (doomed_at - utcnow()).total_seconds() - DELETE_AHEAD_S))
        deleted = http.delete(f"/v1/schedules/{doomed['id']}")
        deleted_at = utcnow()
        assert deleted.status_code == 204 and deleted_at < doomed_at, "DELETE came too late"

    fired = {delay["id"], one_off["id"], "moved-cron"}
    wait_for(
        lambda: fired <= {d.schedule_id for d in cluster.consumer.deliveries()},
        10,
        "the created and moved schedules to fire",
    )
    # The deleted one-off would have fired by now, had the DELETE not stopped it.
    threading.Event().wait(max(0.0, (doomed_at - utcnow()).total_seconds() + 1.5))
    verdict = cluster.judge(utcnow(), expect_for=fired)
    names = {delay["id"]: "delay 1s", one_off["id"]: "one-off in 2s", "moved-cron": "moved cron"}
    late = {}
    for sid, name in names.items():
        (run,) = verdict.runs_of(sid)
        (delivery,) = cluster.consumer.of(sid)
        late[name] = round((delivery.at - run.scheduled_for).total_seconds(), 3)
    requested = parse_instant(delay["created_at"])
    delay_fired_s = (cluster.consumer.of(delay["id"])[0].at - requested).total_seconds()
    print(
        f"\nidle leader + API: lateness of delivery after the fire time (s) {late}; "
        f"a 1 s delay job was delivered {delay_fired_s:.2f}s after its request"
    )
    assert verdict.violations == [] and verdict.incomplete == []
    assert verdict.runs_of("moved-cron")[0].scheduled_for == new_time
    assert all(v < REACTION_S for v in late.values()), f"a change took effect late: {late}"
    assert not cluster.consumer.of(doomed["id"]), "a schedule deleted before due fired"
    assert not verdict.runs_of(doomed["id"])
