"""The overview: who leads, what ran, how late, and what needs a look."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import Context
from api.ui.access import Reader
from api.ui.overview import COUNT_CAP, load_overview
from api.ui.pages import UI, PagesDep

router = APIRouter(prefix=UI)


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, viewer: Reader, pages: PagesDep, ctx: Context) -> HTMLResponse:
    """The overview page; its panels refresh themselves."""
    context = {"o": load_overview(ctx), "count_cap": COUNT_CAP, "page": "overview"}
    return pages.render(request, viewer, "overview.html", context)
