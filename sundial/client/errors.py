"""What the client raises: one base class, the API's errors by status, and transport failures."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of everything :class:`sundial.client.Client` raises on purpose."""


class ConnectionFailed(ClientError):
    """The API could not be reached, or did not answer in time."""


class ApiError(ClientError):
    """The API answered with an error status; ``detail`` is its ``detail`` field."""

    status: int = 0

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {describe(detail)}")


class BadRequest(ApiError):
    """400: the request was refused for another reason."""


class Unauthorized(ApiError):
    """401: the API key is missing or unknown."""


class Forbidden(ApiError):
    """403: the API key may only read."""


class NotFound(ApiError):
    """404: no schedule or run with that id."""


class Conflict(ApiError):
    """409: the request collides with existing state."""


class PreconditionFailed(ApiError):
    """412: ``If-Match`` no longer matches, or a create-only ``PUT`` found the id taken."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's limit."""


class InvalidInput(ApiError):
    """422: invalid input; ``errors`` lists each problem with its ``loc`` and ``msg``."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """FastAPI's validation errors: ``{"loc": [...], "msg": ...}`` each."""
        if isinstance(self.detail, list):
            return [e for e in self.detail if isinstance(e, dict)]
        return [{"loc": [], "msg": str(self.detail)}]


class ServerError(ApiError):
    """5xx: the server failed (or is not ready)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: InvalidInput,
}


def error_for(status: int, detail: Any) -> ApiError:
    """The exception for an error response."""
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(status, detail)


def describe(detail: Any) -> str:
    """One line for an API ``detail``: a string as is, validation errors as ``loc: msg``."""
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if isinstance(error, dict):
                loc = ".".join(str(p) for p in error.get("loc", []))
                parts.append(f"{loc}: {error.get('msg', '')}" if loc else str(error.get("msg")))
            else:
                parts.append(str(error))
        return "; ".join(parts)
    return str(detail)
