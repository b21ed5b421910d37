"""Who makes a change and why: the API key's name and the optional ``X-Sundial-Reason``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from api.auth import require_write
from scheduler.history import MAX_REASON_CHARS, Audit


def change_audit(
    actor: Annotated[str, Depends(require_write)],
    reason: Annotated[
        str | None,
        Header(
            alias="X-Sundial-Reason",
            max_length=MAX_REASON_CHARS,
            description="Why: recorded with the change in the schedule's history.",
        ),
    ] = None,
) -> Audit:
    """The audit record of a write request (its key has already been checked)."""
    return Audit(actor, reason.strip() or None if reason is not None else None)


ChangeAudit = Annotated[Audit, Depends(change_audit)]
