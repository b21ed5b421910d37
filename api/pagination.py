"""Opaque cursors: the sort key of a page's last item, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json

from api.errors import invalid_input


def encode_cursor(*key: str) -> str:
    """A cursor for the item with sort key ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The sort key in ``cursor``, or a 422 naming the ``cursor`` query parameter."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid_input(("query", "cursor"), "not a cursor this API issued", cursor) from exc
    if not (isinstance(key, list) and len(key) == size and all(isinstance(k, str) for k in key)):
        raise invalid_input(("query", "cursor"), "not a cursor this API issued", cursor)
    return key
