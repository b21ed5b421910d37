"""Group commit of creates: concurrent single creates share one transaction.

Each create of its own costs a transaction: a few round trips and a durable commit, most
of a create's time on a loaded database. Requests that arrive while another create is
being committed wait, and are then committed together, through the same
:func:`scheduler.store.schedule_creation.create_schedules` a batch uses. No thread of its
own: the first waiting request commits for everyone queued (leader/follower), and hands the
lead to the oldest waiting request once its own create is done.

A shared transaction must not let one request's failure fail the others: when it fails,
each request of the group is committed again on its own, so every request gets exactly the
answer it would have got alone (two concurrent retries of one idempotency key even get a
create and a replay instead of a create and a 409). Only requests made by the same actor
with the same reason are grouped, so each history entry keeps its own who and why.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from scheduler.store.history import Audit
from scheduler.store.schedule_creation import NewSchedule, create_schedules
from scheduler.store.schedule_spec import Row

# Schedules committed in one shared transaction at most.
MAX_GROUP = 1000


@dataclass(eq=False)
class _Create:
    """One request's creates, waiting to be committed."""

    new: Sequence[NewSchedule]
    now: datetime
    audit: Audit
    wake: threading.Event = field(default_factory=threading.Event)
    promoted: bool = False
    finished: bool = False
    result: list[tuple[Row, bool]] | None = None
    error: BaseException | None = None

    def outcome(self) -> list[tuple[Row, bool]]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommitter:
    """Commits the creates of concurrent requests together (see the module's doc)."""

    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._max_group = max_group
        self._lock = threading.Lock()
        self._waiting: list[_Create] = []
        self._leading = False
        self.groups = 0  # transactions committed for more than one request

    @property
    def waiting(self) -> int:
        """Requests queued behind the commit in progress."""
        with self._lock:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether a request is committing."""
        with self._lock:
            return self._leading

    def create(
        self, new: Sequence[NewSchedule], *, now: datetime, audit: Audit
    ) -> list[tuple[Row, bool]]:
        """:func:`create_schedules` of ``new`` (fresh ids), maybe in a shared transaction."""
        mine = _Create(new, now, audit)
        with self._lock:
            self._waiting.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            mine.wake.wait()
            if not mine.promoted:
                return mine.outcome()
        while True:
            with self._lock:
                group = self._take()
            self._commit(group)
            with self._lock:
                if not self._waiting:
                    self._leading = False
                    break
                if mine.finished:
                    successor = self._waiting[0]
                    successor.promoted = True
                    successor.wake.set()
                    break
        return mine.outcome()

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
        if len(group) > 1:
            try:
                self._commit_together(group)
            except Exception:  # each alone, for its own answer
                pass
            else:
                self.groups += 1
                return
        for one in group:
            try:
                one.result = self._create(one.new, one.now, one.audit)
            except BaseException as exc:  # handed to the request that made it
                one.error = exc
            self._finish(one)

    def _commit_together(self, group: list[_Create]) -> None:
        entries = [entry for one in group for entry in one.new]
        made = self._create(entries, max(one.now for one in group), group[0].audit)
        start = 0
        for one in group:
            one.result = made[start : start + len(one.new)]
            start += len(one.new)
            self._finish(one)

    def _create(
        self, new: Sequence[NewSchedule], now: datetime, audit: Audit
    ) -> list[tuple[Row, bool]]:
        with self._engine.begin() as conn:
            return create_schedules(conn, new, now=now, audit=audit, fresh_ids=True)

    @staticmethod
    def _finish(one: _Create) -> None:
        one.finished = True
        one.wake.set()
