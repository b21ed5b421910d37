"""Who makes a change and why: the API key's name and the optional ``X-Sundial-Reason``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from api.auth import require_write
from scheduler.store.history import MAX_REASON_CHARS, Audit


async def change_audit(
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
    if reason is None:
        return Audit(actor)
    return Audit(actor, _text_of(reason).strip() or None)


def _text_of(header: str) -> str:
    """A header value as the client meant it: HTTP hands over bytes, which Starlette reads
    as Latin-1; a client sending UTF-8 (``Störung``) means UTF-8."""
    raw = header.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return header


ChangeAudit = Annotated[Audit, Depends(change_audit)]
