"""Reading schedules: look-ups by id, filtered listing, free-text search, counts by state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Select, func, or_, select

from scheduler.errors import NotFound
from scheduler.store.models import runs, schedules
from scheduler.store.schedule_spec import Row

# Schedules a free-text search examines per call; see :func:`search_schedules`.
SEARCH_SCAN = 5000


def find_schedule(conn: Connection, schedule_id: str, *, for_update: bool = False) -> Row | None:
    """The schedule row, or None; ``for_update`` locks it until the transaction ends."""
    query = select(schedules).where(schedules.c.id == schedule_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def get_schedule(conn: Connection, schedule_id: str, *, for_update: bool = False) -> Row:
    """The schedule row, or :class:`NotFound`."""
    row = find_schedule(conn, schedule_id, for_update=for_update)
    if row is None:
        raise NotFound(f"no schedule {schedule_id!r}")
    return row


def list_schedules(
    conn: Connection,
    *,
    task: str | None = None,
    state: str | None = None,
    labels: Mapping[str, str] | None = None,
    after_id: str | None = None,
    limit: int = 100,
) -> list[Row]:
    """Schedules ordered by id, after ``after_id``, matching every given filter."""
    query = _filtered(select(schedules), task, state, labels, after_id).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def search_schedules(
    conn: Connection,
    text: str,
    *,
    task: str | None = None,
    state: str | None = None,
    labels: Mapping[str, str] | None = None,
    after_id: str | None = None,
    limit: int = 100,
    scan: int = SEARCH_SCAN,
) -> tuple[list[Row], str | None]:
    """Schedules whose id, task or description contains ``text`` (any case), among the
    next ``scan`` schedules in id order after ``after_id`` that match the other filters.

    Returns the matches (at most ``limit``) and the id to continue after, or None when the
    end was reached: a window of ``scan`` rows bounds each call however rare the text is.
    """
    window = _filtered(select(schedules.c.id), task, state, labels, after_id).limit(scan).subquery()
    needle = text.lower()
    matching = or_(
        func.lower(schedules.c.id).contains(needle, autoescape=True),
        func.lower(schedules.c.task).contains(needle, autoescape=True),
        func.lower(schedules.c.description).contains(needle, autoescape=True),
    )
    # A join, not IN: MariaDB refuses LIMIT inside an IN subquery.
    query = (
        select(schedules)
        .join(window, window.c.id == schedules.c.id)
        .where(matching)
        .order_by(schedules.c.id)
        .limit(limit + 1)
    )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1]["id"]
    scanned, last = conn.execute(select(func.count(), func.max(window.c.id))).one()
    return rows, (last if scanned >= scan else None)


def _filtered(
    query: Select[Any],
    task: str | None,
    state: str | None,
    labels: Mapping[str, str] | None,
    after_id: str | None,
) -> Select[Any]:
    query = query.order_by(schedules.c.id)
    if task is not None:
        query = query.where(schedules.c.task == task)
    if state is not None:
        query = query.where(schedules.c.state == state)
    for key, value in (labels or {}).items():
        query = query.where(schedules.c.labels[key].as_string() == value)
    if after_id is not None:
        query = query.where(schedules.c.id > after_id)
    return query


def count_by_state(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    """How many schedules and runs are in each state."""
    counts = []
    for table in (schedules, runs):
        result = conn.execute(select(table.c.state, func.count()).group_by(table.c.state))
        counts.append({state: int(n) for state, n in result})
    return counts[0], counts[1]
