"""Alert delivery: a JSON POST with a Slack-compatible ``text``, HMAC-signed, to the
configured URL, through the same SSRF guard as ``sundial.webhook``.

The signature is ``X-Sundial-Signature: sha256=<hex>``, the HMAC-SHA256 with the secret of
``<X-Sundial-Timestamp>.<body>``: a receiver recomputes it and rejects old timestamps, so a
captured request cannot be replayed later. The host is resolved once and the vetted address
is connected to directly (the name still goes in ``Host`` and TLS SNI).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from scheduler import ssrf
from scheduler.errors import SundialError

TIMEOUT_S = 10.0


class DeliveryFailed(SundialError):
    """The alert was not delivered; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def payload(alert: Mapping[str, Any], event: str) -> dict[str, Any]:
    """The JSON document sent for ``event`` (``raised`` or ``resolved``) of ``alert``."""
    if event == "resolved":
        text = f"✅ sundial: resolved ({alert['kind']}) — {alert['message']}"
        if alert.get("resolution"):
            text += f" — {alert['resolution']}"
    else:
        text = f"🚨 sundial alert ({alert['kind']}) — {alert['message']}"
    fields = ("id", "schedule_id", "kind", "scheduled_for", "run_id", "message", "raised_at")
    body = {name: alert.get(name) for name in (*fields, "resolved_at", "resolution")}
    return {"text": text, "event": event, "alert": body}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Sundial-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class AlertWebhook:
    """Posts alert events to one URL."""

    def __init__(
        self,
        url: str,
        secret: SecretStr | None,
        allowed_hosts: Sequence[str] = (),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._allowed = list(allowed_hosts)
        self._transport = transport

    def send(self, alert: Mapping[str, Any], event: str, now: datetime) -> None:
        """Deliver one event; :class:`DeliveryFailed` unless the receiver answered 2xx."""
        body = json.dumps(payload(alert, event), default=_iso, separators=(",", ":")).encode()
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sundial-alerts",
            "X-Sundial-Event": event,
            "X-Sundial-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-Sundial-Signature"] = sign(self._secret.get_secret_value(), timestamp, body)
        try:
            target = ssrf.vet_target(self._url, self._allowed)
        except ssrf.TargetUnresolvable as exc:
            raise DeliveryFailed(str(exc), retry=True) from exc
        except ssrf.TargetError as exc:
            raise DeliveryFailed(str(exc), retry=False) from exc
        headers["Host"] = target.url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        last: Exception | None = None
        with httpx.Client(
            timeout=TIMEOUT_S, follow_redirects=False, trust_env=False, transport=self._transport
        ) as client:
            for address in target.addresses:
                request = client.build_request(
                    "POST",
                    target.url.copy_with(host=address),
                    headers=headers,
                    content=body,
                    extensions=extensions,
                )
                try:
                    response = client.send(request)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    last = exc  # nothing was sent: the next vetted address may answer
                    continue
                except httpx.HTTPError as exc:
                    raise DeliveryFailed(f"{type(exc).__name__}: {exc}", retry=True) from exc
                if not 200 <= response.status_code < 300:
                    raise DeliveryFailed(
                        f"answered {response.status_code}: {response.text[:200]}", retry=True
                    )
                return
        raise DeliveryFailed(f"{type(last).__name__}: {last}", retry=True)
