"""Bulk-loading armed schedule rows straight into sundial's store, the way the API would
arm them (``next_run_at`` = ``next_due_at`` = the trigger's first fire, jitter 0), with one
server-side ``INSERT … SELECT generate_series`` per batch instead of a request per row
(on MariaDB, ``SELECT … FROM seq_0_to_N``, its sequence engine)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, text

from bench.consumer import epoch_us
from scheduler.leadership.notices import CHANNEL
from scheduler.store.db import is_mysql

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
_MY_VALUES = (
    "SELECT CONCAT(:prefix, LPAD(seq, 7, '0')), :task, '[]', '{{}}', {trigger},"
    " :queue, NULL, NULL, :grace, true, 'allow', 0, NULL, NULL, NULL, NULL, 'active', NULL,"
    " '', '{{}}', {next_run}, {next_run}, NULL, {created}, {created}, 1"
    " FROM seq_{first}_to_{last}"
)
_MY_COLUMNS = ", ".join(f"`{name.strip()}`" for name in _COLUMNS.split(","))
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
    engine: Engine,
    count: int,
    trigger: str,
    next_run: str,
    created: str,
    analyze: bool = True,
    **params: object,
) -> None:
    sql = text(f"INSERT INTO schedules ({_COLUMNS}) " + _VALUES.format(
        trigger=trigger, next_run=next_run, created=created
    ))  # fmt: skip
    with engine.begin() as conn:
        for first in range(0, count, CHUNK):
            last = min(count, first + CHUNK) - 1
            conn.execute(sql, {"task": TASK, "first": first, "last": last, **params})
        if analyze:
            conn.execute(text("ANALYZE schedules"))


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _insert_mariadb(
    engine: Engine, count: int, trigger: str, next_run: str, created: str, **params: object
) -> None:
    with engine.begin() as conn:
        for first in range(0, count, CHUNK):
            last = min(count, first + CHUNK) - 1
            sql = f"INSERT INTO schedules ({_MY_COLUMNS}) " + _MY_VALUES.format(
                trigger=trigger, next_run=next_run, created=created, first=first, last=last
            )  # fmt: skip
            conn.execute(text(sql), {"task": TASK, **params})
        conn.execute(text("ANALYZE TABLE schedules"))


def one_offs(
    engine: Engine,
    prefix: str,
    count: int,
    run_at: datetime,
    queue: str,
    grace_s: float | None,
    analyze: bool = True,
) -> Fires:
    """``count`` date schedules all due at ``run_at`` (``analyze``: refresh the planner's
    statistics afterwards, worth it for one big load, not for a stream of small ones)."""
    params: dict[str, Any] = {
        "prefix": prefix,
        "queue": queue,
        "grace": grace_s,
        "run_at_text": run_at.isoformat().replace("+00:00", "Z"),
    }
    if is_mysql(engine.dialect):
        _insert_mariadb(
            engine,
            count,
            trigger="JSON_OBJECT('type', 'date', 'run_at', :run_at_text)",
            next_run=":run_at",
            created="UTC_TIMESTAMP(6)",
            run_at=_naive_utc(run_at),
            **params,
        )
    else:
        _insert(
            engine,
            count,
            trigger="json_build_object('type', 'date', 'run_at', CAST(:run_at_text AS text))",
            next_run="CAST(:run_at AS timestamptz)",
            created="now()",
            analyze=analyze,
            run_at=run_at,
            **params,
        )
    return one_off_fires(prefix, count, run_at)


def one_off_fires(prefix: str, count: int, run_at: datetime) -> Fires:
    """The fires :func:`one_offs` owes."""
    due = epoch_us(run_at)
    return Fires({(schedule_id(prefix, i), due) for i in range(count)})


def phase_us(i: int, count: int, period_s: float, aligned: bool = False) -> int:
    """Schedule ``i``'s offset into the period: phases spread evenly over it (none when
    ``aligned``)."""
    return 0 if aligned else i * round(period_s * 1e6) // count


def intervals(
    engine: Engine,
    prefix: str,
    count: int,
    first_fire: datetime,
    period_s: float,
    queue: str,
    grace_s: float | None,
    aligned: bool = False,
) -> None:
    """``count`` interval schedules whose first fires spread evenly over
    ``[first_fire, first_fire + period)`` (``aligned``: all at ``first_fire``, the way cron
    load lands on ``:00``); each was anchored (created) one period earlier."""
    params: dict[str, Any] = {
        "prefix": prefix,
        "queue": queue,
        "grace": grace_s,
        "n_rows": count,
        "period": period_s,
        "period_us": round(period_s * 1e6),
    }
    if is_mysql(engine.dialect):
        step = "INTERVAL (seq * :period_us DIV :n_rows) MICROSECOND"
        if aligned:
            step = "INTERVAL 0 MICROSECOND"
        _insert_mariadb(
            engine,
            count,
            trigger="JSON_OBJECT('type', 'interval', 'seconds', :period)",
            next_run=f"(:first_fire + {step})",
            created=f"(:first_fire - INTERVAL :period_us MICROSECOND + {step})",
            first_fire=_naive_utc(first_fire),
            **params,
        )
        return
    offset = "(g * CAST(:period_us AS bigint) / CAST(:n_rows AS bigint)) * interval '1 microsecond'"
    if aligned:
        offset = "interval '0 seconds'"
    _insert(
        engine,
        count,
        trigger="json_build_object('type', 'interval', 'seconds', CAST(:period AS float8))",
        next_run=f"CAST(:first_fire AS timestamptz) + {offset}",
        created=f"CAST(:first_fire AS timestamptz) - CAST(:period_text AS interval) + {offset}",
        first_fire=first_fire,
        period_text=f"{period_s} seconds",
        **params,
    )


def interval_fires(
    prefix: str,
    count: int,
    first_fire: datetime,
    period_s: float,
    start: datetime,
    end: datetime,
    aligned: bool = False,
) -> Fires:
    """The fires of :func:`intervals`' schedules due in ``[start, end)``."""
    period = round(period_s * 1e6)
    base, lo, hi = epoch_us(first_fire), epoch_us(start), epoch_us(end)
    keys: set[tuple[str, int]] = set()
    for i in range(count):
        due = base + phase_us(i, count, period_s, aligned)
        if due < lo:
            due += -(-(lo - due) // period) * period
        sid = schedule_id(prefix, i)
        while due < hi:
            keys.add((sid, due))
            due += period
    return Fires(keys)


def far_future(engine: Engine, prefix: str, count: int, now: datetime, queue: str) -> None:
    """``count`` schedules that do not fire during a run: half one-offs spread over the
    coming year, half daily intervals whose next fire is a day or more away (PostgreSQL)."""
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
