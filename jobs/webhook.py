"""``send_webhook``: one HTTP call on behalf of a run, with an SSRF guard.

DNS rebinding: the host is resolved exactly once, in :func:`jobs.ssrf.vet_target`, and
the request is sent to the vetted IP address itself (the URL's host is replaced by it).
The original name still travels as the ``Host`` header and, for HTTPS, as the TLS SNI
name that the certificate is verified against, so virtual hosts and TLS work unchanged.
Redirects are not followed (a 3xx answer fails the run), and proxy settings from the
environment are ignored, so nothing but the vetted address is ever contacted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from jobs.errors import WebhookFailed, WebhookInvalid
from jobs.ssrf import Target, vet_target

DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 3600.0
MAX_BODY_EXCERPT_BYTES = 2048
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Headers sundial sets itself; a caller's value for them is dropped, not merged.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "idempotency-key",
        "x-sundial-schedule-id",
        "x-sundial-scheduled-for",
    }
)


@dataclass(frozen=True)
class WebhookResponse:
    """A 2xx answer: its status and the start of its body."""

    status: int
    body: str

    def as_result(self) -> dict[str, Any]:
        """JSON-ready task result."""
        return {"status": self.status, "body": self.body}


def send_webhook(
    url: str,
    *,
    run_id: str,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    body: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_S,
    schedule_id: str | None = None,
    scheduled_for: str | None = None,
    allowed_hosts: Sequence[str] = (),
    transport: httpx.BaseTransport | None = None,
) -> WebhookResponse:
    """Send one webhook request and return its 2xx answer.

    ``json`` (any JSON value but null) or ``body`` (text) is the payload, not both. The
    request carries ``Idempotency-Key: run_id`` and, when known, ``X-Sundial-Schedule-Id``
    and ``X-Sundial-Scheduled-For``. Raises :class:`~jobs.errors.WebhookInvalid` for bad
    arguments, :class:`~jobs.errors.WebhookRefused` for a target that is not allowed
    (nothing is sent), and :class:`~jobs.errors.WebhookFailed` for transport errors and
    non-2xx answers (with the status and the start of the body in its message).
    ``transport`` replaces the network in tests.
    """
    method = _check_method(method)
    timeout = _timeout(timeout_seconds)
    if json is not None and body is not None:
        raise WebhookInvalid("webhook takes json or body, not both")
    if body is not None and not isinstance(body, str):
        raise WebhookInvalid("webhook body must be a string")
    request_headers = _user_headers(headers)
    target = vet_target(url, allowed_hosts)
    # The URL will name the vetted IP; the server must still see the name it was given.
    request_headers["Host"] = target.url.netloc.decode("ascii")
    request_headers["Idempotency-Key"] = run_id
    if schedule_id is not None:
        request_headers["X-Sundial-Schedule-Id"] = schedule_id
    if scheduled_for is not None:
        request_headers["X-Sundial-Scheduled-For"] = scheduled_for
    deadline = time.monotonic() + timeout_seconds
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
    ) as client:
        response_status, excerpt = _send(
            client, target, method, request_headers, json, body, deadline
        )
    if not 200 <= response_status < 300:
        note = " (redirects are not followed)" if 300 <= response_status < 400 else ""
        raise WebhookFailed(
            f"webhook {method} {_display(target.url)} answered {response_status}{note}: {excerpt}",
            status=response_status,
            body=excerpt,
        )
    return WebhookResponse(status=response_status, body=excerpt)


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise WebhookInvalid(f"webhook method must be one of {sorted(METHODS)}, not {method!r}")
    return method.upper()


def _timeout(seconds: object) -> httpx.Timeout:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_TIMEOUT_S
    ):
        raise WebhookInvalid(f"webhook timeout_seconds must be in (0, {MAX_TIMEOUT_S:g}]")
    return httpx.Timeout(float(seconds), connect=min(float(seconds), CONNECT_TIMEOUT_S))


def _user_headers(given: Mapping[str, str] | None) -> dict[str, str]:
    if given is not None and not isinstance(given, Mapping):
        raise WebhookInvalid("webhook headers must be an object of strings")
    out: dict[str, str] = {}
    for name, value in (given or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise WebhookInvalid("webhook headers must be an object of strings")
        if name.lower() not in RESERVED_HEADERS:
            out[name] = value
    return out


def _send(
    client: httpx.Client,
    target: Target,
    method: str,
    headers: dict[str, str],
    json: Any,
    body: str | None,
    deadline: float,
) -> tuple[int, str]:
    extensions: dict[str, Any] = {}
    if target.url.scheme == "https":
        extensions["sni_hostname"] = target.host
    last_error: httpx.HTTPError | None = None
    for address in target.addresses:
        request = client.build_request(
            method,
            target.url.copy_with(host=address),
            headers=headers,
            json=json,
            content=body.encode() if body is not None else None,
            extensions=extensions,
        )
        try:
            response = client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent, so trying the next vetted address cannot double a delivery.
            last_error = exc
            continue
        except httpx.HTTPError as exc:
            raise WebhookFailed(_transport_error(method, target, exc)) from exc
        try:
            return response.status_code, _excerpt(response, deadline)
        except httpx.HTTPError as exc:
            raise WebhookFailed(_transport_error(method, target, exc)) from exc
        finally:
            response.close()
    assert last_error is not None  # vet_target never returns an empty address list
    raise WebhookFailed(_transport_error(method, target, last_error)) from last_error


def _excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the body: at most ``MAX_BODY_EXCERPT_BYTES``, read until ``deadline``."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        # A server dripping bytes must not hold the worker past the caller's timeout.
        if len(data) >= MAX_BODY_EXCERPT_BYTES or time.monotonic() > deadline:
            break
    return bytes(data[:MAX_BODY_EXCERPT_BYTES]).decode("utf-8", errors="replace")


def _transport_error(method: str, target: Target, exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    return f"webhook {method} {_display(target.url)} failed: {kind}: {exc}"


def _display(url: httpx.URL) -> str:
    """The URL without credentials, query or fragment, which may hold secrets."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
