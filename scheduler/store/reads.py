"""What the store's reads share: one row by its key (or :class:`NotFound`), and the
``[since, until)`` window and the cursor of a newest-first list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, or_, select
from sqlalchemy.sql import ColumnElement

from scheduler.errors import NotFound
from scheduler.store.models import runs


def one_row(
    conn: Connection, table: Table, key: ColumnElement[Any], value: object, missing: str
) -> dict[str, Any]:
    """The row of ``table`` whose ``key`` is ``value``, or :class:`NotFound` saying
    ``missing``."""
    row = conn.execute(select(table).where(key == value)).mappings().first()
    if row is None:
        raise NotFound(missing)
    return dict(row)


def in_window(
    query: Select[Any], column: ColumnElement[Any], since: datetime | None, until: datetime | None
) -> Select[Any]:
    """``query`` kept to rows whose ``column`` is in ``[since, until)``; an end that is
    None is open."""
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def newest_first(
    table: Table,
    at: ColumnElement[Any],
    *,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> Select[Any]:
    """At most ``limit`` rows of ``table``, highest ``id`` first, ``at`` in
    ``[since, until)``, ids below ``before_id`` (the page before it)."""
    query = in_window(select(table).order_by(table.c.id.desc()).limit(limit), at, since, until)
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    return query


def runs_newest_first(
    *conditions: ColumnElement[bool],
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Select[Any]:
    """At most ``limit`` runs meeting ``conditions``, newest first (``scheduled_for``, then
    id), scheduled in ``[since, until)``, strictly after the cursor ``before``."""
    query = in_window(
        select(runs)
        .where(*conditions)
        .order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
        .limit(limit),
        runs.c.scheduled_for,
        since,
        until,
    )
    if before is not None:
        at, run_id = before
        query = query.where(
            or_(runs.c.scheduled_for < at, and_(runs.c.scheduled_for == at, runs.c.id < run_id))
        )
    return query
