"""The client's connection to one sundial API: base URL, key, the HTTP calls, and the
API's errors turned into :mod:`sundial.client.errors` exceptions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from sundial.client.errors import ConnectionFailed, error_for

DEFAULT_URL = "http://127.0.0.1:8000"
# Why a change is made: recorded with it in the schedule's (or calendar's) history.
REASON_HEADER = "X-Sundial-Reason"
M = TypeVar("M", bound=BaseModel)
Params = dict[str, str | int | list[str]]


class Transport:
    """A connection to one sundial API.

    ``base_url`` and ``api_key`` default to ``SUNDIAL_API_URL`` (else
    ``http://127.0.0.1:8000``) and ``SUNDIAL_API_KEY``. Pass ``http`` to reuse an
    ``httpx.Client`` of your own (its base URL is then used as is). Errors are
    :mod:`sundial.client.errors` exceptions carrying the API's ``detail``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("SUNDIAL_API_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("SUNDIAL_API_KEY")
        self._headers = {"User-Agent": "sundial-client"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"  # never the key

    def close(self) -> None:
        """Close the connection pool (unless ``http`` was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _model(self, model: type[M], method: str, path: str, **request: Any) -> M:
        return model.model_validate(self._send(method, path, **request).json())

    def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        return self._checked(self._request(method, path, **request))

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str | bytes] | None = None,
        **request: Any,
    ) -> httpx.Response:
        merged = {**self._headers, **(headers or {})}
        # Bytes throughout: a reason may be UTF-8, which httpx would refuse as text.
        raw = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in merged.items()}
        try:
            return self._http.request(method, path, headers=raw, **request)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"the sundial API at {self.base_url} timed out") from exc
        except httpx.TransportError as exc:
            message = f"cannot reach the sundial API at {self.base_url}: {exc}"
            raise ConnectionFailed(message) from exc

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text or response.reason_phrase
        raise error_for(response.status_code, detail)


def reason_header(reason: str | None) -> dict[str, str | bytes]:
    """The ``X-Sundial-Reason`` header for ``reason`` (none when it is None or blank): one
    line, sent as UTF-8, which the API reads back as such."""
    if reason is None or not reason.strip():
        return {}
    return {REASON_HEADER: " ".join(reason.split()).encode()}


def rfc3339(value: datetime) -> str:
    """An aware datetime as RFC 3339 text; a naive one is refused."""
    if value.tzinfo is None:
        raise ValueError(f"{value!r} must be timezone-aware")
    return value.isoformat()


def put_optional(params: Params, **values: str | None) -> None:
    """Add the ``values`` that are not None to ``params``."""
    for name, value in values.items():
        if value is not None:
            params[name] = value
