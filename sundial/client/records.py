"""Client methods for what sundial keeps beside schedules and runs: exclusion calendars,
change history and audit, fire timelines, and alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sundial.client.calendars import Calendar, CalendarSpec, calendar_body
from sundial.client.history import Alert, Change, Timeline, TimelineEntry
from sundial.client.models import Page, Schedule
from sundial.client.transport import Params, Transport, put_optional, reason_header, rfc3339

T = TypeVar("T")


class RecordsClient(Transport):
    """Calendars, history, audit, timelines and alerts (a part of :class:`Client`)."""

    # Calendars

    def put_calendar(
        self,
        name: str,
        spec: CalendarSpec | Mapping[str, Any],
        *,
        reason: str | None = None,
    ) -> Calendar:
        """Create or replace a calendar; the schedules naming it are re-armed."""
        return self._model(
            Calendar,
            "PUT",
            f"/v1/calendars/{name}",
            json=calendar_body(spec),
            headers=reason_header(reason),
        )

    def get_calendar(self, name: str) -> Calendar:
        """One calendar, with the schedules that name it in ``used_by``."""
        return self._model(Calendar, "GET", f"/v1/calendars/{name}")

    def list_calendars(self, *, limit: int = 100, cursor: str | None = None) -> Page[Calendar]:
        """One page of calendars in name order."""
        params = _query(limit, cursor)
        return self._model(Page[Calendar], "GET", "/v1/calendars", params=params)

    def iter_calendars(self, *, page_size: int = 500) -> Iterator[Calendar]:
        """Every calendar, page after page."""
        return _every(lambda cursor: self.list_calendars(limit=page_size, cursor=cursor))

    def delete_calendar(self, name: str, *, reason: str | None = None) -> None:
        """Delete a calendar no schedule names (``Conflict`` naming them otherwise)."""
        self._send("DELETE", f"/v1/calendars/{name}", headers=reason_header(reason))

    # History and audit

    def history(
        self, schedule_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[Change]:
        """One page of a schedule's changes, newest first (kept after it is deleted)."""
        path = f"/v1/schedules/{schedule_id}/history"
        return self._model(Page[Change], "GET", path, params=_query(limit, cursor))

    def iter_history(self, schedule_id: str, *, page_size: int = 500) -> Iterator[Change]:
        """Every change of a schedule, newest first."""
        return _every(lambda cursor: self.history(schedule_id, limit=page_size, cursor=cursor))

    def audit(
        self,
        *,
        actor: Sequence[str] = (),
        kind: Sequence[str] = (),
        schedule_id: str | None = None,
        calendar: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Change]:
        """One page of every change to any schedule or calendar, newest first, filtered
        (``at`` in ``[since, until)``; several actors or kinds match any of them)."""
        params = _query(
            limit,
            cursor,
            since=since,
            until=until,
            actor=actor,
            kind=kind,
            schedule_id=schedule_id,
            calendar=calendar,
        )
        return self._model(Page[Change], "GET", "/v1/audit", params=params)

    def iter_audit(self, *, page_size: int = 500, **filters: Any) -> Iterator[Change]:
        """Every matching change, newest first, page after page (filters as :meth:`audit`)."""
        return _every(lambda cursor: self.audit(limit=page_size, cursor=cursor, **filters))

    def restore(self, schedule_id: str, version: int, *, reason: str | None = None) -> Schedule:
        """Make version ``version``'s spec current again, as a new version; a deleted
        schedule is made again."""
        path = f"/v1/schedules/{schedule_id}/history/{version}/restore"
        return self._model(Schedule, "POST", path, headers=reason_header(reason))

    # Timeline

    def timeline(
        self,
        schedule_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Timeline:
        """One page of the instants the trigger planned in ``[since, until)`` (default: the
        last day; at most 366 days), oldest first, each with its run or why there is none."""
        params = _query(limit, cursor, since=since, until=until)
        path = f"/v1/schedules/{schedule_id}/timeline"
        return self._model(Timeline, "GET", path, params=params)

    def iter_timeline(
        self,
        schedule_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[TimelineEntry]:
        """Every planned instant of the window, oldest first, page after page. Without
        ``until`` the window ends at the first page's ``until`` (then "now"), so later
        pages continue the same window."""
        first = self.timeline(schedule_id, since=since, until=until, limit=page_size)
        yield from first.items
        cursor = first.next_cursor
        while cursor is not None:
            page = self.timeline(
                schedule_id, since=first.since, until=first.until, limit=page_size, cursor=cursor
            )
            yield from page.items
            cursor = page.next_cursor

    # Alerts

    def alerts(
        self,
        *,
        schedule_id: str | None = None,
        kind: Sequence[str] = (),
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Alert]:
        """One page of alerts, newest first; ``state`` is ``open`` or ``resolved``."""
        params = _query(
            limit, cursor, since=since, until=until, kind=kind, schedule_id=schedule_id, state=state
        )
        return self._model(Page[Alert], "GET", "/v1/alerts", params=params)

    def iter_alerts(self, *, page_size: int = 500, **filters: Any) -> Iterator[Alert]:
        """Every matching alert, newest first (filters as :meth:`alerts`)."""
        return _every(lambda cursor: self.alerts(limit=page_size, cursor=cursor, **filters))

    def alert(self, alert_id: int) -> Alert:
        """One alert."""
        return self._model(Alert, "GET", f"/v1/alerts/{alert_id}")


def _query(
    limit: int,
    cursor: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    **filters: str | Sequence[str] | None,
) -> Params:
    """Query parameters: the page, the time window, and the filters given (a sequence is
    a repeated parameter; None and empty ones are left out)."""
    params: Params = {"limit": limit}
    put_optional(
        params,
        cursor=cursor,
        since=rfc3339(since) if since else None,
        until=rfc3339(until) if until else None,
    )
    for name, value in filters.items():
        if isinstance(value, str):
            params[name] = value
        elif value:
            params[name] = list(value)
    return params


def _every(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """The items of every page ``fetch(cursor)`` returns, following ``next_cursor``."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
