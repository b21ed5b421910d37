"""Reading the sundial dispatch headers from a Celery task request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.store.models import HEADER_RUN_ID as RUN_ID
from scheduler.store.models import HEADER_SCHEDULE_ID as SCHEDULE_ID
from scheduler.store.models import HEADER_SCHEDULED_FOR as SCHEDULED_FOR

DISPATCH_HEADERS = (SCHEDULE_ID, SCHEDULED_FOR, RUN_ID)


def dispatch_headers(request: Any) -> dict[str, str]:
    """The ``sundial_*`` headers of a task request (``self.request`` in a bound task).

    Celery (protocol 2) merges extra message headers into the request, so each one is
    both an attribute (``request.sundial_run_id``) and an entry of ``request.headers``,
    the dict of headers Celery does not know. Both are checked so the helper also works
    on hand-built contexts. The run id falls back to the task id, which it equals.
    Headers that are absent (a message not sent by sundial) are left out.
    """
    found = {
        name: value for name in DISPATCH_HEADERS if (value := header(request, name)) is not None
    }
    task_id = getattr(request, "id", None)
    if RUN_ID not in found and task_id is not None:
        found[RUN_ID] = str(task_id)
    return found


def header(request: Any, name: str) -> str | None:
    """One ``sundial_*`` header of a task request, or None when the message lacks it."""
    custom = getattr(request, "headers", None)
    value = custom.get(name) if isinstance(custom, Mapping) else None
    if value is None:
        value = getattr(request, name, None)
    return None if value is None else str(value)
