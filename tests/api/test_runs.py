"""Run history: GET /v1/schedules/{id}/runs and GET /v1/runs/{id}."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update

from scheduler.store.models import runs
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


def test_runs_filter_by_trigger(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    triggers = ["schedule", "manual", "backfill", "schedule", "backfill"]
    for minute, trigger in enumerate(triggers):
        add_run(engine, "s1", T0 + timedelta(minutes=minute), run_id=f"r{minute}", trigger=trigger)
    add_run(engine, "s1", T0 + timedelta(minutes=3), run_id="r3b", attempt=2)

    assert run_pages(client, "s1", trigger="backfill") == [["r4", "r2"]]
    assert run_pages(client, "s1", trigger=["manual", "retry"]) == [["r3b", "r1"]]
    assert run_pages(client, "s1", trigger="schedule", limit=1) == [["r3"], ["r0"]]


def test_run_filters_combine(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    rows = [("backfill", "succeeded"), ("backfill", "failed"), ("schedule", "failed")]
    rows += [("backfill", "failed"), ("backfill", "failed")]
    for minute, (trigger, state) in enumerate(rows):
        add_run(engine, "s1", T0 + timedelta(minutes=minute), state, f"r{minute}", trigger=trigger)

    params = {"trigger": "backfill", "state": "failed", "until": z(T0 + timedelta(minutes=4))}

    assert run_pages(client, "s1", **params) == [["r3", "r1"]]
    assert run_pages(client, "s1", since=z(T0 + timedelta(minutes=3)), **params) == [["r3"]]


def test_a_run_shows_why_and_until_when_it_waits(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    run_id = add_run(engine, "s1", T0, "pending", attempt=2)
    due = T0 + timedelta(seconds=40)
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(reason="attempt 2 of 3, after 40s backoff", due_at=due)
        )

    run = client.get(f"/v1/runs/{run_id}").json()

    assert (run["trigger"], run["attempt"]) == ("retry", 2)
    assert run["reason"] == "attempt 2 of 3, after 40s backoff"
    assert run["due_at"] == z(due)


def test_run_fields(client: TestClient, engine: Engine) -> None:
    put(client, "s1")
    run_id = add_run(engine, "s1", T0, "succeeded")

    run = client.get(f"/v1/runs/{run_id}").json()

    assert run["scheduled_for"] == z(T0)
    assert run["trigger"] == "schedule"
    assert run["state"] == "succeeded"
    keys = ("dispatched_at", "started_at", "finished_at", "worker", "result", "error", "reason")
    for key in (*keys, "due_at"):
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
    assert_invalid(client.get(url, params={"until": "2026-11-21T12:00:00"}), "query", "until")
    assert_invalid(client.get(url, params={"state": "asleep"}), "query", "state", 0)
    assert_invalid(client.get(url, params={"trigger": "cron"}), "query", "trigger", 0)
    assert_invalid(client.get(url, params={"cursor": "WyJzMSJd"}), "query", "cursor")
    assert_invalid(client.get(url, params={"cursor": "WyJ4IiwieSJd"}), "query", "cursor")
