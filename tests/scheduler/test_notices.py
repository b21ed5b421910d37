"""Change notices travel over the real Redis from notifier to listener."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from scheduler.leadership.notices import NoticeListener, RedisNotifier
from tests.services import unique_name, wait_for


def test_listener_hears_a_schedule_change(redis_url: str) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[str] = []
    got = threading.Event()

    def on_notice(schedule_id: str) -> None:
        heard.append(schedule_id)
        got.set()

    listener = NoticeListener(client, on_notice, channel=channel)
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        RedisNotifier(client, channel=channel).schedule_changed("nightly-report")
        assert got.wait(5)
        assert heard == ["nightly-report"]
    finally:
        listener.stop()
        client.close()


def test_notifier_logs_instead_of_failing_the_request_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="sundial.notices"):
        RedisNotifier(dead).schedule_changed("nightly-report")
    assert "nightly-report" in caplog.text


def test_a_burst_of_changes_is_announced_by_few_notices_the_last_after_it(
    redis_url: str,
) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[tuple[float, str]] = []
    listener = NoticeListener(
        client, lambda sid: heard.append((time.monotonic(), sid)), channel=channel
    )
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        notifier = RedisNotifier(client, channel=channel, min_interval_s=0.5)
        started = time.monotonic()
        for i in range(200):
            notifier.schedule_changed(f"s{i}")
        last_change = time.monotonic()
        # The first notice may itself arrive after the burst: wait for a second, trailing one.
        wait_for(lambda: len(heard) >= 2 and heard[-1][0] >= last_change, 5, "the trailing notice")
        # The first change is announced at once, the rest by one notice per interval, the
        # last of them sent after the last change.
        assert heard[0][1] == "s0"
        assert 2 <= len(heard) <= 2 + (last_change - started) / 0.5
        assert heard[-1][0] - started >= 0.5
    finally:
        listener.stop()
        client.close()
