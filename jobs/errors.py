"""Exceptions raised by the built-in tasks; a raised one fails the run with its message."""

from __future__ import annotations


class WebhookError(Exception):
    """Base class of every webhook failure.

    Subclasses keep a single positional message so Celery's JSON result serializer can
    rebuild them on the client (it calls ``cls(*exc.args)``).
    """


class WebhookInvalid(WebhookError):
    """The task was called with arguments that do not describe a request."""


class WebhookRefused(WebhookError):
    """The target is not allowed: bad scheme, unresolvable, or a non-public address."""


class WebhookFailed(WebhookError):
    """The request was sent but did not succeed: transport error or a non-2xx answer."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
