"""The clock-skew guard: a replica whose wall clock disagrees with the database's fires
nothing and takes no lease (FAULTS.md scenarios 14 and 15; Quartz's cluster check-in).

Fires are recorded against the leader's own wall clock. Stepped an hour forward, it would
record an hour of future fires now; stepped an hour back, it would fire nothing for an
hour. The database is the one clock every replica shares: each claim, relay and lease
acquisition reads it in its own transaction and stops when the local clock is off by more
than the allowed skew. The leader then steps down, and a replica whose clock agrees leads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select

from scheduler.errors import ClockSkew
from scheduler.timing.clock import Clock, utcnow


def database_now(conn: Connection) -> datetime | None:
    """The database server's wall clock, in UTC; None for SQLite, which is a file on this
    host read with this host's clock."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        value = conn.execute(select(func.clock_timestamp())).scalar_one()
    elif dialect in ("mysql", "mariadb"):
        value = conn.execute(select(func.utc_timestamp(6))).scalar_one()
    else:
        return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ClockGuard:
    """Refuses work whose ``now`` is further than ``max_skew`` from the database's clock."""

    max_skew: timedelta
    clock: Clock = utcnow

    def check(self, conn: Connection, now: datetime) -> None:
        """Raise :class:`ClockSkew` unless ``now`` (read before this transaction began)
        agrees with the database's clock.

        ``now`` precedes the database's reading and the local clock is read again after
        it, so a slow query or a loaded host never looks like skew; only the clocks can.
        """
        remote = database_now(conn)
        if remote is None:
            return
        ahead = now - remote
        behind = remote - self.clock()
        if ahead > self.max_skew:
            raise ClockSkew(self._describe(ahead, "ahead of"))
        if behind > self.max_skew:
            raise ClockSkew(self._describe(behind, "behind"))

    def _describe(self, by: timedelta, direction: str) -> str:
        return (
            f"this replica's wall clock is {by.total_seconds():.1f}s {direction} the "
            f"database's (more than the {self.max_skew.total_seconds():g}s allowed)"
        )
