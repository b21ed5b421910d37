"""The dashboard shows a schedule's Celery dispatch options, and its form edits them without
losing them."""

from __future__ import annotations

import html

from tests.api.support import TestClient, put
from tests.api.ui.support import field_error, post_form
from tests.api.ui.test_forms import CRON_FORM

OPTIONS = {
    "time_limit_seconds": 600,
    "soft_time_limit_seconds": 540,
    "exchange": "reports",
    "routing_key": "reports.pdf",
    "headers": {"tenant": "acme"},
}


def test_the_detail_page_shows_the_options(client: TestClient) -> None:
    put(client, "opts", **OPTIONS)
    put(client, "plain")

    page = html.unescape(client.get("/ui/schedules/opts").text)
    plain = client.get("/ui/schedules/plain").text

    assert "hard 10 min, soft 9 min" in page
    assert "reports / reports.pdf" in page
    assert '"tenant": "acme"' in page
    assert "straight to the queue" in plain


def test_saving_the_edit_form_keeps_the_options_it_shows(client: TestClient) -> None:
    put(client, "opts", **OPTIONS)
    page = html.unescape(client.get("/ui/schedules/opts/edit").text)
    assert 'name="time_limit_seconds" value="600"' in page
    assert 'name="routing_key" value="reports.pdf"' in page
    form = {
        **CRON_FORM,
        "version": "1",
        "time_limit_seconds": "600",
        "soft_time_limit_seconds": "30",
        "exchange": "reports",
        "routing_key": "reports.pdf",
        "headers": '{"tenant": "globex"}',
    }

    saved = post_form(client, "/ui/schedules/opts/edit", **form)

    assert saved.status_code == 303
    after = client.get("/v1/schedules/opts").json()
    assert after["soft_time_limit_seconds"] == 30
    assert (after["exchange"], after["routing_key"]) == ("reports", "reports.pdf")
    assert after["headers"] == {"tenant": "globex"}


def test_a_soft_limit_above_the_hard_one_is_shown_by_its_field(client: TestClient) -> None:
    put(client, "opts", **OPTIONS)
    form = {
        **CRON_FORM,
        "version": "1",
        "time_limit_seconds": "60",
        "soft_time_limit_seconds": "90",
    }

    refused = post_form(client, "/ui/schedules/opts/edit", **form)

    assert refused.status_code == 422
    assert "less than time_limit_seconds" in (
        field_error(refused.text, "soft_time_limit_seconds") or ""
    )
    assert client.get("/v1/schedules/opts").json()["version"] == 1
