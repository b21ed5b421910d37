"""The calendar repository: named exclusion calendars in SQL, which schedules use them, and
the compiled :class:`~scheduler.timing.exclusions.Calendar` objects the fire path evaluates."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.errors import Conflict, InvalidSchedule
from scheduler.store.history import Audit, Kind, record_change
from scheduler.store.models import calendars, schedule_calendars
from scheduler.store.reads import one_row
from scheduler.timing.calendar_rules import CalendarRule
from scheduler.timing.exclusions import Calendar

Row = dict[str, Any]
_rules = TypeAdapter(list[CalendarRule])


class CalendarSpec(BaseModel):
    """What a calendar excludes: any number of rules, any of which excludes an instant."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "description": "Bavarian public holidays and weekends",
                    "rules": [
                        {"type": "holidays", "country": "DE", "subdivision": "BY"},
                        {"type": "weekly", "days": ["sat-sun"]},
                    ],
                },
                {
                    "rules": [
                        {"type": "dates", "dates": ["2026-12-24", "2026-12-31"]},
                        {"type": "date_range", "start": "2026-08-01", "end": "2026-08-15"},
                        {
                            "type": "weekly",
                            "days": ["mon-fri"],
                            "start_time": "12:00",
                            "end_time": "13:00",
                        },
                    ]
                },
            ]
        },
    )

    description: str = Field(default="", max_length=10_000)
    rules: list[CalendarRule] = Field(min_length=1, max_length=100)

    def document(self) -> dict[str, Any]:
        """The spec as stored and returned."""
        return self.model_dump(mode="json")


def compile_row(row: Mapping[Any, Any]) -> Calendar:
    """The evaluable form of a stored calendar."""
    return Calendar(row["name"], row["version"], _rules.validate_python(row["rules"]))


class CalendarCache:
    """Compiled calendars by name, rebuilt only when a calendar's version changes: an ICS
    file is parsed, and a holiday year computed, once per version rather than per claim."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compiled: dict[str, Calendar] = {}

    def load(self, conn: Connection, names: Iterable[str]) -> dict[str, Calendar]:
        """The named calendars as stored now (absent names are left out)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        versions = dict(
            conn.execute(
                select(calendars.c.name, calendars.c.version).where(calendars.c.name.in_(wanted))
            ).all()
        )
        with self._lock:
            have = {n: c.version for n, c in self._compiled.items()}
        stale = [n for n, v in versions.items() if have.get(n) != v]
        if stale:
            rows = conn.execute(select(calendars).where(calendars.c.name.in_(stale))).mappings()
            fresh = {row["name"]: compile_row(row) for row in rows}
            with self._lock:
                self._compiled.update(fresh)
        with self._lock:
            return {n: self._compiled[n] for n in versions if n in self._compiled}


def load_calendars(conn: Connection, names: Iterable[str]) -> dict[str, Calendar]:
    """The named calendars, compiled afresh (for writes and previews)."""
    return CalendarCache().load(conn, names)


def get_calendar(conn: Connection, name: str) -> Row:
    """The calendar row, or :class:`NotFound`."""
    return one_row(conn, calendars, calendars.c.name, name, f"no calendar {name!r}")


def list_calendars(conn: Connection, *, after: str | None = None, limit: int = 100) -> list[Row]:
    """Calendars in name order, after ``after``."""
    query = select(calendars).order_by(calendars.c.name).limit(limit)
    if after is not None:
        query = query.where(calendars.c.name > after)
    return [dict(row) for row in conn.execute(query).mappings()]


def users_of(conn: Connection, name: str) -> list[str]:
    """Ids of the schedules that name the calendar."""
    query = select(schedule_calendars.c.schedule_id).where(schedule_calendars.c.calendar == name)
    return sorted(row[0] for row in conn.execute(query))


def put_calendar(
    conn: Connection, name: str, spec: CalendarSpec, now: datetime, audit: Audit
) -> tuple[Row, bool]:
    """Create or replace a calendar; ``(row, True)`` when it was created."""
    document = spec.document()
    current = (
        conn.execute(select(calendars).where(calendars.c.name == name).with_for_update())
        .mappings()
        .first()
    )
    if current is None:
        row: Row = {"name": name, **document, "version": 1, "created_at": now, "updated_at": now}
        try:
            with conn.begin_nested():
                conn.execute(insert(calendars).values(**row))
        except IntegrityError as exc:
            raise Conflict(f"calendar {name!r} was created meanwhile") from exc
        record_change(conn, audit, Kind.CALENDAR_CREATE, now, calendar=name, after=document)
        return row, True
    before = {"description": current["description"], "rules": current["rules"]}
    row = {**current, **document, "version": current["version"] + 1, "updated_at": now}
    conn.execute(
        update(calendars)
        .where(calendars.c.name == name)
        .values(**document, version=row["version"], updated_at=now)
    )
    record_change(
        conn, audit, Kind.CALENDAR_UPDATE, now, calendar=name, before=before, after=document
    )
    return row, False


def delete_calendar(conn: Connection, name: str, now: datetime, audit: Audit) -> None:
    """Delete a calendar no schedule names; :class:`Conflict` naming the ones that do."""
    get_calendar(conn, name)
    using = users_of(conn, name)
    if using:
        shown = ", ".join(using[:10]) + (" …" if len(using) > 10 else "")
        raise Conflict(f"calendar {name!r} is used by schedule(s) {shown}")
    try:
        with conn.begin_nested():
            conn.execute(delete(calendars).where(calendars.c.name == name))
    except IntegrityError as exc:  # a schedule named it meanwhile
        raise Conflict(f"calendar {name!r} is in use") from exc
    record_change(conn, audit, Kind.CALENDAR_DELETE, now, calendar=name)


def link_calendars(conn: Connection, schedule_id: str, names: Sequence[str]) -> None:
    """Record which calendars the schedule names; :class:`InvalidSchedule` for unknown ones."""
    if names:
        known = set(
            conn.execute(select(calendars.c.name).where(calendars.c.name.in_(names))).scalars()
        )
        missing = [n for n in names if n not in known]
        if missing:
            raise InvalidSchedule("exclude_calendars", f"no calendar named {missing[0]!r}")
    conn.execute(delete(schedule_calendars).where(schedule_calendars.c.schedule_id == schedule_id))
    if names:
        conn.execute(
            insert(schedule_calendars),
            [{"schedule_id": schedule_id, "calendar": n} for n in dict.fromkeys(names)],
        )
