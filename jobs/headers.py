"""Reading the sundial dispatch headers from a Celery task request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.models import HEADER_RUN_ID as RUN_ID
from scheduler.models import HEADER_SCHEDULE_ID as SCHEDULE_ID
from scheduler.models import HEADER_SCHEDULED_FOR as SCHEDULED_FOR

DISPATCH_HEADERS = (SCHEDULE_ID, SCHEDULED_FOR, RUN_ID)


def dispatch_headers(request: Any) -> dict[str, str]:
    """The ``sundial_*`` headers of a task request (``self.request`` in a bound task).

    Celery (protocol 2) merges extra message headers into the request, so each one is
    both an attribute (``request.sundial_run_id``) and an entry of ``request.headers``,
    the dict of headers Celery does not know. Both are checked so the helper also works
    on hand-built contexts. The run id falls back to the task id, which it equals.
    Headers that are absent (a message not sent by sundial) are left out.
    """
    custom = getattr(request, "headers", None)
    found: dict[str, str] = {}
    for name in DISPATCH_HEADERS:
        value = custom.get(name) if isinstance(custom, Mapping) else None
        if value is None:
            value = getattr(request, name, None)
        if value is not None:
            found[name] = str(value)
    task_id = getattr(request, "id", None)
    if RUN_ID not in found and task_id is not None:
        found[RUN_ID] = str(task_id)
    return found
