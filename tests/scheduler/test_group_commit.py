"""Group commit: creates queued behind a commit in progress share the next transaction, and
a failure in a group still gives every request its own answer. Real threads, real store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from api.schedule_schemas import ScheduleCreate
from scheduler.errors import InvalidSchedule
from scheduler.store.db import is_mysql
from scheduler.store.group_commit import GroupCommitter
from scheduler.store.history import Audit
from scheduler.store.models import changes, schedules
from scheduler.store.schedule_creation import NewSchedule, new_ids
from scheduler.store.schedule_spec import ScheduleValues
from tests.services import wait_for

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


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


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in a thread of its own, started in order; results or exceptions."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return [out, threads]  # filled in as the threads finish


def _queued(committer: GroupCommitter, n: int) -> None:
    wait_for(lambda: committer.busy and committer.waiting == n, 10, f"{n} creates queued")


def _behind_a_blocked_leader(
    engine: Engine, committer: GroupCommitter, calls: list[Callable[[], Any]]
) -> list[Any]:
    """Run the first call until it leads, blocked in its transaction, queue the others
    behind it, then let the store go; each call's result or exception, in order."""
    with _writes_blocked(engine):
        out, threads = _in_threads(calls[:1])
        _queued(committer, 0)
        more, more_threads = _in_threads(calls[1:])
        _queued(committer, len(calls) - 1)
    for thread in [*threads, *more_threads]:
        thread.join(30)
    return [*out, *more]


@pytest.fixture
def committer(engine: Engine) -> GroupCommitter:
    return GroupCommitter(engine)


def _create(
    committer: GroupCommitter, values: ScheduleValues, actor: str = "a"
) -> Callable[[], Any]:
    return lambda: committer.create(
        [NewSchedule(new_ids(1)[0], values)], now=NOW, audit=Audit(actor)
    )


def test_creates_queued_behind_a_commit_share_the_next_transaction(
    engine: Engine, committer: GroupCommitter
) -> None:
    calls = [_create(committer, _values(kwargs={"n": i})) for i in range(6)]
    results = _behind_a_blocked_leader(engine, committer, calls)

    assert committer.groups == 1
    with engine.connect() as conn:
        stored = {r.id: r.kwargs["n"] for r in conn.execute(select(schedules))}
    assert {row["id"]: row["kwargs"]["n"] for [(row, replayed)] in results} == stored
    assert sorted(stored.values()) == list(range(6))


def test_a_failing_create_in_a_group_fails_alone(engine: Engine, committer: GroupCommitter) -> None:
    bad = _values(exclude_calendars=["no-such-calendar"])
    calls = [_create(committer, _values()), _create(committer, bad), _create(committer, _values())]
    results = _behind_a_blocked_leader(engine, committer, calls)

    assert isinstance(results[1], InvalidSchedule)
    assert isinstance(results[2], list) and isinstance(results[0], list)
    assert committer.groups == 0
    with engine.connect() as conn:
        assert len(conn.execute(select(schedules)).all()) == 2


def test_creates_of_different_actors_are_not_grouped(
    engine: Engine, committer: GroupCommitter
) -> None:
    calls = [_create(committer, _values(), actor) for actor in ("a", "b", "c", "b")]
    results = _behind_a_blocked_leader(engine, committer, calls)

    assert committer.groups == 1  # the two of b
    by_id = {row["id"]: actor for [(row, _)], actor in zip(results, "abcb", strict=True)}
    with engine.connect() as conn:
        recorded = {r.schedule_id: r.actor for r in conn.execute(select(changes))}
    assert recorded == by_id
