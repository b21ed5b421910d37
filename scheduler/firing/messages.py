"""Celery task messages (protocol 2) built directly, for the Redis fast path.

``send_task`` spends most of its time on routing, signals and option merging that a
scheduler publishing plain messages by name does not need. We build the very message
Celery would (same headers, properties and body) and hand it to kombu's Redis transport
format; an unmodified Celery worker consumes it exactly as it would ``send_task``'s — the
dispatch tests prove that with a real worker.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from bisect import bisect
from datetime import UTC
from typing import Any

from scheduler.firing.claim import Dispatch
from scheduler.store.models import HEADER_RUN_ID, HEADER_SCHEDULE_ID, HEADER_SCHEDULED_FOR

# kombu's Redis transport: one list per queue and priority step, named queue + SEP + step.
PRIORITY_STEPS = [0, 3, 6, 9]
PRIORITY_SEP = "\x06\x16"
REPR_MAX = 1024
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def scheduled_for_header(dispatch: Dispatch) -> str:
    """``sundial_scheduled_for`` as RFC 3339 UTC with a ``Z``."""
    return dispatch.scheduled_for.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sundial_headers(dispatch: Dispatch) -> dict[str, str]:
    """The dispatch contract's headers, read by tasks from ``self.request``."""
    return {
        HEADER_SCHEDULE_ID: dispatch.schedule_id,
        HEADER_SCHEDULED_FOR: scheduled_for_header(dispatch),
        HEADER_RUN_ID: dispatch.run_id,
    }


def redis_list_key(queue: str, priority: int | None) -> str:
    """The Redis list kombu's transport reads ``queue`` at ``priority`` from."""
    if not priority:
        return queue
    step = PRIORITY_STEPS[bisect(PRIORITY_STEPS, max(0, min(priority, 9))) - 1]
    return queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}"


class MessageBuilder:
    """Builds kombu Redis envelopes of Celery protocol-2 task messages."""

    def __init__(self) -> None:
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._reply_to = str(uuid.uuid4())

    def task_headers(self, dispatch: Dispatch) -> dict[str, Any]:
        """The headers Celery's ``as_task_v2`` writes, plus ours."""
        return {
            "lang": "py",
            "task": dispatch.task,
            "id": dispatch.run_id,
            "shadow": None,
            "eta": None,
            "expires": None if dispatch.expires_at is None else dispatch.expires_at.isoformat(),
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": dispatch.run_id,
            "parent_id": None,
            "argsrepr": repr(dispatch.args)[:REPR_MAX],
            "kwargsrepr": repr(dispatch.kwargs)[:REPR_MAX],
            "origin": self._origin,
            "ignore_result": False,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            **sundial_headers(dispatch),
        }

    def envelope(self, dispatch: Dispatch) -> str:
        """The JSON string kombu's Redis transport stores for one message."""
        body = json.dumps([dispatch.args, dispatch.kwargs, _EMBED]).encode()
        return json.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": self.task_headers(dispatch),
                "properties": {
                    "correlation_id": dispatch.run_id,
                    "reply_to": self._reply_to,
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": "", "routing_key": dispatch.queue},
                    "priority": dispatch.priority or 0,
                    "body_encoding": "base64",
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )
