"""The API process is SIGKILLed in the middle of a write: nothing is stored half-written.

An apply of many schedules is one transaction; the API dies inside it (a fault hook kills
it after half the schedules were written, before the commit). PostgreSQL rolls the
transaction back when the connection drops, so the store holds none of it, and the same
apply sent again to a new API process creates every schedule.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from scheduler.store.models import apply_sources, changes, schedules
from tests.faults.cluster import START_TIMEOUT_S, Cluster
from tests.faults.processes import Service
from tests.services import free_port, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SCHEDULES = 400
KILLED_AFTER = 200
APPLY_TIMEOUT_S = 120.0


def _api(cluster: Cluster, name: str, hook: Sequence[str] = ()) -> tuple[Service, str]:
    port = free_port()
    service = cluster.procs.start(["api", "--port", str(port)], name, hook)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not service.alive():
            raise AssertionError(f"{name} exited:\n{service.tail()}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, START_TIMEOUT_S, f"{name} to be ready", interval=0.1)
    return service, url


def _stored(cluster: Cluster) -> dict[str, int]:
    with cluster.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (schedules, changes, apply_sources)
        }


def test_api_killed_inside_an_apply_stores_none_of_it_and_the_retry_stores_all(
    cluster: Cluster, tmp_path: Path
) -> None:
    trigger = tmp_path / "kill-mid-apply"
    fired = trigger.with_name(trigger.name + ".fired")
    trigger.write_text(str(KILLED_AFTER))
    body: dict[str, Any] = {
        "source": "faults",
        "schedules": [
            {
                "id": f"applied-{i:03d}",
                "task": "sundial.echo",
                "queue": cluster.queue,
                "trigger": {"type": "interval", "seconds": 60},
            }
            for i in range(SCHEDULES)
        ],
    }
    doomed, url = _api(cluster, "api", ("kill-mid-apply", str(trigger)))
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/v1/apply", json=body, timeout=APPLY_TIMEOUT_S)
    assert doomed.proc.wait(timeout=10) == -signal.SIGKILL
    assert fired.read_text() == str(KILLED_AFTER), "the API died elsewhere than mid-apply"
    after_kill = _stored(cluster)

    _, url = _api(cluster, "api-2")
    response = httpx.post(f"{url}/v1/apply", json=body, timeout=APPLY_TIMEOUT_S)
    assert response.status_code == 200, response.text
    plan = response.json()
    stored = _stored(cluster)
    print(
        f"\nAPI SIGKILLed after writing {KILLED_AFTER} of {SCHEDULES} schedules in one apply: "
        f"stored afterwards {after_kill}; after the retry {stored}"
    )
    assert after_kill == {"schedules": 0, "changes": 0, "apply_sources": 0}
    assert len(plan["created"]) == SCHEDULES
    assert stored["schedules"] == SCHEDULES and stored["apply_sources"] == 1
    with cluster.engine.connect() as conn:
        managed = conn.execute(
            select(func.count()).where(schedules.c.managed_by == "faults")
        ).scalar_one()
    assert managed == SCHEDULES
