"""Bulk-loading armed schedule rows straight into sundial's store, the way the API would
arm them (``next_run_at`` = ``next_due_at`` = the trigger's first fire, jitter 0), with one
server-side ``INSERT … SELECT generate_series`` per batch instead of a request per row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import Engine, text

from bench.consumer import epoch_us
from scheduler.leadership.notices import CHANNEL

TASK = "bench.noop"
_COLUMNS = (
    "id, task, args, kwargs, trigger, queue, priority, expires_seconds, misfire_grace_seconds,"
    " coalesce, overlap, jitter_seconds, retry, pause_after_failures, start_at, end_at, state,"
    " state_reason, description, labels, next_run_at, next_due_at, last_run_at, created_at,"
    " updated_at, version"
)
_VALUES = (
    "SELECT :prefix || lpad(g::text, 7, '0'), :task, '[]'::json, '{{}}'::json, {trigger},"
    " :queue, NULL, NULL, :grace, true, 'allow', 0, NULL, NULL, NULL, NULL, 'active', NULL,"
    " '', '{{}}'::json, {next_run}, {next_run}, NULL, {created}, {created}, 1"
    " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
)
_RFC3339 = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
# Rows per INSERT: keeps one statement's memory and WAL burst bounded at 1,000,000 rows.
CHUNK = 200_000


@dataclass(frozen=True)
class Fires:
    """The fires a seeded set of schedules owes in a window: the expected receipts."""

    keys: set[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.keys)


def schedule_id(prefix: str, i: int) -> str:
    """The id of the ``i``-th seeded schedule (``generate_series`` pads the same way)."""
    return f"{prefix}{i:07d}"


def _insert(
    engine: Engine, count: int, trigger: str, next_run: str, created: str, **params: object
) -> None:
    sql = text(f"INSERT INTO schedules ({_COLUMNS}) " + _VALUES.format(
        trigger=trigger, next_run=next_run, created=created
    ))  # fmt: skip
    with engine.begin() as conn:
        for first in range(0, count, CHUNK):
            last = min(count, first + CHUNK) - 1
            conn.execute(sql, {"task": TASK, "first": first, "last": last, **params})
        conn.execute(text("ANALYZE schedules"))


def one_offs(
    engine: Engine, prefix: str, count: int, run_at: datetime, queue: str, grace_s: float | None
) -> Fires:
    """``count`` date schedules all due at ``run_at``."""
    _insert(
        engine,
        count,
        trigger="json_build_object('type', 'date', 'run_at', CAST(:run_at_text AS text))",
        next_run="CAST(:run_at AS timestamptz)",
        created="now()",
        prefix=prefix,
        queue=queue,
        grace=grace_s,
        run_at=run_at,
        run_at_text=run_at.isoformat().replace("+00:00", "Z"),
    )
    return one_off_fires(prefix, count, run_at)


def one_off_fires(prefix: str, count: int, run_at: datetime) -> Fires:
    """The fires :func:`one_offs` owes."""
    due = epoch_us(run_at)
    return Fires({(schedule_id(prefix, i), due) for i in range(count)})


def phase_us(i: int, count: int, period_s: float) -> int:
    """Schedule ``i``'s offset into the period: phases spread evenly over it."""
    return i * round(period_s * 1e6) // count


def intervals(
    engine: Engine,
    prefix: str,
    count: int,
    first_fire: datetime,
    period_s: float,
    queue: str,
    grace_s: float | None,
) -> None:
    """``count`` interval schedules whose first fires spread evenly over
    ``[first_fire, first_fire + period)``; each was anchored (created) one period earlier."""
    offset = "(g * CAST(:period_us AS bigint) / CAST(:n_rows AS bigint)) * interval '1 microsecond'"
    _insert(
        engine,
        count,
        trigger="json_build_object('type', 'interval', 'seconds', CAST(:period AS float8))",
        next_run=f"CAST(:first_fire AS timestamptz) + {offset}",
        created=f"CAST(:first_fire AS timestamptz) - CAST(:period_text AS interval) + {offset}",
        prefix=prefix,
        queue=queue,
        grace=grace_s,
        n_rows=count,
        first_fire=first_fire,
        period=period_s,
        period_us=round(period_s * 1e6),
        period_text=f"{period_s} seconds",
    )


def interval_fires(
    prefix: str, count: int, first_fire: datetime, period_s: float, start: datetime, end: datetime
) -> Fires:
    """The fires of :func:`intervals`' schedules due in ``[start, end)``."""
    period = round(period_s * 1e6)
    base, lo, hi = epoch_us(first_fire), epoch_us(start), epoch_us(end)
    keys: set[tuple[str, int]] = set()
    for i in range(count):
        due = base + phase_us(i, count, period_s)
        if due < lo:
            due += -(-(lo - due) // period) * period
        sid = schedule_id(prefix, i)
        while due < hi:
            keys.add((sid, due))
            due += period
    return Fires(keys)


def far_future(engine: Engine, prefix: str, count: int, now: datetime, queue: str) -> None:
    """``count`` schedules that do not fire during a run: half one-offs spread over the
    coming year, half daily intervals whose next fire is a day or more away."""
    half = count // 2
    day = timedelta(days=1)
    _insert(
        engine,
        half,
        trigger=(
            "json_build_object('type', 'date', 'run_at', to_char((CAST(:base AS timestamptz)"
            f" + g * interval '31 seconds') AT TIME ZONE 'UTC', {_RFC3339}))"
        ),
        next_run="CAST(:base AS timestamptz) + g * interval '31 seconds'",
        created="CAST(:now AS timestamptz)",
        prefix=f"{prefix}d",
        queue=queue,
        grace=60.0,
        base=(now + 2 * day).replace(microsecond=0),
        now=now,
    )
    _insert(
        engine,
        count - half,
        trigger="json_build_object('type', 'interval', 'seconds', 86400)",
        next_run="CAST(:base AS timestamptz) + (g % 86400) * interval '1 second'",
        created="CAST(:base AS timestamptz) - interval '1 day' + (g % 86400) * interval '1 second'",
        prefix=f"{prefix}i",
        queue=queue,
        grace=60.0,
        base=(now + day).replace(microsecond=0),
    )


def notify(redis_url: str) -> None:
    """Tell the leader the store changed, as the API does after a write."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.publish(CHANNEL, "bench-bulk-load")
    finally:
        client.close()
