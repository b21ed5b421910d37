"""Change notices travel over the real Redis from notifier to listener."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.leadership.notices import Notice, NoticeListener, RedisNotifier
from tests.services import unique_name, wait_for

DUE = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)


def test_listener_hears_a_schedule_change(redis_url: str) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[Notice] = []
    got = threading.Event()

    def on_notice(notice: Notice) -> None:
        heard.append(notice)
        got.set()

    listener = NoticeListener(client, on_notice, channel=channel)
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        RedisNotifier(client, channel=channel).schedule_changed("nightly-report", DUE)
        assert got.wait(5)
        assert heard == [Notice("nightly-report", DUE)]
    finally:
        listener.stop()
        client.close()


def test_notifier_logs_instead_of_failing_the_request_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No retries: redis-py's default retries with a backoff of seconds before it fails.
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    with caplog.at_level(logging.WARNING, logger="sundial.notices"):
        RedisNotifier(dead).schedule_changed("nightly-report")
        wait_for(lambda: "nightly-report" in caplog.text, 10, "the failure logged")


def test_a_change_never_waits_on_a_redis_that_does_not_answer() -> None:
    # A server that takes connections but never answers: a publish waits its full timeout.
    with socket.create_server(("127.0.0.1", 0)) as mute:
        client = redis.Redis(
            host="127.0.0.1",
            port=mute.getsockname()[1],
            socket_timeout=3,
            retry=Retry(NoBackoff(), 0),
        )
        notifier = RedisNotifier(client, min_interval_s=0)
        notifier.schedule_changed("s0")
        wait_for(lambda: not notifier.pending, 5, "the sender to take the change")
        # The sender now waits on the mute server; changes still return at once.
        started = time.monotonic()
        for i in range(1, 4):
            notifier.schedule_changed(f"s{i}")
        returned = time.monotonic() - started
        assert notifier.pending
        client.close()
    assert returned < 1.5  # not the 3 s a publish waits
    # The server gone, the rest are refused and logged, within the test.
    wait_for(lambda: not notifier.pending, 10, "the sender to give up on the rest")


def test_a_burst_of_changes_is_announced_by_few_notices_the_last_after_it(
    redis_url: str,
) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[tuple[float, str]] = []
    listener = NoticeListener(
        client, lambda notice: heard.append((time.monotonic(), notice.schedule_id)), channel=channel
    )
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        notifier = RedisNotifier(client, channel=channel, min_interval_s=0.5)
        started = time.monotonic()
        for i in range(200):
            notifier.schedule_changed(f"s{i}")
        last_change = time.monotonic()
        # Nothing pending after the last change: a notice taken after it covers it.
        wait_for(
            lambda: not notifier.pending and bool(heard) and heard[-1][0] >= last_change,
            5,
            "the last change announced",
        )
        # The first change is announced at once (the changes made before the sender got to
        # it join that notice), the rest by one notice per interval.
        assert heard[0][1] == "s0"
        assert 1 <= len(heard) <= 2 + (last_change - started) / 0.5
    finally:
        listener.stop()
        client.close()


def test_a_notice_reads_back_as_sent_and_a_bare_schedule_id_asks_to_look_now() -> None:
    for notice in (Notice("a", DUE), Notice("b"), Notice('{"id"')):
        assert Notice.decode(notice.encode()) == notice
    # What an API from before notices carried their instant sends.
    assert Notice.decode("nightly-report") == Notice("nightly-report")
    assert Notice.decode("123") == Notice("123")


def test_changes_sharing_a_notice_are_due_by_the_earliest_and_one_of_no_instant_looks_now(
    redis_url: str,
) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[Notice] = []
    listener = NoticeListener(client, heard.append, channel=channel)
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        # A clock that stands still: every change after the first falls within the
        # interval, however slowly the machine runs; the timers still wait 0.3 s.
        notifier = RedisNotifier(client, channel=channel, min_interval_s=0.3, clock=lambda: 0.0)
        notifier.schedule_changed("first", DUE)  # sent at once
        wait_for(lambda: len(heard) == 1, 5, "the first notice")
        notifier.schedule_changed("later", DUE + timedelta(hours=1))
        notifier.schedule_changed("earlier", DUE - timedelta(hours=1))
        wait_for(lambda: len(heard) == 2, 5, "the trailing notice")
        notifier.schedule_changed("timed", DUE)
        notifier.schedule_changed("untimed")
        wait_for(lambda: len(heard) == 3, 5, "the next trailing notice")

        assert heard == [
            Notice("first", DUE),
            Notice("later", DUE - timedelta(hours=1)),
            Notice("timed"),
        ]
    finally:
        listener.stop()
        client.close()


def test_a_notice_with_a_naive_instant_asks_to_look_now() -> None:
    naive = '{"id": "s", "due": "2030-01-01T03:00:00"}'
    assert Notice.decode(naive) == Notice("s")


def test_a_notice_whose_handling_fails_does_not_end_the_listening(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    channel = unique_name("sundial:test:changes")
    client = redis.Redis.from_url(redis_url)
    heard: list[str] = []

    def on_notice(notice: Notice) -> None:
        if notice.schedule_id == "bad":
            raise TypeError("cannot compare")
        heard.append(notice.schedule_id)

    listener = NoticeListener(client, on_notice, channel=channel)
    listener.start()
    try:
        wait_for(listener.subscribed.is_set, 5, "subscription")
        with caplog.at_level(logging.ERROR, logger="sundial.notices"):
            client.publish(channel, Notice("bad").encode())
            client.publish(channel, Notice("good").encode())
            wait_for(lambda: heard == ["good"], 5, "the notice after the bad one")
        assert "bad" in caplog.text
    finally:
        listener.stop()
        client.close()
