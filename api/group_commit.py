"""Group commit of single creates: concurrent requests share one transaction.

Each create of its own costs a transaction: a few round trips and a durable commit, most
of a create's time on a loaded database. The single-create route is ``async``: it checks its
body on the event loop and queues the create here. One drain task at a time takes what is
queued (up to ``max_group`` schedules, one actor and reason, so each history entry keeps its
own who and why) and commits it in a worker thread, through the same
:func:`scheduler.store.schedule_creation.create_schedules` a batch uses; requests that
arrive meanwhile make up the next group. So 16 clients share a handful of transactions, and
a request costs no thread hop of its own: the store is reached once per group.

A shared transaction must not let one request's failure fail the others: when it fails,
each request of the group is committed again on its own, so every request gets exactly the
answer it would have got alone (two concurrent retries of one idempotency key even get a
create and a replay instead of a create and a 409).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from scheduler.store.history import Audit
from scheduler.store.schedule_creation import NewSchedule, create_schedules
from scheduler.store.schedule_spec import Row

log = logging.getLogger("sundial.api")

# Schedules committed in one shared transaction at most.
MAX_GROUP = 1000

Made = list[tuple[Row, bool]]


@dataclass(eq=False)
class _Create:
    """One request's creates, waiting to be committed."""

    new: Sequence[NewSchedule]
    now: datetime
    audit: Audit
    done: asyncio.Future[Made]
    # Set in the worker thread, handed to ``done`` on the event loop.
    result: Made | None = None
    error: BaseException | None = None

    def settle(self) -> None:
        if self.done.done():  # the request went away; its create stands
            return
        if self.error is not None:
            self.done.set_exception(self.error)
        elif self.result is not None:
            self.done.set_result(self.result)
        else:  # the drain itself was cancelled: the app is shutting down
            self.done.cancel()


class GroupCommitter:
    """Commits the creates of concurrent requests together (see the module's doc).

    ``announce`` is called in the worker thread with what each transaction made, once it is
    committed (the change notice: kept off the event loop).
    """

    def __init__(
        self,
        engine: Engine,
        announce: Callable[[Made], None],
        max_group: int = MAX_GROUP,
    ) -> None:
        self._engine = engine
        self._announce = announce
        self._max_group = max_group
        self._waiting: list[_Create] = []
        self._drain: asyncio.Task[None] | None = None
        self.groups = 0  # transactions committed for more than one request

    @property
    def waiting(self) -> int:
        """Requests queued behind the commit in progress."""
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether a drain is under way (committing a group, or about to take one)."""
        return self._drain is not None

    async def create(self, new: Sequence[NewSchedule], *, now: datetime, audit: Audit) -> Made:
        """:func:`create_schedules` of ``new`` (fresh ids), maybe in a shared transaction."""
        mine = _Create(new, now, audit, asyncio.get_running_loop().create_future())
        self._waiting.append(mine)
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_waiting())
        return await mine.done

    async def _drain_waiting(self) -> None:
        try:
            while self._waiting:
                group = self._take()
                try:
                    await asyncio.to_thread(self._commit, group)
                finally:
                    for one in group:
                        one.settle()
        finally:
            # Cut short (the app shutting down): no request may wait for a drain that ended.
            for one in self._waiting:
                one.settle()
            self._waiting = []
            self._drain = None

    def _take(self) -> list[_Create]:
        """The oldest waiting request and those after it by the same actor, for one reason,
        up to the group's size."""
        first = self._waiting[0]
        group: list[_Create] = []
        rest: list[_Create] = []
        size = 0
        for waiting in self._waiting:
            fits = size + len(waiting.new) <= self._max_group or not group
            if waiting.audit == first.audit and fits:
                group.append(waiting)
                size += len(waiting.new)
            else:
                rest.append(waiting)
        self._waiting = rest
        return group

    def _commit(self, group: list[_Create]) -> None:
        """In a worker thread: the group in one transaction, or each alone if that fails."""
        if len(group) > 1:
            try:
                made = self._commit_together(group)
            except Exception:  # each alone, for its own answer
                pass
            else:
                self.groups += 1
                self._announced(made)
                return
        for one in group:
            try:
                one.result = self._create(one.new, one.now, one.audit)
            except BaseException as exc:  # handed to the request that made it
                one.error = exc
            else:
                self._announced(one.result)

    def _commit_together(self, group: list[_Create]) -> Made:
        entries = [entry for one in group for entry in one.new]
        made = self._create(entries, max(one.now for one in group), group[0].audit)
        start = 0
        for one in group:
            one.result = made[start : start + len(one.new)]
            start += len(one.new)
        return made

    def _create(self, new: Sequence[NewSchedule], now: datetime, audit: Audit) -> Made:
        with self._engine.begin() as conn:
            return create_schedules(conn, new, now=now, audit=audit, fresh_ids=True)

    def _announced(self, made: Made) -> None:
        """The change notice of a committed transaction: best effort, since the creates
        stand whatever happens to it (the leader's periodic re-read covers a lost one)."""
        try:
            self._announce(made)
        except Exception:
            log.exception("group commit: announcing %d created schedules failed", len(made))
