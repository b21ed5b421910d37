"""Publish-once markers on the real Redis: each run is pushed at most once, recognised while
unrecorded (for a day) and for a window or two after it is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from scheduler.firing.push_once import DAY_S, PREFIX, WINDOW_S, Message, PushOnce
from tests.clocks import FakeClock
from tests.services import unique_name

pytestmark = pytest.mark.services

# A day of its own, so the test's marker hashes are its own on the shared test Redis.
T0 = datetime(2003, 2, 1, 12, 0, 5, tzinfo=UTC)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url)
    try:
        yield made
    finally:
        day, window = int(T0.timestamp()) // DAY_S, int(T0.timestamp()) // WINDOW_S
        made.delete(
            *(f"{PREFIX}u:{d}" for d in range(day - 1, day + 3)),
            *(f"{PREFIX}r:{w}" for w in range(window - 1, window + 20)),
        )
        made.close()


def _messages(queue: str, *run_ids: str, list_key: str | None = None) -> list[Message]:
    return [Message(list_key or queue, run_id, f"body of {run_id}") for run_id in run_ids]


def _bodies(client: redis.Redis, key: str) -> list[str]:
    items: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
    return [item.decode() for item in reversed(items)]  # oldest first, as consumed


def test_each_run_is_pushed_once_in_order_across_lists(client: redis.Redis) -> None:
    queue, urgent = unique_name("q"), unique_name("q")
    once = PushOnce(client, FakeClock(T0))
    try:
        assert once.push(_messages(queue, "a", "b") + _messages(queue, "u1", list_key=urgent)) == [
            True,
            True,
            True,
        ]
        assert once.push(_messages(queue, "b", "c")) == [False, True]

        assert _bodies(client, queue) == ["body of a", "body of b", "body of c"]
        assert _bodies(client, urgent) == ["body of u1"]
    finally:
        client.delete(queue, urgent)


def test_a_run_is_recognised_until_recorded_then_for_one_or_two_windows(
    client: redis.Redis,
) -> None:
    queue, clock = unique_name("q"), FakeClock(T0)
    once = PushOnce(client, clock)
    try:
        once.push(_messages(queue, "run"))
        clock.now += timedelta(hours=23)  # still unrecorded: a new term must recognise it
        assert once.push(_messages(queue, "run")) == [False]

        once.recorded(["run"])
        clock.now += timedelta(seconds=WINDOW_S)  # a paused ex-leader's late push
        assert once.push(_messages(queue, "run")) == [False]
        clock.now += timedelta(seconds=WINDOW_S)
        assert once.push(_messages(queue, "run")) == [True]  # forgotten once recorded

        assert len(_bodies(client, queue)) == 2
        day = int(clock.now.timestamp()) // DAY_S
        assert 0 < client.ttl(f"{PREFIX}u:{day}") <= 2 * DAY_S
        window = int((clock.now - timedelta(seconds=2 * WINDOW_S)).timestamp()) // WINDOW_S
        assert 0 < client.ttl(f"{PREFIX}r:{window}") <= 3 * WINDOW_S
    finally:
        client.delete(queue)


def test_an_unrecorded_run_is_forgotten_after_two_days(client: redis.Redis) -> None:
    queue, clock = unique_name("q"), FakeClock(T0)
    once = PushOnce(client, clock)
    try:
        once.push(_messages(queue, "crashed"))
        clock.now += timedelta(days=2)
        assert once.push(_messages(queue, "crashed")) == [True]
    finally:
        client.delete(queue)


def test_a_forgotten_run_is_pushed_again_whether_recorded_or_not(client: redis.Redis) -> None:
    queue, clock = unique_name("q"), FakeClock(T0)
    once = PushOnce(client, clock)
    try:
        once.push(_messages(queue, "recorded", "unrecorded", "other"))
        once.recorded(["recorded"])
        once.forget(["recorded", "unrecorded"])

        assert once.push(_messages(queue, "recorded", "unrecorded", "other")) == [
            True,
            True,
            False,
        ]
    finally:
        client.delete(queue)
