"""Group commit: creates queued behind a commit in progress share the next transaction, and
a failure in a group still gives every request its own answer. A real event loop, real
worker threads, the real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from api.group_commit import GroupCommitter, Made
from api.schedule_schemas import ScheduleCreate
from scheduler.errors import InvalidSchedule
from scheduler.store.db import is_mysql
from scheduler.store.history import Audit
from scheduler.store.models import changes, schedules
from scheduler.store.schedule_creation import NewSchedule, new_ids
from scheduler.store.schedule_spec import ScheduleValues

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

Call = Callable[[], Coroutine[Any, Any, Made]]


def _values(**fields: Any) -> ScheduleValues:
    """What the API passes for a create of an interval schedule with ``fields`` set."""
    body = {"task": "reports.generate", "trigger": {"type": "interval", "seconds": 60}, **fields}
    return ScheduleCreate.model_validate(body).to_values(NOW)


@contextmanager
def _writes_blocked(engine: Engine) -> Iterator[None]:
    """Hold the store's write lock from another connection for the block."""
    with engine.connect() as blocker:
        if is_mysql(engine.dialect):
            # A plain transaction blocks no INSERT there: lock the table for this session.
            blocker.execute(text("LOCK TABLES schedules WRITE"))
            try:
                yield
            finally:
                blocker.execute(text("UNLOCK TABLES"))
            return
        blocker.begin()
        if engine.dialect.name == "postgresql":
            blocker.execute(text("LOCK TABLE schedules IN EXCLUSIVE MODE"))
        yield
        blocker.rollback()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _behind_a_blocked_commit(
    engine: Engine, committer: GroupCommitter, calls: list[Call]
) -> list[Any]:
    """Start the first call and let its commit block in the store, queue the others
    behind it, then let the store go; each call's result or exception, in order."""

    async def scenario() -> list[Any]:
        with _writes_blocked(engine):
            first = asyncio.create_task(calls[0]())
            await _until(lambda: committer.busy and committer.waiting == 0, "the first commit")
            rest = [asyncio.create_task(call()) for call in calls[1:]]
            await _until(lambda: committer.waiting == len(rest), f"{len(rest)} creates queued")
        return await asyncio.gather(first, *rest, return_exceptions=True)

    return asyncio.run(scenario())


@pytest.fixture
def announced() -> list[Made]:
    return []


@pytest.fixture
def committer(engine: Engine, announced: list[Made]) -> GroupCommitter:
    return GroupCommitter(engine, announce=announced.append)


def _create(committer: GroupCommitter, values: ScheduleValues, actor: str = "a") -> Call:
    return lambda: committer.create(
        [NewSchedule(new_ids(1)[0], values)], now=NOW, audit=Audit(actor)
    )


def test_creates_queued_behind_a_commit_share_the_next_transaction(
    engine: Engine, committer: GroupCommitter, announced: list[Made]
) -> None:
    calls = [_create(committer, _values(kwargs={"n": i})) for i in range(6)]
    results = _behind_a_blocked_commit(engine, committer, calls)

    assert committer.groups == 1
    with engine.connect() as conn:
        stored = {r.id: r.kwargs["n"] for r in conn.execute(select(schedules))}
    assert {row["id"]: row["kwargs"]["n"] for [(row, replayed)] in results} == stored
    assert sorted(stored.values()) == list(range(6))
    # One announcement per transaction, after it: the first create's, then the group's.
    assert [len(made) for made in announced] == [1, 5]
    assert not committer.busy


def test_a_failing_create_in_a_group_fails_alone(
    engine: Engine, committer: GroupCommitter, announced: list[Made]
) -> None:
    bad = _values(exclude_calendars=["no-such-calendar"])
    calls = [_create(committer, _values()), _create(committer, bad), _create(committer, _values())]
    results = _behind_a_blocked_commit(engine, committer, calls)

    assert isinstance(results[1], InvalidSchedule)
    assert isinstance(results[2], list) and isinstance(results[0], list)
    assert committer.groups == 0
    with engine.connect() as conn:
        assert len(conn.execute(select(schedules)).all()) == 2
    assert [len(made) for made in announced] == [1, 1]  # nothing for the failed one


def test_creates_of_different_actors_are_not_grouped(
    engine: Engine, committer: GroupCommitter
) -> None:
    calls = [_create(committer, _values(), actor) for actor in ("a", "b", "c", "b")]
    results = _behind_a_blocked_commit(engine, committer, calls)

    assert committer.groups == 1  # the two of b
    by_id = {row["id"]: actor for [(row, _)], actor in zip(results, "abcb", strict=True)}
    with engine.connect() as conn:
        recorded = {r.schedule_id: r.actor for r in conn.execute(select(changes))}
    assert recorded == by_id


def test_a_request_that_goes_away_leaves_its_create_and_the_others_standing(
    engine: Engine, committer: GroupCommitter
) -> None:
    async def scenario() -> list[Any]:
        with _writes_blocked(engine):
            first = asyncio.create_task(_create(committer, _values())())
            await _until(lambda: committer.busy and committer.waiting == 0, "the first commit")
            gone = asyncio.create_task(_create(committer, _values(kwargs={"n": 1}))())
            kept = asyncio.create_task(_create(committer, _values(kwargs={"n": 2}))())
            await _until(lambda: committer.waiting == 2, "2 creates queued")
            gone.cancel()  # as when the client disconnects
        return list(await asyncio.gather(first, gone, kept, return_exceptions=True))

    results = asyncio.run(scenario())

    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2][0][0]["kwargs"] == {"n": 2}
    with engine.connect() as conn:
        assert len(conn.execute(select(schedules)).all()) == 3


def test_a_failed_announcement_leaves_every_create_answered_once(engine: Engine) -> None:
    def announce(_made: Made) -> None:
        raise RuntimeError("can't start new thread")

    committer = GroupCommitter(engine, announce=announce)
    calls = [_create(committer, _values(kwargs={"n": i})) for i in range(4)]
    results = _behind_a_blocked_commit(engine, committer, calls)

    # The group committed once, announced or not: no create is made again, none refused.
    assert committer.groups == 1
    assert [replayed for [(_, replayed)] in results] == [False] * 4
    with engine.connect() as conn:
        assert len(conn.execute(select(schedules)).all()) == 4
