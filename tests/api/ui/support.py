"""Helpers for dashboard tests: read tokens and errors out of the HTML, log in, post forms."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.api.support import TestClient

WRITE_KEY = "ui-write-key-0123456789"
READ_KEY = "ui-read-key-9876543210"
KEYS = [WRITE_KEY, f"{READ_KEY}:read"]


def csrf_of(page: str) -> str:
    """The CSRF token of the session that loaded ``page``."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def field_error(page: str, name: str) -> str | None:
    """The error shown next to the form field ``name``, if any."""
    pattern = rf'<span class="field-error" data-error-for="{re.escape(name)}">([^<]*)</span>'
    match = re.search(pattern, page)
    return html.unescape(match.group(1)) if match else None


def login(client: TestClient, key: str) -> Any:
    """Log in through the form; returns the response to the POST."""
    token = csrf_of(client.get("/ui/login").text)
    return client.post("/ui/login", data={"key": key, "csrf_token": token}, follow_redirects=False)


def post_form(client: TestClient, path: str, page: str = "/ui", **fields: Any) -> Any:
    """POST a dashboard form with the CSRF token of ``page``, without following redirects."""
    token = csrf_of(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)
