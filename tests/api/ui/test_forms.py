"""Changing schedules through the dashboard: the API's own validation and rules, errors shown
by their field, and nothing changed by a refused form."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update

from api.schedule_schemas import SchedulePut
from scheduler.store.models import schedules
from tests.api.support import T0, TestClient, count_runs, count_schedules, put
from tests.api.ui.support import field_error, form_fields, post_form

CRON_FORM = {
    "task": "reports.generate",
    "trigger.type": "cron",
    "trigger.expression": "0 3 * * *",
    "trigger.timezone": "Europe/Berlin",
    "args": "[1, 2]",
    "kwargs": '{"format": "pdf"}',
    "labels": "team=billing\nenv = prod",
    "queue": "reports",
    "misfire_grace_seconds": "120",
    "jitter_seconds": "5",
    "overlap": "skip",
    "coalesce": "on",
    "retry.max_attempts": "3",
    "retry.backoff_seconds": "10",
    "description": "Nightly report",
}
WEEKEND = {"rules": [{"type": "weekly", "days": ["sat-sun"]}]}


def create(client: TestClient, **fields: Any) -> Any:
    return post_form(client, "/ui/schedules/new", page="/ui/schedules/new", **fields)


def test_a_schedule_created_through_the_form_is_the_one_the_api_would_create(
    client: TestClient,
) -> None:
    response = create(client, id="nightly", **CRON_FORM)

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/schedules/nightly?notice=created"
    made = client.get("/v1/schedules/nightly").json()
    assert made["trigger"] == {
        "type": "cron",
        "expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
    }
    assert (made["args"], made["kwargs"]) == ([1, 2], {"format": "pdf"})
    assert made["labels"] == {"team": "billing", "env": "prod"}
    assert (made["queue"], made["misfire_grace_seconds"], made["jitter_seconds"]) == (
        "reports",
        120,
        5,
    )
    assert (made["overlap"], made["coalesce"], made["paused"]) == ("skip", True, False)
    assert made["retry"] == {"max_attempts": 3, "backoff_seconds": 10, "backoff_max_seconds": 3600}
    assert made["description"] == "Nightly report"
    assert made["next_run_at"] == "2026-11-22T02:00:00Z"


def test_without_an_id_the_server_picks_one(client: TestClient) -> None:
    response = create(client, **{**CRON_FORM, "trigger.type": "delay", "trigger.seconds": "30"})

    schedule_id = response.headers["location"].split("/")[3].split("?")[0]
    made = client.get(f"/v1/schedules/{schedule_id}").json()
    assert made["trigger"] == {"type": "date", "run_at": "2026-11-21T12:00:30Z"}


def test_a_bad_cron_is_a_422_shown_next_to_the_expression_and_creates_nothing(
    client: TestClient,
) -> None:
    response = create(client, id="bad", **{**CRON_FORM, "trigger.expression": "61 * * * *"})

    assert response.status_code == 422
    error = field_error(response.text, "trigger.expression")
    assert error is not None and "61" in error
    assert field_error(response.text, "task") is None
    assert 'value="61 * * * *"' in response.text  # what was typed is kept
    assert count_schedules_via(client) == 0


def count_schedules_via(client: TestClient) -> int:
    return len(client.get("/v1/schedules").json()["items"])


def test_the_api_models_errors_land_on_their_fields(client: TestClient) -> None:
    fields = {**CRON_FORM, "kwargs": "{not json", "labels": "team billing"}
    unreadable = create(client, **fields)
    fields.update(kwargs="{}", labels="", **{"trigger.timezone": "Mars/Olympus"})
    bad_zone = create(client, **fields)
    fields.update(jitter_seconds="soon", **{"trigger.timezone": "UTC", "retry.max_attempts": "0"})
    bad_numbers = create(client, **fields)

    assert "not valid JSON" in (field_error(unreadable.text, "kwargs") or "")
    assert "key=value" in (field_error(unreadable.text, "labels") or "")
    assert "Mars/Olympus" in (field_error(bad_zone.text, "trigger.timezone") or "")
    assert "number" in (field_error(bad_numbers.text, "jitter_seconds") or "")
    assert "greater than or equal to 1" in (
        field_error(bad_numbers.text, "retry.max_attempts") or ""
    )
    assert {r.status_code for r in (unreadable, bad_zone, bad_numbers)} == {422}
    assert count_schedules_via(client) == 0


def test_a_task_outside_the_allowed_list_is_refused_on_the_task_field(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(allowed_tasks=["reports.*"])

    response = create(client, **{**CRON_FORM, "task": "os.system"})

    assert response.status_code == 422
    assert "SUNDIAL_ALLOWED_TASKS" in (field_error(response.text, "task") or "")


def test_an_id_in_use_is_refused_not_replaced(client: TestClient) -> None:
    put(client, "taken", description="keep me")

    response = create(client, id="taken", **CRON_FORM)

    assert response.status_code == 409
    assert field_error(response.text, "id") == "a schedule has this id"
    assert client.get("/v1/schedules/taken").json()["description"] == "keep me"


def test_the_json_editor_creates_and_lists_errors_by_path(client: TestClient) -> None:
    document = {"id": "from-json", "task": "t.x", "trigger": {"type": "interval", "seconds": 90}}
    made = create(client, json=json.dumps(document))
    bad = create(client, json=json.dumps({**document, "id": "x2", "trigger": {"type": "cron"}}))

    assert made.status_code == 303
    assert client.get("/v1/schedules/from-json").json()["trigger"]["seconds"] == 90
    assert bad.status_code == 422
    errors = bad.text.split('id="json-errors"', 1)[1].split("</ul>", 1)[0]
    assert "<code>trigger.expression</code>" in errors


def test_editing_replaces_the_schedule_and_a_stale_form_is_refused(client: TestClient) -> None:
    put(client, "s1", description="first")
    edit_page = client.get("/ui/schedules/s1/edit").text
    assert 'name="version" value="1"' in edit_page
    form = {**CRON_FORM, "description": "second", "version": "1"}

    saved = post_form(client, "/ui/schedules/s1/edit", **form)
    stale = post_form(client, "/ui/schedules/s1/edit", **{**form, "description": "third"})

    assert saved.status_code == 303
    assert stale.status_code == 412
    assert "changed this schedule since you opened it" in stale.text
    after = client.get("/v1/schedules/s1").json()
    assert (after["description"], after["version"], after["queue"]) == ("second", 2, "reports")


def test_the_edit_form_shows_the_schedule_as_stored(client: TestClient) -> None:
    put(client, "s1", trigger={"type": "interval", "seconds": 90.0}, labels={"a": "1", "b": "2"})

    page = client.get("/ui/schedules/s1/edit").text

    assert 'name="trigger.seconds" value="90"' in page
    assert "a=1\nb=2</textarea>" in page


def test_pause_with_a_reason_resume_and_trigger(client: TestClient, engine: Engine) -> None:
    put(client, "s1")

    paused = post_form(client, "/ui/schedules/s1/pause", reason="migrating the billing API")
    paused_state = client.get("/v1/schedules/s1").json()
    resumed = post_form(
        client, "/ui/schedules/s1/resume", next="/ui/schedules?state=paused&notice=paused"
    )
    triggered = post_form(client, "/ui/schedules/s1/trigger")

    assert paused.headers["location"] == "/ui/schedules/s1?notice=paused"
    assert (paused_state["state"], paused_state["state_reason"]) == (
        "paused",
        "migrating the billing API",
    )
    assert resumed.headers["location"] == "/ui/schedules?state=paused&notice=resumed"
    assert client.get("/v1/schedules/s1").json()["state"] == "active"
    assert triggered.status_code == 303
    assert count_runs(engine) == 1


def test_the_apis_refusals_keep_their_status(client: TestClient, engine: Engine) -> None:
    put(client, "done")
    with engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == "done").values(state="completed"))

    completed = post_form(client, "/ui/schedules/done/pause")
    unknown = post_form(client, "/ui/schedules/nope/pause")

    assert completed.status_code == 409
    assert "is completed" in completed.text
    assert unknown.status_code == 404
    assert "no schedule 'nope'" in html.unescape(unknown.text)


def test_delete_asks_first_then_deletes(client: TestClient) -> None:
    put(client, "s1")

    confirm = client.get("/ui/schedules/s1/delete").text
    deleted = post_form(client, "/ui/schedules/s1/delete")

    assert "Delete for good" in confirm
    assert deleted.headers["location"] == "/ui/schedules?notice=deleted"
    assert client.get("/v1/schedules/s1").status_code == 404


def test_backfill_previews_its_count_then_records_it(client: TestClient, engine: Engine) -> None:
    put(client, "s1", trigger={"type": "cron", "expression": "0 * * * *", "timezone": "UTC"})
    window = {
        "start": (T0 - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
        "end": (T0 - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }

    preview = post_form(client, "/ui/schedules/s1/backfill/preview", **window)
    assert count_runs(engine) == 0
    done = post_form(client, "/ui/schedules/s1/backfill", **window)
    again = post_form(client, "/ui/schedules/s1/backfill/preview", **window)
    future = post_form(
        client, "/ui/schedules/s1/backfill", start=window["start"], end="2030-01-01T00:00"
    )

    assert "5 new runs will be recorded" in preview.text
    assert done.headers["location"] == "/ui/schedules/s1?notice=backfilled&count=5"
    assert count_runs(engine) == 5
    assert "0 new runs" in again.text
    assert future.status_code == 422
    assert "must not be in the future" in future.text
    assert count_runs(engine) == 5


def test_a_refused_form_changes_nothing(client: TestClient, engine: Engine) -> None:
    put(client, "s1")

    for path, fields in [
        ("/ui/schedules/new", {**CRON_FORM, "trigger.expression": "bad"}),
        ("/ui/schedules/s1/edit", {**CRON_FORM, "queue": "", "version": "1"}),
        ("/ui/schedules/s1/pause", {"reason": "x" * 1001}),
    ]:
        assert post_form(client, path, **fields).status_code == 422, path

    assert count_schedules(engine) == 1
    assert client.get("/v1/schedules/s1").json()["version"] == 1


def test_saving_the_edit_form_unchanged_keeps_every_field_of_the_schedule(
    client: TestClient,
) -> None:
    # Calendars, the in-calendar action and the success deadline have no input in the form:
    # the form carries them through from the stored schedule instead of resetting them.
    for name in ("weekend", "holidays"):
        assert client.put(f"/v1/calendars/{name}", json=WEEKEND).status_code == 201
    stored = put(
        client,
        "full",
        trigger={"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
        args=[1, "two"],
        kwargs={"format": "pdf", "pages": [1, 2]},
        queue="reports",
        priority=7,
        expires_seconds=90.5,
        misfire_grace_seconds=120,
        coalesce=False,
        overlap="buffer_one",
        jitter_seconds=2.5,
        retry={"max_attempts": 4, "backoff_seconds": 15, "backoff_max_seconds": 900},
        pause_after_failures=3,
        start_at="2026-11-22T00:00:00Z",
        end_at="2027-01-01T00:00:00Z",
        description="Nightly report\nwith two lines",
        labels={"team": "billing", "env": "prod"},
        exclude_calendars=["weekend", "holidays"],
        on_excluded="next_allowed",
        expect_success_within_seconds=1800,
        time_limit_seconds=600,
        soft_time_limit_seconds=540,
        exchange="reports",
        routing_key="reports.pdf",
        headers={"tenant": "acme"},
    )
    page = client.get("/ui/schedules/full/edit").text
    shown = form_fields(page, "schedule-form")
    assert shown["version"] == "1"

    saved = post_form(client, "/ui/schedules/full/edit", **{**shown, "description": "edited"})

    assert saved.status_code == 303, saved.text
    after = client.get("/v1/schedules/full").json()
    assert after["version"] == 2
    changed = {
        name: (stored[name], after[name])
        for name in SchedulePut.model_fields
        if name not in ("id", "description") and stored[name] != after[name]
    }
    assert changed == {}
    assert (after["exclude_calendars"], after["on_excluded"]) == (
        ["weekend", "holidays"],
        "next_allowed",
    )
    assert after["expect_success_within_seconds"] == 1800
    assert after["description"] == "edited"


def test_the_form_still_changes_the_fields_it_shows_when_others_are_carried(
    client: TestClient,
) -> None:
    assert client.put("/v1/calendars/weekend", json=WEEKEND).status_code == 201
    put(
        client,
        "cal",
        exclude_calendars=["weekend"],
        expect_success_within_seconds=60,
        retry={"max_attempts": 2},
    )
    shown = form_fields(client.get("/ui/schedules/cal/edit").text, "schedule-form")

    saved = post_form(
        client, "/ui/schedules/cal/edit", **{**shown, "retry.max_attempts": "", "queue": "other"}
    )

    assert saved.status_code == 303, saved.text
    after = client.get("/v1/schedules/cal").json()
    assert (after["retry"], after["queue"]) == (None, "other")
    assert (after["exclude_calendars"], after["expect_success_within_seconds"]) == (["weekend"], 60)
