"""Input Python's json module accepts but the JSON standard (or the store) does not: refused
with a 422 naming where, before anything is stored; what is accepted round-trips exactly."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, update

from api import strict_json
from scheduler.store.models import runs
from tests.api.support import (
    T0,
    TestClient,
    add_run,
    count_schedules,
    put,
    schedule_body,
)

JSON = {"content-type": "application/json"}


def _body(**raw_fields: str) -> bytes:
    """A valid create body with ``raw_fields`` spliced in as raw JSON text."""
    fields = "".join(f', "{name}": {raw}' for name, raw in raw_fields.items())
    text = '{"task": "reports.generate", "trigger": {"type": "interval", "seconds": 60}'
    return f"{text}{fields}}}".encode("utf-8", "surrogatepass")


# (name, body, loc of the error, a fragment of its message). Each was accepted or answered
# with a 500 before the strict reader: the comment says what it did.
BAD_BODIES: list[tuple[str, bytes, list[Any], str]] = [
    # stored as null on SQLite (a changed value), 500 on PostgreSQL
    ("NaN", _body(kwargs='{"ratio": NaN}'), ["body", "kwargs", "ratio"], "NaN"),
    ("Infinity", _body(args="[Infinity]"), ["body", "args", 0], "Infinity"),
    ("-Infinity", _body(args="[1, -Infinity]"), ["body", "args", 1], "-Infinity"),
    ("overflow to inf", _body(args="[1e400]"), ["body", "args", 0], "64-bit float"),
    # 500 on both stores
    ("NaN in a float field", _body(jitter_seconds="NaN"), ["body", "jitter_seconds"], "NaN"),
    ("inf in a float field", _body(expires_seconds="1e999"), ["body", "expires_seconds"], "range"),
    # stored as 0.0
    ("underflow to zero", _body(args="[1e-400]"), ["body", "args", 0], "too small"),
    # bare 400 with no location (Python's 4300-digit limit)
    ("5000-digit integer", _body(args=f"[{'9' * 5000}]"), ["body", "args", 0], "64 bits"),
    # stored: more than most JSON readers (and other workers' languages) can hold
    ("integer beyond 64 bits", _body(args=f"[{2**64}]"), ["body", "args", 0], "64 bits"),
    ("integer below 64 bits", _body(args=f"[{-(2**63) - 1}]"), ["body", "args", 0], "64 bits"),
    # silently last-wins: stored with "second", not what the client meant
    (
        "repeated key",
        b'{"task": "first", "task": "second", "trigger": {"type": "interval", "seconds": 60}}',
        ["body", "task"],
        "more than once",
    ),
    ("repeated nested key", _body(kwargs='{"a": 1, "a": 2}'), ["body", "kwargs", "a"], "once"),
    # 500 (a response or the driver cannot encode it)
    ("lone surrogate", _body(kwargs='{"a": "\\ud800"}'), ["body", "kwargs", "a"], "surrogate"),
    ("lone low surrogate", _body(description='"x\\udc00"'), ["body", "description"], "surrogate"),
    # stored, then served as bytes that are not UTF-8
    ("lone surrogate key", _body(kwargs='{"\\udc00": 1}'), ["body", "kwargs", "\\udc00"], "key"),
    # 500 on PostgreSQL (text cannot hold NUL); on SQLite stored and poisoning label filters
    ("NUL in text", _body(description='"a\\u0000b"'), ["body", "description"], "NUL"),
    ("NUL in a label", _body(labels='{"team": "\\u0000"}'), ["body", "labels", "team"], "NUL"),
    # bare 400 with no location
    (
        "invalid UTF-8",
        _body(description='"caf\xe9"').replace(b"\xc3\xa9", b"\xe9"),
        ["body"],
        "UTF-8",
    ),
    ("UTF-8-encoded surrogate", _body(description='"\ud800"'), ["body"], "UTF-8"),
    (
        "nesting deeper than the stack",
        _body(args="[" * 100_000 + "]" * 100_000),
        ["body"],
        "deeper",
    ),
    # accepted: Python's parser skips a byte-order mark the standard forbids
    ("byte-order mark", b"\xef\xbb\xbf" + _body(), ["body"], "byte-order mark"),
    ("nesting deeper than 64", _body(args="[" * 70 + "]" * 70), ["body", "args", *[0] * 63], "64"),
    ("syntax error", _body()[:-1], ["body"], "invalid JSON"),
]


@pytest.mark.parametrize(
    ("name", "body", "loc", "message"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_non_standard_body_is_refused_naming_where_and_nothing_is_stored(
    client: TestClient, engine: Engine, name: str, body: bytes, loc: list[Any], message: str
) -> None:
    response = client.post("/v1/schedules", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors
    assert count_schedules(engine) == 0


# Standard JSON of the wrong type, which pydantic's lax mode used to coerce and store as a
# value the client never sent.
COERCED: list[tuple[str, bytes, list[Any]]] = [
    ("string for a number", _body(jitter_seconds='"5"'), ["body", "jitter_seconds"]),
    ("true for a number", _body(priority="true"), ["body", "priority"]),
    ("1.0 for an integer", _body(priority="1.0"), ["body", "priority"]),
    ("1 for a boolean", _body(coalesce="1"), ["body", "coalesce"]),
    ('"yes" for a boolean', _body(paused='"yes"'), ["body", "paused"]),
    ("number for a time", _body(start_at="1700000000"), ["body", "start_at"]),
    (
        "false in the retry policy",
        _body(retry='{"max_attempts": 2, "backoff_seconds": false}'),
        ["body", "retry", "backoff_seconds"],
    ),
    (
        "string seconds in a trigger",
        b'{"task": "t", "trigger": {"type": "interval", "seconds": "60"}}',
        ["body", "trigger", "interval", "seconds"],
    ),
    (
        "number for a trigger time",
        b'{"task": "t", "trigger": {"type": "date", "run_at": 1700000000}}',
        ["body", "trigger", "date", "run_at"],
    ),
]


@pytest.mark.parametrize(("name", "body", "loc"), COERCED, ids=[c[0] for c in COERCED])
def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(
    client: TestClient, engine: Engine, name: str, body: bytes, loc: list[Any]
) -> None:
    response = client.post("/v1/schedules", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert count_schedules(engine) == 0


def test_times_and_policies_are_still_read_from_their_strings(client: TestClient) -> None:
    body = _body(start_at='"2026-11-21T13:00:00+01:00"', overlap='"skip"', priority="7")

    response = client.post("/v1/schedules", content=body, headers=JSON)

    assert response.status_code == 201, response.text
    assert response.json()["start_at"] == "2026-11-21T12:00:00Z"
    assert response.json()["overlap"] == "skip"
    assert response.json()["priority"] == 7


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/schedules/nightly", _body(args="[NaN]")),
        ("PATCH", "/v1/schedules/nightly", b'{"args": [NaN]}'),
        (
            "POST",
            "/v1/schedules/nightly/backfill",
            b'{"start": NaN, "end": "2026-11-20T00:00:00Z"}',
        ),
        ("POST", "/v1/triggers/preview", b'{"trigger": {"type": "interval", "seconds": NaN}}'),
    ],
)
def test_every_route_with_a_body_reads_it_strictly(
    client: TestClient, method: str, path: str, body: bytes
) -> None:
    before = put(client, "nightly")

    response = client.request(method, path, content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert "NaN" in response.json()["detail"][0]["msg"]
    assert client.get("/v1/schedules/nightly").json() == before


def test_several_offences_are_all_named_in_document_order(client: TestClient) -> None:
    body = _body(args="[NaN, 1e400]", kwargs='{"a": "\\u0000"}')

    response = client.post("/v1/schedules", content=body, headers=JSON)

    locs = [e["loc"] for e in response.json()["detail"]]
    assert locs == [["body", "args", 0], ["body", "args", 1], ["body", "kwargs", "a"]]


def test_a_body_with_countless_offences_gets_a_bounded_answer(client: TestClient) -> None:
    response = client.post(
        "/v1/schedules", content=_body(args=f"[{'NaN,' * 10_000}1]"), headers=JSON
    )

    assert response.status_code == 422
    assert len(response.json()["detail"]) == strict_json.MAX_ERRORS


EDGE_VALUES: list[Any] = [
    2**63 - 1,
    -(2**63),
    1e308,
    -1e308,
    5e-324,
    -0.0,
    0.1,
    1.5e-300,
    "é😀",
    "\u2028\u2029\t\n",
    "",
    None,
    True,
    False,
    [],
    {},
    {"nested": {"deep": [[[[1]]]]}},
]


def _canonical(value: Any) -> str:
    # Type-strict: 1 and 1.0 and True differ, -0.0 and 0.0 differ.
    return json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=True)


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "raw-utf8"])
def test_the_edges_of_standard_json_round_trip_exactly(
    client: TestClient, ensure_ascii: bool
) -> None:
    deepest = 64 - 2  # the body is level 1, args level 2
    nested: Any = []
    for _ in range(deepest - 1):
        nested = [nested]
    sent = schedule_body(args=[*EDGE_VALUES, nested], kwargs={"k": EDGE_VALUES, "☃": "x"})
    body = json.dumps(sent, ensure_ascii=ensure_ascii).encode()

    response = client.post("/v1/schedules", content=body, headers=JSON)

    assert response.status_code == 201, response.text
    stored = client.get(response.headers["Location"]).json()
    assert _canonical(stored["args"]) == _canonical(sent["args"])
    assert _canonical(stored["kwargs"]) == _canonical(sent["kwargs"])


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_a_body_that_is_not_json_is_415(
    client: TestClient, engine: Engine, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = client.post("/v1/schedules", content=_body(), headers=headers)

    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    assert count_schedules(engine) == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    schedule = put(client, "nightly")

    response = client.patch(
        "/v1/schedules/nightly",
        content=b'{"description": "x"}',
        headers={"content-type": content_type},
    )

    assert response.status_code == 200, response.text
    assert response.json()["version"] == schedule["version"] + 1


@pytest.mark.parametrize(
    ("url", "loc"),
    [
        ("/v1/schedules?task=a%00b", ["query", "task"]),
        ("/v1/schedules?label=team:%00", ["query", "label"]),
        ("/v1/runs/run%00", ["path", "run_id"]),
        ("/v1/schedules/a%00/runs", ["path", "schedule_id"]),
    ],
)
def test_nul_in_a_path_or_query_is_422_not_a_driver_error(
    client: TestClient, url: str, loc: list[str]
) -> None:
    response = client.get(url)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_a_worker_result_that_is_not_unicode_is_still_served_as_utf8(
    client: TestClient, engine: Engine
) -> None:
    put(client, "nightly")
    run_id = add_run(engine, "nightly", T0)
    with engine.begin() as conn:
        conn.execute(update(runs).values(result={"text": "a\ud800b", "\udc00": [1]}))

    response = client.get(f"/v1/runs/{run_id}")

    assert response.status_code == 200
    assert response.json()["result"] == {"text": "a\\ud800b", "\\udc00": [1]}


def test_every_operation_reads_its_input_strictly(client: TestClient) -> None:
    put(client, "nightly")
    operations = [
        (method.upper(), path.replace("{schedule_id}", "nightly").replace("{run_id}", "r"), op)
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method, op in item.items()
    ]
    assert len(operations) >= 15
    for method, path, operation in operations:
        response = client.request(method, f"{path}?probe=%00")
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "probe"]
        if "requestBody" in operation:
            response = client.request(method, path, content=b'{"a": NaN}', headers=JSON)
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", "a"]


def test_depth_is_counted_from_the_document_root() -> None:
    def nested(levels: int) -> bytes:
        return b"[" * levels + b"]" * levels

    assert strict_json.loads(nested(strict_json.MAX_DEPTH)) is not None
    with pytest.raises(strict_json.StrictJsonError, match="deeper"):
        strict_json.loads(nested(strict_json.MAX_DEPTH + 1))


def test_valid_surrogate_pairs_and_zero_forms_are_standard() -> None:
    assert strict_json.loads(b'["\\ud83d\\ude00", 0, -0, 0.0, 0e10, -0.0e-5]') == [
        "😀",
        0,
        0,
        0.0,
        0.0,
        -0.0,
    ]


_FRAGMENTS = st.recursive(
    st.sampled_from(
        [
            "1",
            "-0",
            "2.5",
            "true",
            "null",
            '"x"',
            '"\\u00e9"',
            '"\\\\u0000"',
            # offences: each must be found whether or not the quick look runs
            "NaN",
            "1e400",
            "1e-400",
            "99999999999999999999",
            '"\\u0000"',
            '"\\ud800"',
            '{"a": 1, "a": 2}',
            '{"\\u0000": 1}',
            "[" * 64 + "]" * 64,
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda xs: f"[{', '.join(xs)}]")
        | st.lists(inner, max_size=4).map(
            lambda xs: "{" + ", ".join(f'"k{i}": {x}' for i, x in enumerate(xs)) + "}"
        )
    ),
    max_leaves=12,
)


def _outcome(body: bytes) -> object:
    try:
        return strict_json.loads(body)
    except strict_json.StrictJsonError as exc:
        return exc.problems


@settings(max_examples=300, deadline=None)
@given(_FRAGMENTS)
def test_the_quick_look_never_changes_the_answer(text: str) -> None:
    """A body the quick first look passes is one the exact walk accepts too."""
    body = text.encode()
    with patch.object(strict_json, "_plainly_clean", return_value=False):
        exact = _outcome(body)
    assert _outcome(body) == exact


def test_a_plain_batch_passes_the_quick_look() -> None:
    entry = {"task": "t", "kwargs": {"n": 1, "s": "é"}, "trigger": {"type": "delay", "seconds": 5}}
    text = json.dumps({"schedules": [entry] * 3}, ensure_ascii=False)
    assert strict_json._plainly_clean(json.loads(text), text)
    assert not strict_json._plainly_clean(json.loads(text), text.replace("é", "\\u0000"))
