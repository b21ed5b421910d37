"""API keys: 401 without a valid key, 403 for a read-only key on a write."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from tests.api.support import TestClient, count_schedules, schedule_body

WRITE = {"Authorization": "Bearer w-secret"}
READ = {"Authorization": "Bearer r-secret"}


@pytest.fixture
def secured(make_client: Any) -> TestClient:
    client: TestClient = make_client(api_keys=["w-secret", "r-secret:read"])
    return client


def test_missing_key_is_401_with_a_challenge(secured: TestClient) -> None:
    response = secured.get("/v1/schedules")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer r-secret:read"},
        {"Authorization": "Basic dzpzZWNyZXQ="},
        {"X-API-Key": "nope"},
    ],
)
def test_a_wrong_key_is_401(secured: TestClient, headers: dict[str, str]) -> None:
    assert secured.get("/v1/schedules", headers=headers).status_code == 401


def test_a_read_key_reads_but_may_not_write(secured: TestClient, engine: Engine) -> None:
    assert secured.get("/v1/schedules", headers=READ).status_code == 200
    preview = {"trigger": {"type": "interval", "seconds": 5}, "count": 1}
    assert secured.post("/v1/triggers/preview", json=preview, headers=READ).status_code == 200

    response = secured.post("/v1/schedules", json=schedule_body(), headers=READ)

    assert response.status_code == 403
    assert response.json()["detail"]
    assert count_schedules(engine) == 0


def test_a_write_key_reads_and_writes(secured: TestClient) -> None:
    created = secured.post("/v1/schedules", json=schedule_body(), headers=WRITE)

    assert created.status_code == 201
    assert secured.get(created.headers["Location"], headers=WRITE).status_code == 200


def test_x_api_key_header_works_too(secured: TestClient) -> None:
    response = secured.put(
        "/v1/schedules/s1", json=schedule_body(), headers={"X-API-Key": "w-secret"}
    )

    assert response.status_code == 201
    assert secured.get("/v1/schedules/s1", headers={"X-API-Key": "r-secret"}).status_code == 200


def test_every_write_route_refuses_a_read_key(secured: TestClient) -> None:
    secured.put("/v1/schedules/s1", json=schedule_body(), headers=WRITE)
    writes = [
        ("POST", "/v1/schedules"),
        ("PUT", "/v1/schedules/s1"),
        ("PATCH", "/v1/schedules/s1"),
        ("DELETE", "/v1/schedules/s1"),
        ("POST", "/v1/schedules/s1/pause"),
        ("POST", "/v1/schedules/s1/resume"),
        ("POST", "/v1/schedules/s1/trigger"),
    ]

    for method, url in writes:
        response = secured.request(method, url, json=schedule_body(), headers=READ)
        assert response.status_code == 403, (method, url)
    assert secured.get("/v1/schedules/s1", headers=READ).json()["version"] == 1


def test_every_read_route_needs_a_key(secured: TestClient) -> None:
    for url in ("/v1/schedules/s1", "/v1/schedules/s1/runs", "/v1/runs/r", "/v1/scheduler"):
        assert secured.get(url).status_code == 401, url


def test_health_endpoints_need_no_key(secured: TestClient) -> None:
    for url in ("/healthz", "/readyz", "/metrics"):
        assert secured.get(url).status_code == 200, url


def test_no_keys_configured_allows_all_and_warns(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sundial.api"):
        client: TestClient = make_client()

    assert client.post("/v1/schedules", json=schedule_body()).status_code == 201
    warnings = [r for r in caplog.records if "SUNDIAL_API_KEYS" in r.getMessage()]
    assert len(warnings) == 1


def test_every_configured_key_is_compared_whichever_matches(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ["k1", "k2", "k3:read", "k4"]
    client: TestClient = make_client(api_keys=keys)
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a) + len(b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in ("k1", "k4", "k3", "nope", "a much longer wrong key than any"):
        compared.clear()
        client.get("/v1/schedules", headers={"X-API-Key": presented})
        # No early exit, and digests of one length: timing tells neither which key
        # matched nor how long the keys are.
        assert compared == [64] * len(keys), presented


def test_a_key_listed_both_ways_may_write(make_client: Any) -> None:
    client: TestClient = make_client(api_keys=["both:read", "both"])

    response = client.post("/v1/schedules", json=schedule_body(), headers={"X-API-Key": "both"})

    assert response.status_code == 201


def test_keys_never_show_in_settings_or_their_errors(make_client: Any) -> None:
    client: TestClient = make_client(api_keys=["w-hush", "r-hush:read"])
    settings = client.app.state.sundial.settings  # type: ignore[attr-defined]

    assert "hush" not in repr(settings)
    assert "hush" not in str(settings.api_keys)
    with pytest.raises(ValidationError) as refused:
        type(settings)(_env_file=None, api_keys="ok,top-hush:admin")
    assert "hush" not in str(refused.value)
    assert "entry 2" in str(refused.value)
