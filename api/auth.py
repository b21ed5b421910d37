"""API keys: write keys may read and write, read keys may only read. A request is made
by the key's name (its actor in the change history), or ``anonymous`` without keys."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Context
from scheduler.settings import ApiKey, Settings
from scheduler.store.history import ANONYMOUS_ACTOR

Role = Literal["read", "write"]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sundial"'}


def match_key(settings: Settings, presented: str) -> ApiKey | None:
    """The configured key equal to ``presented``, or None; a read-write entry wins over a
    read-only one for the same secret.

    Every key is compared, with no early exit, each in constant time over SHA-256 digests:
    equal lengths, so neither which key matched nor how long the keys are shows in timing.
    """
    digest = hashlib.sha256(presented.encode()).digest()
    found: ApiKey | None = None
    keys: Sequence[ApiKey] = sorted(settings.named_keys(), key=lambda k: k.read_only)
    for key in keys:
        secret = key.secret.get_secret_value().encode()
        if hmac.compare_digest(digest, hashlib.sha256(secret).digest()) and found is None:
            found = key
    return found


def role_of(key: ApiKey) -> Role:
    """What ``key`` may do."""
    return "read" if key.read_only else "write"


def _authorize(
    ctx: Context,
    bearer: HTTPAuthorizationCredentials | None,
    api_key: str | None,
    *,
    write: bool,
) -> str:
    """The actor making the request, or 401/403."""
    settings = ctx.settings
    if not settings.api_keys:
        return ANONYMOUS_ACTOR
    presented = bearer.credentials if bearer is not None else api_key
    if presented is None:
        raise HTTPException(401, "missing API key", headers=_CHALLENGE)
    key = match_key(settings, presented)
    if key is None:
        raise HTTPException(401, "invalid API key", headers=_CHALLENGE)
    if write and key.read_only:
        raise HTTPException(403, "this API key may only read")
    return key.name


async def require_read(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """Any configured key (or none, when no keys are configured); the actor."""
    return _authorize(ctx, bearer, api_key, write=False)


async def require_write(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """A read-write key (or none, when no keys are configured); the actor."""
    return _authorize(ctx, bearer, api_key, write=True)


Read = Depends(require_read)
Write = Depends(require_write)
