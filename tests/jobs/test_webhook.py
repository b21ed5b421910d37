"""``send_webhook`` as a plain function: pinning, headers, failures. No outbound traffic."""

from __future__ import annotations

import json

import httpx
import pytest

from jobs.errors import WebhookFailed, WebhookInvalid, WebhookRefused
from jobs.webhook import MAX_BODY_EXCERPT_BYTES, send_webhook
from tests.jobs.test_ssrf import fake_dns


def recording_transport(
    status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers=headers)

    return httpx.MockTransport(handle), seen


def test_request_goes_to_the_vetted_address_resolved_once(monkeypatch):
    answers = {"hooks.example.com": ["93.184.216.34"]}
    asked = fake_dns(monkeypatch, answers)
    transport, seen = recording_transport()

    def rebind(request: httpx.Request) -> httpx.Response:
        # A rebinding DNS server answers a second lookup with an internal address.
        answers["hooks.example.com"] = ["127.0.0.1"]
        return transport.handle_request(request)

    send_webhook(
        "https://hooks.example.com/in?sig=1", run_id="r1", transport=httpx.MockTransport(rebind)
    )

    assert asked == ["hooks.example.com"]
    [request] = seen
    assert request.url.host == "93.184.216.34"
    assert request.url.path == "/in"
    assert request.url.query == b"sig=1"
    assert request.headers["Host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_sundial_headers_and_json_body_are_sent(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    transport, seen = recording_transport(status=201, body=b"created")

    response = send_webhook(
        "http://hooks.example.com:8080/in",
        run_id="run-1",
        schedule_id="nightly",
        scheduled_for="2026-11-22T02:00:00Z",
        headers={"X-Custom": "yes", "idempotency-key": "forged", "Host": "other.example"},
        json={"a": 1},
        transport=transport,
    )

    assert response.as_result() == {"status": 201, "body": "created"}
    [request] = seen
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "run-1"
    assert request.headers["X-Sundial-Schedule-Id"] == "nightly"
    assert request.headers["X-Sundial-Scheduled-For"] == "2026-11-22T02:00:00Z"
    assert request.headers["X-Custom"] == "yes"
    assert request.headers.get_list("Idempotency-Key") == ["run-1"]
    assert request.headers["Host"] == "hooks.example.com:8080"
    assert "sni_hostname" not in request.extensions
    assert json.loads(request.content) == {"a": 1}


def test_text_body_and_method_are_sent(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    transport, seen = recording_transport()
    send_webhook(
        "http://hooks.example.com/",
        run_id="r",
        method="put",
        body="plain text",
        transport=transport,
    )
    assert seen[0].method == "PUT"
    assert seen[0].content == b"plain text"


def test_non_2xx_fails_with_status_and_start_of_body(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    transport, _ = recording_transport(status=503, body=b"down for maintenance" + b"x" * 10_000)
    with pytest.raises(WebhookFailed) as failure:
        send_webhook("http://hooks.example.com/p?token=secret", run_id="r", transport=transport)
    message = str(failure.value)
    assert "503" in message
    assert "down for maintenance" in message
    assert "secret" not in message
    assert failure.value.status == 503
    assert len(failure.value.body) == MAX_BODY_EXCERPT_BYTES


def test_redirect_is_not_followed(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    transport, seen = recording_transport(
        status=302, body=b"", headers={"Location": "http://169.254.169.254/"}
    )
    with pytest.raises(WebhookFailed, match="302 \\(redirects are not followed\\)"):
        send_webhook("http://hooks.example.com/", run_id="r", transport=transport)
    assert len(seen) == 1


def test_refused_target_sends_nothing(monkeypatch):
    fake_dns(monkeypatch, {"internal.example.com": ["10.0.0.1"]})
    transport, seen = recording_transport()
    with pytest.raises(WebhookRefused):
        send_webhook("http://internal.example.com/", run_id="r", transport=transport)
    assert seen == []


def test_connect_error_tries_the_next_vetted_address(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["2606:2800:220:1::1", "93.184.216.34"]})
    hosts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if ":" in request.url.host:
            raise httpx.ConnectError("network unreachable", request=request)
        return httpx.Response(204)

    send_webhook("http://hooks.example.com/", run_id="r", transport=httpx.MockTransport(handle))
    assert hosts == ["2606:2800:220:1::1", "93.184.216.34"]


def test_transport_error_fails_the_webhook(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(WebhookFailed, match="ReadTimeout"):
        send_webhook("http://hooks.example.com/", run_id="r", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"a": 1}, "body": "b"},
        {"method": "TRACE"},
        {"method": 5},
        {"timeout_seconds": 0},
        {"timeout_seconds": -1},
        {"timeout_seconds": "10"},
        {"timeout_seconds": True},
        {"headers": {"X-Number": 5}},
        {"headers": ["not", "a", "mapping"]},
        {"body": b"bytes"},
    ],
)
def test_invalid_arguments_are_rejected_before_any_lookup(monkeypatch, kwargs):
    asked = fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    transport, seen = recording_transport()
    with pytest.raises(WebhookInvalid):
        send_webhook("http://hooks.example.com/", run_id="r", transport=transport, **kwargs)
    assert seen == []
    assert asked == []


def test_allow_listed_name_is_pinned_to_its_address_over_a_real_socket(monkeypatch, http_receiver):
    receiver = http_receiver(status=200, body=b"thanks")
    fake_dns(monkeypatch, {"hook.test": ["127.0.0.1"]})

    response = send_webhook(
        f"http://hook.test:{receiver.port}/in",
        run_id="r9",
        json={"x": 1},
        allowed_hosts=["hook.test"],
    )

    assert response.status == 200
    assert response.body == "thanks"
    [received] = receiver.requests
    assert received.headers["Host"] == f"hook.test:{receiver.port}"
    assert received.headers["Idempotency-Key"] == "r9"
    assert json.loads(received.body) == {"x": 1}
