"""API keys: write keys may read and write, read keys may only read. A request is made
by the key's name (its actor in the change history), or ``anonymous`` without keys."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Context
from scheduler.history import ANONYMOUS_ACTOR
from scheduler.settings import ApiKey

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sundial"'}


def _match(presented: str, keys: list[ApiKey]) -> ApiKey | None:
    # Compare against every key, without stopping early, in constant time per key; a
    # read-write entry wins over a read-only one for the same secret.
    found: ApiKey | None = None
    for key in sorted(keys, key=lambda k: k.read_only):
        if hmac.compare_digest(presented.encode(), key.secret.encode()) and found is None:
            found = key
    return found


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
    key = _match(presented, settings.named_keys())
    if key is None:
        raise HTTPException(401, "invalid API key", headers=_CHALLENGE)
    if write and key.read_only:
        raise HTTPException(403, "this API key may only read")
    return key.name


def require_read(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """Any configured key (or none, when no keys are configured); the actor."""
    return _authorize(ctx, bearer, api_key, write=False)


def require_write(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """A read-write key (or none, when no keys are configured); the actor."""
    return _authorize(ctx, bearer, api_key, write=True)


Read = Depends(require_read)
Write = Depends(require_write)
