"""The dashboard answers why and who: a schedule's fire timeline and change history (with
restore), its calendars, the calendar pages, and the overview's open alerts."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from scheduler.runs.alerts import AlertKind, raise_alert, resolve_deleted
from tests.api.support import T0, FakeClock, TestClient, put
from tests.api.ui.support import csrf_of, login, post_form

ALICE, AUDITOR = "alice-s3cret-key-0123", "auditor-s3cret-key-4567"
EVERY_MINUTE = {"type": "interval", "seconds": 60}
BERLIN_HOURLY = {"type": "cron", "expression": "0 * * * *", "timezone": "Europe/Berlin"}


@pytest.fixture
def named(make_client: Callable[..., TestClient]) -> Callable[[str], TestClient]:
    """Factory: a client logged in to the dashboard with alice's (read-write) or the
    auditor's (read-only) key; its REST calls carry alice's key."""

    def make(key: str) -> TestClient:
        client = make_client(api_keys=[f"alice={ALICE}", f"auditor={AUDITOR}:read"])
        client.headers["X-API-Key"] = ALICE
        assert login(client, key).status_code == 303
        return client

    return make


def _rows(page: str, css_class: str) -> list[str]:
    return re.findall(rf'<tr class="{css_class}"[^>]*>.*?</tr>', page, flags=re.S)


def _attr(row: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', row)
    assert match, row
    return match.group(1)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_timeline_shows_paused_fires_as_paused_by_whom_and_why(
    named: Callable[[str], TestClient], clock: FakeClock
) -> None:
    client = named(ALICE)
    put(client, "s", trigger=EVERY_MINUTE)
    clock.advance(150)
    page = "/ui/schedules/s"
    assert (
        post_form(client, "/ui/schedules/s/pause", page, reason="incident 4711").status_code == 303
    )
    clock.advance(300)

    shown = client.get(page).text

    timeline = _rows(shown, "tl-row")
    causes = [_attr(row, "data-cause") for row in timeline]
    held = [row for row in timeline if _attr(row, "data-cause") == "paused"]
    # T0+3 min … T0+7 min, and T0+8 min, the next planned instant, that will not fire either.
    assert causes == ["no_record"] * 2 + ["paused"] * 6
    assert all(_attr(row, "data-status") == "not_fired" for row in held)
    assert "paused by alice" in _text(held[0]) and "incident 4711" in _text(held[0])
    (pause, create) = _rows(shown, "change-row")
    assert (_attr(pause, "data-kind"), _attr(pause, "data-actor")) == ("pause", "alice")
    assert "incident 4711" in _text(pause)
    assert _attr(create, "data-kind") == "create"


def test_the_timeline_window_moves_earlier_and_a_full_window_continues(
    named: Callable[[str], TestClient], clock: FakeClock
) -> None:
    client = named(ALICE)
    put(client, "s", trigger={"type": "interval", "seconds": 1})
    clock.advance(600)
    since, until = T0 + timedelta(seconds=100), T0 + timedelta(seconds=200)
    params = {"tl_since": since.isoformat(), "tl_until": until.isoformat()}

    first = client.get("/ui/schedules/s", params=params).text
    more = re.search(r'id="timeline-more" href="([^"]+)"', first)
    assert more is not None
    second = client.get(html.unescape(more.group(1))).text
    default = client.get("/ui/schedules/s").text

    assert len(_rows(first, "tl-row")) == 50 and len(_rows(second, "tl-row")) == 50
    stamps = [_attr(r, "datetime") for r in _rows(first, "tl-row") + _rows(second, "tl-row")]
    assert stamps[0] == "2026-11-21T12:01:40Z" and stamps[-1] == "2026-11-21T12:03:19Z"
    assert len(set(stamps)) == 100
    # By default about 20 instants before now and the next one.
    assert 20 <= len(_rows(default, "tl-row")) <= 23
    earlier = re.search(r'id="timeline-earlier" href="([^"]+)"', default)
    assert earlier is not None and "tl_until=" in earlier.group(1)


def test_a_bad_window_is_said_in_the_panel_not_a_broken_page(
    named: Callable[[str], TestClient],
) -> None:
    client = named(ALICE)
    put(client, "s", trigger=EVERY_MINUTE)

    response = client.get("/ui/schedules/s", params={"tl_since": "yesterday"})
    backwards = client.get(
        "/ui/schedules/s",
        params={"tl_since": T0.isoformat(), "tl_until": (T0 - timedelta(hours=1)).isoformat()},
    )

    assert response.status_code == 200 and 'id="timeline-error"' in response.text
    assert "until must be after since" in _text(backwards.text)


def test_restoring_a_version_is_recorded_under_the_viewers_key_name(
    named: Callable[[str], TestClient],
) -> None:
    client = named(ALICE)
    put(client, "s", trigger=EVERY_MINUTE, description="first")
    put(client, "s", trigger=BERLIN_HOURLY, description="second")
    page = client.get("/ui/schedules/s").text
    assert 'data-restore="1"' in page and 'data-restore="2"' not in page  # 2 is current

    response = post_form(
        client, "/ui/schedules/s/history/1/restore", "/ui/schedules/s", reason="cron was wrong"
    )

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/schedules/s?notice=restored")
    restored = client.get("/v1/schedules/s").json()
    assert (restored["description"], restored["trigger"], restored["version"]) == (
        "first",
        EVERY_MINUTE,
        3,
    )
    latest = client.get("/v1/schedules/s/history", params={"limit": 1}).json()["items"][0]
    assert (latest["kind"], latest["actor"], latest["reason"]) == (
        "restore",
        "alice",
        "cron was wrong",
    )
    assert latest["details"] == {"restored_version": 1}


def test_a_read_only_key_cannot_restore_and_a_restore_needs_the_csrf_token(
    named: Callable[[str], TestClient],
) -> None:
    writer = named(ALICE)
    put(writer, "s", description="first")
    put(writer, "s", description="second")
    reader = named(AUDITOR)
    page = reader.get("/ui/schedules/s").text

    forged = post_form(reader, "/ui/schedules/s/history/1/restore", "/ui/schedules/s")
    tokenless = writer.post("/ui/schedules/s/history/1/restore", follow_redirects=False)

    assert "Restore this version" not in page and csrf_of(page)
    assert forged.status_code == 403 and tokenless.status_code == 403
    assert writer.get("/v1/schedules/s").json()["version"] == 2


def test_calendars_are_shown_on_the_schedule_and_on_their_own_pages(
    named: Callable[[str], TestClient], clock: FakeClock
) -> None:
    client = named(ALICE)
    rules = [
        {"type": "dates", "dates": ["2026-12-24"]},
        {"type": "holidays", "country": "DE", "subdivision": "BY"},
    ]
    assert client.put("/v1/calendars/xmas", json={"rules": rules}).status_code == 201
    put(client, "s", trigger=BERLIN_HOURLY, exclude_calendars=["xmas"])

    schedule = client.get("/ui/schedules/s").text
    listing = client.get("/ui/calendars").text
    detail = client.get("/ui/calendars/xmas").text
    in_tokyo = client.get("/ui/calendars/xmas", params={"zone": "Asia/Tokyo"}).text
    bad_zone = client.get("/ui/calendars/xmas", params={"zone": "Mars/Olympus"})

    assert 'href="/ui/calendars/xmas"' in schedule and "excluded fires are skipped" in schedule
    assert "public holidays DE-BY" in _text(listing) and "dates 2026-12-24" in _text(listing)
    assert 'href="/ui/schedules/s"' in detail and "in Europe/Berlin" in detail
    excluded = _rows(detail, "excluded-row")
    assert "2026-12-24" in _text(excluded[0])  # 24 December, from Berlin's midnight
    assert 'datetime="2026-12-23T23:00:00Z"' in excluded[0]
    assert "Christmas Day" in _text(excluded[1])
    assert 'datetime="2026-12-23T15:00:00Z"' in _rows(in_tokyo, "excluded-row")[0]
    assert bad_zone.status_code == 422
    assert client.get("/ui/calendars/nope").status_code == 404


def test_the_overview_lists_open_alerts(named: Callable[[str], TestClient], engine: Engine) -> None:
    client = named(AUDITOR)
    with engine.begin() as conn:
        for schedule_id, kind in (("late-one", AlertKind.DEADLINE), ("gone", AlertKind.FAILURE)):
            raise_alert(
                conn,
                schedule_id=schedule_id,
                kind=kind,
                subject="f1",
                message=f"{schedule_id}: not succeeded within 3600s",
                now=T0,
            )
        resolve_deleted(conn, "gone", T0 + timedelta(minutes=1))

    page = client.get("/ui").text

    (row,) = _rows(page, "alert-row")
    assert _attr(row, "data-kind") == "deadline"
    assert 'href="/ui/schedules/late-one"' in row and "not succeeded within 3600s" in row
