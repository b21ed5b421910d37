"""Who may see and change what through the dashboard: keys, sessions and CSRF tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time
from starlette.requests import Request

from api.ui.session import COOKIE, Sessions
from scheduler.settings import Settings
from tests.api.support import TestClient, put
from tests.api.ui.support import KEYS, READ_KEY, WRITE_KEY, csrf_of, login, post_form


def test_pages_send_a_browser_to_the_login_form_until_a_key_logs_in(keyed: TestClient) -> None:
    response = keyed.get("/ui/schedules?state=active", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fschedules%3Fstate%3Dactive"
    assert login(keyed, WRITE_KEY).headers["location"] == "/ui"
    assert keyed.get("/ui/schedules").status_code == 200


def test_a_wrong_key_is_refused_and_gets_no_session(keyed: TestClient) -> None:
    response = login(keyed, "not-a-key")

    assert response.status_code == 401
    assert "not one of SUNDIAL_API_KEYS" in response.text
    assert keyed.get("/ui", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_never_holds_the_key(keyed: TestClient) -> None:
    response = login(keyed, WRITE_KEY)

    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==")
    assert WRITE_KEY.encode() not in payload and WRITE_KEY not in value
    assert b'"role":"write"' in payload


def test_the_session_cookie_is_secure_where_browsers_keep_secure_cookies(
    make_client: Callable[..., TestClient],
) -> None:
    local = make_client(api_keys=KEYS)
    local.base_url = local.base_url.copy_with(host="127.0.0.1")

    page = local.get("/ui/login")

    assert "Secure" in page.headers["set-cookie"]
    assert "plain HTTP" not in page.text


def test_plain_http_on_another_host_is_pointed_out(keyed: TestClient) -> None:
    page = keyed.get("/ui/login")  # http://testserver

    assert "Secure" not in page.headers["set-cookie"]
    assert "served over plain HTTP" in page.text


def test_a_read_only_key_sees_no_write_controls_and_its_writes_are_refused(
    keyed: TestClient,
) -> None:
    put(keyed, "s1")
    assert login(keyed, READ_KEY).status_code == 303

    listing = keyed.get("/ui/schedules").text
    detail = keyed.get("/ui/schedules/s1").text
    forged = post_form(keyed, "/ui/schedules/s1/pause", reason="forged")

    assert "s1" in listing and "read-only key" in listing
    for control in ("/pause", "/resume", "/trigger", "New schedule", "/edit", "/delete"):
        assert control not in listing and control not in detail
    assert forged.status_code == 403
    assert "may only read" in forged.text
    state = keyed.get("/v1/schedules/s1", headers={"X-API-Key": READ_KEY}).json()["state"]
    assert state == "active"
    assert keyed.get("/ui/schedules/new").status_code == 403
    assert keyed.get("/ui/schedules/s1/edit").status_code == 403


def test_a_write_without_this_sessions_csrf_token_is_refused(
    writer: TestClient, make_client: Callable[..., TestClient]
) -> None:
    put(writer, "s1")
    other = make_client(api_keys=KEYS)
    foreign_token = csrf_of(other.get("/ui/login").text)

    missing = writer.post("/ui/schedules/s1/pause", data={}, follow_redirects=False)
    foreign = writer.post(
        "/ui/schedules/s1/pause", data={"csrf_token": foreign_token}, follow_redirects=False
    )
    by_header = writer.post(
        "/ui/schedules/s1/pause",
        headers={"X-CSRF-Token": csrf_of(writer.get("/ui").text)},
        follow_redirects=False,
    )

    assert (missing.status_code, foreign.status_code) == (403, 403)
    assert "CSRF token" in missing.text
    assert by_header.status_code == 303


def test_a_tampered_session_cookie_counts_as_no_session(writer: TestClient) -> None:
    value = writer.cookies[COOKIE]
    writer.cookies.set(COOKIE, value.replace('"write"', '"read"')[:-2] + "xx", path="/ui")

    assert writer.get("/ui", follow_redirects=False).status_code == 303


def test_changing_the_keys_ends_every_session(
    writer: TestClient, make_client: Callable[..., TestClient]
) -> None:
    rotated = make_client(api_keys=["a-new-write-key"])
    rotated.cookies.set(COOKIE, writer.cookies[COOKIE], path="/ui")

    assert rotated.get("/ui", follow_redirects=False).status_code == 303


def test_a_session_ends_after_twelve_hours(settings_factory: Callable[..., Settings]) -> None:
    sessions = Sessions(settings_factory(api_keys=KEYS))
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)

    def read_at(when: datetime, cookie: str) -> object:
        headers = [(b"cookie", f"{COOKIE}={cookie}".encode())]
        with freeze_time(when):
            return sessions.read(Request({"type": "http", "headers": headers}))

    with freeze_time(start):
        cookie = sessions._serializer.dumps({"sid": "abc", "role": "write"})

    assert read_at(start + timedelta(hours=11), cookie) is not None
    assert read_at(start + timedelta(hours=12, seconds=1), cookie) is None


def test_logging_out_ends_the_session(writer: TestClient) -> None:
    response = post_form(writer, "/ui/logout")

    assert response.headers["location"] == "/ui/login"
    assert COOKIE not in writer.cookies
    assert writer.get("/ui", follow_redirects=False).status_code == 303


def test_the_login_form_is_protected_against_csrf(keyed: TestClient) -> None:
    response = keyed.post("/ui/login", data={"key": WRITE_KEY}, follow_redirects=False)

    assert response.status_code == 403
    assert keyed.get("/ui", follow_redirects=False).status_code == 303


def test_login_never_redirects_to_another_site(keyed: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/ui", "/v1/schedules"):
        token = csrf_of(keyed.get("/ui/login").text)
        response = keyed.post(
            "/ui/login",
            data={"key": WRITE_KEY, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/ui", target


def test_an_open_dashboard_says_so_and_still_checks_csrf(client: TestClient) -> None:
    put(client, "s1")

    page = client.get("/ui")
    refused = client.post("/ui/schedules/s1/pause", data={}, follow_redirects=False)
    accepted = post_form(client, "/ui/schedules/s1/pause")

    assert page.status_code == 200 and 'id="open-notice"' in page.text
    assert "No API keys are configured" in page.text
    assert refused.status_code == 403
    assert accepted.status_code == 303
    assert client.get("/v1/schedules/s1").json()["state"] == "paused"
    assert client.get("/ui/login", follow_redirects=False).headers["location"] == "/ui"


def test_pages_forbid_framing_and_foreign_scripts(writer: TestClient) -> None:
    headers = writer.get("/ui").headers

    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


def test_a_refreshing_panel_without_a_session_sends_the_page_to_the_login_form(
    keyed: TestClient,
) -> None:
    response = keyed.get("/ui/schedules", headers={"HX-Request": "true"}, follow_redirects=False)

    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/ui/login?next=%2Fui%2Fschedules"
