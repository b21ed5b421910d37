"""A one-off pruned by retention: its pages answer a clean 404, its history and alerts
still read."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from scheduler.firing.claim import claim_due
from scheduler.leadership.lease import Replica, SqlLease
from scheduler.runs.outcomes import record_outcome
from scheduler.runs.retention import prune_one_offs
from scheduler.store.models import RunState, run_id_for
from tests.api.support import T0, FakeClock, TestClient, put, z


def test_pruned_one_off_pages_are_404_and_its_history_and_alerts_still_read(
    client: TestClient, clock: FakeClock, engine: Engine
) -> None:
    lease = SqlLease(engine, Replica("r", "h", 1), ttl_s=600, clock=lambda: clock.now)
    assert lease.acquire() and lease.token is not None
    fire = T0 + timedelta(hours=1)
    put(client, "s", trigger={"type": "date", "run_at": z(fire)})
    assert len(claim_due(engine, fire, lease.token, 10).dispatches) == 1
    run_id = run_id_for("s", fire)
    # A final failure raises an alert that names the run.
    assert record_outcome(engine, run_id, RunState.FAILED, {"finished_at": fire}, fire)
    clock.now = fire + timedelta(days=8)
    assert prune_one_offs(engine, clock.now, timedelta(days=7), 100, lease.token) == 1

    window = {"since": z(T0), "until": z(fire + timedelta(days=1))}
    for path, params in (
        ("/v1/schedules/s", {}),
        ("/v1/schedules/s/timeline", window),
        (f"/v1/runs/{run_id}", {}),
        ("/ui/schedules/s", {}),
        (f"/ui/runs/{run_id}", {}),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 404, (path, response.text)
    history = client.get("/v1/schedules/s/history")
    assert history.status_code == 200
    latest = history.json()["items"][0]
    assert (latest["kind"], latest["actor"]) == ("delete", "retention")
    alerts = client.get("/v1/alerts", params={"schedule_id": "s"})
    assert alerts.status_code == 200
    assert [(a["run_id"], a["resolved_at"] is not None) for a in alerts.json()["items"]] == [
        (run_id, True)
    ]
    for path in ("/ui", "/ui/runs", "/ui/schedules", "/v1/schedules", "/v1/audit"):
        assert client.get(path).status_code == 200, path
