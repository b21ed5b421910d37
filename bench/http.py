"""A lean keep-alive HTTP client for load generation: the standard library's
``http.client``, so the load generator spends as little of the machine's two cores as it
can (httpx costs several times more CPU per request)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class Http:
    """One persistent connection; reconnects once if the server closed it."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request; (status, body)."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self._conn.close()
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()
