"""Logging in with an API key, and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.auth import match_key, role_of
from api.deps import Context
from api.ui.access import AnyViewer
from api.ui.pages import UI, PagesDep, redirect, safe_next

router = APIRouter(prefix=UI)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, viewer: AnyViewer, pages: PagesDep, next: str | None = None
) -> Response:
    """The login form (the dashboard needs none when no keys are configured)."""
    if viewer.open:
        return redirect(safe_next(next, UI))
    return pages.render(request, viewer, "login.html", {"next": safe_next(next, UI), "error": None})


@router.post("/login", response_class=HTMLResponse)
def log_in(
    request: Request,
    viewer: AnyViewer,
    pages: PagesDep,
    ctx: Context,
    key: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2048)] = UI,
) -> Response:
    """Trade an API key for a session cookie naming its role (never the key)."""
    target = safe_next(next, UI)
    if viewer.open:
        return redirect(target)
    sessions = pages.access.sessions

    def again(status: int, error: str) -> HTMLResponse:
        context = {"next": target, "error": error}
        return pages.render(request, viewer, "login.html", context, status_code=status)

    if not sessions.csrf_valid(viewer.session, csrf_token):
        return again(403, "The form expired: please try again.")
    found = match_key(ctx.settings, key.strip())
    if found is None:
        return again(401, "That key is not one of SUNDIAL_API_KEYS.")
    response = redirect(target)
    sessions.store(response, sessions.new(role_of(found), found.name), request)
    return response


@router.post("/logout")
def log_out(
    viewer: AnyViewer,
    pages: PagesDep,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> RedirectResponse:
    """End the session (a read-only viewer may log out too, so only CSRF is checked)."""
    response = redirect(f"{UI}/login")
    if pages.access.sessions.csrf_valid(viewer.session, csrf_token):
        pages.access.sessions.clear(response)
    return response
