"""Run history: GET /v1/schedules/{id}/runs and GET /v1/runs/{id}."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from tests.api.support import T0, TestClient, add_run, assert_invalid, put, z


def run_pages(client: TestClient, schedule_id: str, **params: Any) -> list[list[str]]:
    """The run ids of every page, following next_cursor to the end."""
    out: list[list[str]] = []
    cursor = None
    while True:
        query: dict[str, Any] = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(f"/v1/schedules/{schedule_id}/runs", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_runs_are_newest_first_and_paginate_across_ties(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    for minute in range(3):
        add_run(engine, "s1", T0 + timedelta(minutes=minute), run_id=f"r{minute}")
    add_run(engine, "s1", T0 + timedelta(minutes=1), run_id="r1b", attempt=2)

    assert run_pages(client, "s1", limit=2) == [["r2", "r1b"], ["r1", "r0"]]
    assert run_pages(client, "s1", limit=3) == [["r2", "r1b", "r1"], ["r0"]]


def test_runs_filter_by_state_and_time_window(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    put(client, "other")
    states = ["succeeded", "failed", "missed", "succeeded"]
    for minute, state in enumerate(states):
        add_run(engine, "s1", T0 + timedelta(minutes=minute), state, run_id=f"r{minute}")
    add_run(engine, "other", T0, run_id="foreign")

    assert run_pages(client, "s1", state="succeeded", limit=1) == [["r3"], ["r0"]]
    assert run_pages(client, "s1", state=["failed", "missed"]) == [["r2", "r1"]]
    window = {"since": z(T0 + timedelta(minutes=1)), "until": z(T0 + timedelta(minutes=3))}
    assert run_pages(client, "s1", **window) == [["r2", "r1"]]


def test_run_fields(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    run_id = add_run(engine, "s1", T0, "succeeded")

    run = client.get(f"/v1/runs/{run_id}").json()

    assert run["scheduled_for"] == z(T0)
    assert run["trigger"] == "schedule"
    assert run["state"] == "succeeded"
    for key in ("dispatched_at", "started_at", "finished_at", "worker", "result", "error"):
        assert key in run


def test_runs_of_an_unknown_schedule_are_404(client: TestClient) -> None:
    assert client.get("/v1/schedules/nope/runs").status_code == 404


def test_unknown_run_is_404(client: TestClient) -> None:
    assert client.get("/v1/runs/nope").status_code == 404


def test_invalid_run_queries_are_422(client: TestClient) -> None:
    put(client, "s1")
    url = "/v1/schedules/s1/runs"

    assert_invalid(client.get(url, params={"since": "2026-11-21T12:00:00"}), "query", "since")
    assert_invalid(client.get(url, params={"until": "9999-12-31T23:00:00-05:00"}), "until")
    assert_invalid(client.get(url, params={"state": "asleep"}), "query", "state", 0)
    assert_invalid(client.get(url, params={"cursor": "WyJzMSJd"}), "query", "cursor")
    assert_invalid(client.get(url, params={"cursor": "WyJ4IiwieSJd"}), "query", "cursor")
