"""API keys: write keys may read and write, read keys may only read."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.deps import Context
from scheduler.settings import Settings

Role = Literal["read", "write"]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sundial"'}


def _role(presented: str, keys: Sequence[SecretStr]) -> Role | None:
    """What the configured key equal to ``presented`` may do, or None for no such key.

    Every key is compared, with no early exit, each in constant time over SHA-256 digests:
    equal lengths, so neither which key matched nor how long the keys are shows in timing.
    """
    digest = hashlib.sha256(presented.encode()).digest()
    role: Role | None = None
    for key in keys:
        secret, _, kind = key.get_secret_value().partition(":")
        if hmac.compare_digest(digest, hashlib.sha256(secret.encode()).digest()):
            role = "write" if kind == "" or role == "write" else "read"
    return role


def role_of(settings: Settings, presented: str) -> Role | None:
    """What the key ``presented`` may do: ``write``, ``read``, or None for no such key."""
    return _role(presented, settings.api_keys)


def _authorize(
    ctx: Context,
    bearer: HTTPAuthorizationCredentials | None,
    api_key: str | None,
    *,
    write: bool,
) -> None:
    settings = ctx.settings
    if not settings.api_keys:
        return
    presented = bearer.credentials if bearer is not None else api_key
    if presented is None:
        raise HTTPException(401, "missing API key", headers=_CHALLENGE)
    role = role_of(settings, presented)
    if role is None:
        raise HTTPException(401, "invalid API key", headers=_CHALLENGE)
    if write and role == "read":
        raise HTTPException(403, "this API key may only read")


def require_read(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    """Any configured key (or none, when no keys are configured)."""
    _authorize(ctx, bearer, api_key, write=False)


def require_write(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    """A read-write key (or none, when no keys are configured)."""
    _authorize(ctx, bearer, api_key, write=True)


Read = Depends(require_read)
Write = Depends(require_write)
