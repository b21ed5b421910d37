"""Helpers for dashboard tests: read tokens and errors out of the HTML, log in, post forms."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
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


class _FormReader(HTMLParser):
    """What a browser would post from the form with ``id``: inputs, checked boxes, the
    selected options and textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = found.get("id") == self.form_id
        if not self.inside:
            return
        name = found.get("name")
        if tag == "input" and name:
            if found.get("type") != "checkbox" or "checked" in found:
                self.fields[name] = found.get(
                    "value", "on" if found.get("type") == "checkbox" else ""
                )
        elif tag == "textarea" and name:
            self.textarea = name
            self.fields[name] = ""
        elif tag == "select" and name:
            self.select = name
        elif (
            tag == "option"
            and self.select
            and ("selected" in found or self.select not in self.fields)
        ):
            self.fields[self.select] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.fields[self.textarea] += data


def form_fields(page: str, form_id: str) -> dict[str, str]:
    """The fields a browser would post from the form ``form_id`` of ``page``, unchanged."""
    reader = _FormReader(form_id)
    reader.feed(page)
    return reader.fields
