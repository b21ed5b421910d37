"""The overview: who leads, what ran, how late, what needs a look, and open alerts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import Context
from api.routes.alerts import list_alerts
from api.ui.access import Reader
from api.ui.overview import COUNT_CAP, bound_text, load_overview, quantile_text
from api.ui.pages import UI, PagesDep

router = APIRouter(prefix=UI)
# The overview lists this many open alerts, newest first, and says when there are more.
OPEN_ALERTS = 20


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, viewer: Reader, pages: PagesDep, ctx: Context) -> HTMLResponse:
    """The overview page; its panels refresh themselves."""
    alerts = list_alerts(
        ctx,
        schedule_id=None,
        kind=None,
        state="open",
        since=None,
        until=None,
        limit=OPEN_ALERTS,
        cursor=None,
    )
    context = {
        "o": load_overview(ctx),
        "count_cap": COUNT_CAP,
        "page": "overview",
        "alerts": alerts.items,
        "more_alerts": alerts.next_cursor is not None,
        "webhook": ctx.settings.alert_webhook_url is not None,
        "quantile": quantile_text,
        "bound": bound_text,
    }
    return pages.render(request, viewer, "overview.html", context)
