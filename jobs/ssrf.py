"""The SSRF guard of ``sundial.webhook``: :mod:`scheduler.ssrf`'s vetting, whose refusals
become the task's own errors (a refused or invalid target fails the run at once)."""

from __future__ import annotations

from collections.abc import Sequence

from jobs.errors import WebhookFailed, WebhookInvalid, WebhookRefused
from scheduler import ssrf
from scheduler.ssrf import Target, address_refusal, host_allowed

__all__ = ["Target", "address_refusal", "host_allowed", "vet_target"]


def vet_target(url: str, allowed_hosts: Sequence[str]) -> Target:
    """Parse, resolve and vet a webhook URL; raise :class:`WebhookRefused` if not allowed."""
    try:
        return ssrf.vet_target(url, allowed_hosts)
    except ssrf.TargetInvalid as exc:
        raise WebhookInvalid(str(exc)) from exc
    except ssrf.TargetRefused as exc:
        raise WebhookRefused(str(exc)) from exc
    except ssrf.TargetUnresolvable as exc:
        raise WebhookFailed(str(exc)) from exc
