"""Alerts at the store level on both stores: success deadlines raised once, final failures
and automatic pauses, resolution on the next success; delivery to a real local HTTP
receiver, HMAC-signed, retried with backoff, behind the SSRF guard."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, select

from scheduler.firing.claim import claim_due
from scheduler.runs.alert_watch import AlertWatcher, retry_delay
from scheduler.runs.alert_webhook import AlertWebhook
from scheduler.runs.alerts import list_alerts
from scheduler.runs.outcomes import record_outcome
from scheduler.store.history import list_changes
from scheduler.store.models import RunState, alerts
from tests.factories import add_schedule, runs_of, schedule
from tests.scheduler.conftest import Receiver

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}
SECRET = "hmac-secret-value"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _alerts(engine: Engine, **filters: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return list(reversed(list_alerts(conn, **filters)))


def _watcher(engine: Engine, webhook: AlertWebhook | None = None) -> AlertWatcher:
    return AlertWatcher(engine, timedelta(seconds=1), webhook)


def test_a_fire_not_succeeded_within_its_deadline_raises_one_alert(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, expect_success_within_seconds=5)
    (fire,) = claim_due(engine, at(10), token, 10).dispatches
    watcher = _watcher(engine)
    watcher.step(at(14))
    assert _alerts(engine) == []
    watcher.step(at(16))
    watcher.step(at(17))
    (alert,) = _alerts(engine)
    assert (alert["kind"], alert["scheduled_for"], alert["run_id"]) == (
        "deadline",
        at(10),
        fire.run_id,
    )
    assert "within 5s" in alert["message"] and alert["notify"] == "raised"
    # Another leader looking back over the same window raises nothing new.
    _watcher(engine).step(at(18))
    assert len(_alerts(engine)) == 1


def test_a_fire_that_succeeded_in_time_raises_nothing(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, expect_success_within_seconds=5)
    (fire,) = claim_due(engine, at(10), token, 10).dispatches
    record_outcome(engine, fire.run_id, RunState.SUCCEEDED, {"finished_at": at(12)}, at(12))
    _watcher(engine).step(at(30))
    assert _alerts(engine) == []


def test_a_missed_fire_breaches_and_the_next_success_resolves(engine: Engine, token: int) -> None:
    add_schedule(
        engine, "s", EVERY_10S, T0, expect_success_within_seconds=5, misfire_grace_seconds=1
    )
    claim_due(engine, at(13), token, 10)  # 3 s late: missed
    watcher = _watcher(engine)
    watcher.step(at(16))
    (alert,) = _alerts(engine)
    assert "missed" in alert["message"]
    (fire,) = claim_due(engine, at(20), token, 10).dispatches
    record_outcome(engine, fire.run_id, RunState.SUCCEEDED, {"finished_at": at(21)}, at(21))
    watcher.step(at(22))
    (alert,) = _alerts(engine)
    assert alert["resolved_at"] == at(22) and alert["notify"] == "resolved"


def test_a_final_failure_and_an_automatic_pause_raise_alerts_and_history(
    engine: Engine, token: int
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, pause_after_failures=1)
    (fire,) = claim_due(engine, at(10), token, 10).dispatches
    error = {"type": "ValueError", "message": "boom", "traceback": None}
    record_outcome(
        engine, fire.run_id, RunState.FAILED, {"finished_at": at(11), "error": error}, at(11)
    )
    kinds = [(a["kind"], a["run_id"]) for a in _alerts(engine)]
    assert kinds == [("failure", fire.run_id), ("paused", None)]
    assert "ValueError: boom" in _alerts(engine)[0]["message"]
    with engine.connect() as conn:
        (change,) = list_changes(conn, schedule_id="s")
    assert (change["kind"], change["actor"], change["state"]) == (
        "auto_pause",
        "scheduler",
        "paused",
    )
    assert change["version"] == schedule(engine, "s")["version"] == 2
    assert "1 consecutive failed" in change["reason"]


def test_delivery_is_signed_retried_with_backoff_and_then_recorded(
    engine: Engine, token: int, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.answers = [503]
    webhook = AlertWebhook(url, SecretStr(SECRET), allowed_hosts=["127.0.0.1"])
    add_schedule(engine, "s", EVERY_10S, T0, expect_success_within_seconds=5)
    claim_due(engine, at(10), token, 10)
    watcher = _watcher(engine, webhook)
    watcher.step(at(16))  # raised; the receiver answers 503
    (alert,) = _alerts(engine)
    assert (alert["notify"], alert["notify_attempts"]) == ("raised", 1)
    assert alert["notify_next_at"] == at(16) + retry_delay(1) and "503" in alert["notify_error"]
    watcher.step(at(17))  # not yet due again
    assert len(handler.received) == 1
    watcher.step(at(19))
    (alert,) = _alerts(engine)
    assert alert["notify"] is None and alert["notified_at"] == at(19)
    headers, body = handler.received[-1]
    expected = hmac.new(
        SECRET.encode(), headers["X-Sundial-Timestamp"].encode() + b"." + body, hashlib.sha256
    )
    assert headers["X-Sundial-Signature"] == f"sha256={expected.hexdigest()}"
    assert headers["X-Sundial-Event"] == "raised"
    document = json.loads(body)
    assert document["text"].startswith("🚨 sundial alert (deadline)")
    assert document["alert"]["schedule_id"] == "s" and document["event"] == "raised"


def test_a_refused_target_is_given_up_without_sending(
    engine: Engine, token: int, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    webhook = AlertWebhook(url, SecretStr(SECRET))  # loopback, not allow-listed
    add_schedule(engine, "s", EVERY_10S, T0, expect_success_within_seconds=5)
    claim_due(engine, at(10), token, 10)
    _watcher(engine, webhook).step(at(16))
    (alert,) = _alerts(engine)
    assert alert["notify"] is None and "loopback" in alert["notify_error"]
    assert handler.received == []
    assert SECRET not in alert["notify_error"]


def test_runs_of_skipped_fires_expect_nothing(engine: Engine, token: int) -> None:
    add_schedule(engine, "s", EVERY_10S, T0, expect_success_within_seconds=5)
    claim_due(engine, at(35), token, 10)  # 10, 20 coalesced into 30
    with engine.connect() as conn:
        assert conn.execute(select(alerts)).first() is None
    _watcher(engine).step(at(36))
    assert [a["scheduled_for"] for a in _alerts(engine)] == [at(30)]
    assert [r["state"] for r in runs_of(engine, "s")] == ["skipped", "skipped", "pending"]
