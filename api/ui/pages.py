"""Rendering: the Jinja2 templates shipped in the package, their filters, and the headers
every dashboard page carries (a strict Content-Security-Policy: no inline script, no
other origin, no framing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.ui import describe
from api.ui.access import Access, Viewer
from api.ui.forms import unplaced
from scheduler.store.models import RunState
from scheduler.timing.calendar_words import describe_rule

UI = "/ui"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Runs that can still change: their pages keep refreshing.
UNFINISHED = {RunState.PENDING, RunState.DISPATCHED, RunState.STARTED, RunState.RETRYING}


def _isoz(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


# One-shot messages of a redirect: a link made from the page must not carry them on.
_ONE_SHOT = ("notice", "count")


def with_query(request: Request, fragment: str = "", **updates: Any) -> str:
    """This page's path and query with ``updates`` applied (None or "" removes a
    parameter; datetimes are written in ISO form), and an optional ``#fragment``."""
    keep = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k not in updates and k not in _ONE_SHOT
    ]
    for name, value in updates.items():
        if value is None or value == "":
            continue
        keep.append((name, value.isoformat() if isinstance(value, datetime) else str(value)))
    query = urlencode(keep)
    return request.url.path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return repr(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("api.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        isoz=_isoz,
        pretty_json=_pretty_json,
        compact_json=_compact_json,
        rule_words=describe_rule,
        number=_number,
        duration=describe.duration,
        trigger_words=describe.trigger_words,
        zone_of=describe.zone_of,
        every=describe.every,
        error_field=describe.error_field,
        unplaced=unplaced,
    )
    env.globals.update(
        UI=UI,
        between=describe.between,
        with_query=with_query,
        run_states=[state.value for state in RunState],
        unfinished={state.value for state in UNFINISHED},
    )
    return env


class Pages:
    """Renders dashboard pages for a viewer, storing a new session cookie when needed."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.env = _environment()

    def render(
        self,
        request: Request,
        viewer: Viewer,
        template: str,
        context: dict[str, Any],
        status_code: int = 200,
    ) -> HTMLResponse:
        """The page ``template`` with ``context``, the viewer and the request."""
        html = self.env.get_template(template).render(
            {"request": request, "viewer": viewer, "page": "", **context}
        )
        response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        if viewer.new_cookie:
            self.access.sessions.store(response, viewer.session, request)
        return response


def redirect(location: str) -> RedirectResponse:
    """A 303 to ``location`` (after a form post: the browser then GETs it)."""
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a dashboard path, else ``default``: never an open redirect."""
    if target and target.startswith(UI) and not target.startswith("//") and "\\" not in target:
        return target
    return default


async def get_pages(request: Request) -> Pages:
    """The app's :class:`Pages`, built by :func:`api.ui.mount.mount_dashboard`."""
    pages: Pages = request.app.state.dashboard_pages
    return pages


PagesDep = Annotated[Pages, Depends(get_pages)]
