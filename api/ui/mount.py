"""Mounting the dashboard on the API app at ``/ui``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from api.ui.access import Access, LoginRequired
from api.ui.pages import UI, Pages, redirect
from api.ui.refusals import Refused
from api.ui.routes import actions, calendars, login, overview, runs, schedule, schedules
from scheduler.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard's pages and static files on ``app`` under ``/ui``."""
    access = Access.from_settings(settings)
    app.state.dashboard_access = access
    app.state.dashboard_pages = Pages(access)
    # schedules before schedule: /ui/schedules/new is not a schedule id.
    for module in (login, overview, schedules, schedule, actions, runs, calendars):
        app.include_router(module.router, include_in_schema=False)
    app.mount(f"{UI}/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Refused, _refused)


def _login_required(request: Request, exc: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{UI}/login?next={quote(here, safe='')}"
    if request.headers.get("HX-Request"):
        # A refreshing panel whose session ended sends the whole page to the login form.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return redirect(target)


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    pages: Pages = request.app.state.dashboard_pages
    viewer = pages.access.viewer(request)
    context = {"page": "", "refused": exc}
    return pages.render(request, viewer, "error.html", context, status_code=exc.status)
