"""Liveness, readiness and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from scheduler.store.db import make_engine
from tests.api.support import T0, TestClient, add_run, put
from tests.services import free_port


def test_healthz_is_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_is_ok_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "schema": "ok"}


def test_readyz_is_503_when_the_schema_is_not_at_head(
    settings_factory: Any, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with TestClient(create_app(settings_factory(), engine)) as client:
            response = client.get("/readyz")
    finally:
        engine.dispose()

    assert response.status_code == 503
    assert response.json()["checks"]["schema"] == "not at head"
    assert "schema" in response.json()["detail"]


def test_readyz_checks_redis_when_configured(make_client: Any, redis_url: str) -> None:
    up = make_client(redis_url=redis_url).get("/readyz")
    down = make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0").get("/readyz")

    assert up.status_code == 200
    assert up.json()["checks"]["redis"] == "ok"
    assert down.status_code == 503
    assert "redis" in down.json()["detail"]


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    put(client, "s1")
    client.get("/v1/schedules/s1")
    client.get("/v1/schedules/nope")

    samples = _samples(client)

    route = "/v1/schedules/{schedule_id}"
    key = "sundial_http_requests_total"
    assert samples[(key, (("method", "GET"), ("route", route), ("status", "200")))] == 1
    assert samples[(key, (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert samples[(key, (("method", "PUT"), ("route", route), ("status", "201")))] == 1
    count = "sundial_http_request_duration_seconds_count"
    assert samples[(count, (("method", "GET"), ("route", route)))] == 2
    assert all(name.startswith("sundial_") for name, _ in samples)


def test_metrics_gauge_schedules_and_runs_by_state(client: TestClient, engine: Any) -> None:
    put(client, "s1")
    put(client, "s2", paused=True)
    put(client, "s3", paused=True)
    add_run(engine, "s1", T0, "failed")

    samples = _samples(client)

    assert samples[("sundial_schedules", (("state", "active"),))] == 1
    assert samples[("sundial_schedules", (("state", "paused"),))] == 2
    assert samples[("sundial_schedules", (("state", "completed"),))] == 0
    assert samples[("sundial_runs", (("state", "failed"),))] == 1
    assert samples[("sundial_runs", (("state", "pending"),))] == 0
    assert samples[("sundial_store_up", ())] == 1


def test_each_app_has_its_own_registry(make_client: Any) -> None:
    first, second = make_client(), make_client()
    first.get("/healthz")

    assert 'route="/healthz"' not in second.get("/metrics").text
