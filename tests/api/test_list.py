"""GET /v1/schedules: filters and cursor pagination."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import TestClient, assert_invalid, put


def pages(client: TestClient, **params: Any) -> list[list[str]]:
    """The ids of every page, following next_cursor to the end."""
    out: list[list[str]] = []
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get("/v1/schedules", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_pages_cover_every_schedule_once_in_id_order(client: TestClient) -> None:
    for n in range(7):
        put(client, f"s{n}")

    result = pages(client, limit=3)

    assert result == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]


def test_an_exact_last_page_has_no_next_cursor(client: TestClient) -> None:
    for n in range(4):
        put(client, f"s{n}")

    assert pages(client, limit=2) == [["s0", "s1"], ["s2", "s3"]]


def test_filters_apply_across_pages(client: TestClient) -> None:
    for n in range(6):
        put(
            client,
            f"s{n}",
            task="a.task" if n % 2 == 0 else "b.task",
            labels={"team": "billing" if n < 4 else "ops", "env": "prod"},
            paused=n == 2,
        )

    assert pages(client, task="a.task", limit=1) == [["s0"], ["s2"], ["s4"]]
    assert pages(client, label="team:billing", limit=2) == [["s0", "s1"], ["s2", "s3"]]
    assert pages(client, state="paused") == [["s2"]]
    assert pages(client, state="active", task="a.task", label="team:billing") == [["s0"]]


def test_several_labels_must_all_match(client: TestClient) -> None:
    put(client, "s1", labels={"team": "billing", "env": "prod"})
    put(client, "s2", labels={"team": "billing", "env": "dev"})

    response = client.get("/v1/schedules", params=[("label", "team:billing"), ("label", "env:dev")])

    assert [item["id"] for item in response.json()["items"]] == ["s2"]


def test_a_label_value_may_contain_colons(client: TestClient) -> None:
    put(client, "s1", labels={"url": "http://x"})

    assert pages(client, label="url:http://x") == [["s1"]]


def test_empty_list(client: TestClient) -> None:
    assert client.get("/v1/schedules").json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),
        ({"label": "no-colon"}, "label"),
        ({"label": "bad key:x"}, "label"),
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"state": "sleeping"}, "state"),
    ],
)
def test_invalid_query_is_422_naming_it(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    assert_invalid(client.get("/v1/schedules", params=params), "query", field)
