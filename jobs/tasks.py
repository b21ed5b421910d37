"""The built-in tasks: thin wrappers that read the request and call a plain function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from jobs.headers import dispatch_headers
from jobs.webhook import DEFAULT_TIMEOUT_S, send_webhook
from scheduler.settings import Settings
from scheduler.store.models import HEADER_RUN_ID, HEADER_SCHEDULE_ID, HEADER_SCHEDULED_FOR

ECHO = "sundial.echo"
WEBHOOK = "sundial.webhook"


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register ``sundial.echo`` and ``sundial.webhook`` on ``app``.

    The webhook allow-list is taken from ``settings`` here and closed over, so each app
    carries its own and nothing is read from the environment at run time.
    """
    allowed_hosts = tuple(settings.webhook_allowed_hosts)

    def echo(task: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    def webhook(
        task: Any,
        url: str,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:
        dispatch = dispatch_headers(task.request)
        response = send_webhook(
            url,
            run_id=dispatch.get(HEADER_RUN_ID, ""),
            method=method,
            headers=headers,
            json=json,
            body=body,
            timeout_seconds=timeout_seconds,
            schedule_id=dispatch.get(HEADER_SCHEDULE_ID),
            scheduled_for=dispatch.get(HEADER_SCHEDULED_FOR),
            allowed_hosts=allowed_hosts,
        )
        return response.as_result()

    # Called, not used as decorators: Celery is untyped and mypy strict rejects that.
    app.task(name=ECHO, bind=True)(echo)
    app.task(name=WEBHOOK, bind=True)(webhook)
