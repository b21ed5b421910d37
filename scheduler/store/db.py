"""Engine construction, the column type that keeps every datetime aware UTC, the batch
filter for a list of ids, and the MySQL/MariaDB rules the schema and the connections follow
there."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    DateTime,
    Engine,
    Row,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import DDLCompiler, TypeCompiler
from sqlalchemy.types import TypeDecorator

MYSQL_DIALECTS = ("mysql", "mariadb")
# Ids are compared byte for byte ("Job" and "job" are two schedules), as on PostgreSQL and
# SQLite; utf8mb4 holds any text a user sends (MySQL's "utf8" stops at three bytes).
MYSQL_TABLE_OPTIONS = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"


def is_mysql(dialect: Dialect) -> bool:
    """True on MySQL and MariaDB (SQLAlchemy names the dialect after the URL's scheme)."""
    return dialect.name in MYSQL_DIALECTS


@compiles(DateTime, *MYSQL_DIALECTS)
def _mysql_datetime(_type: DateTime, _compiler: TypeCompiler, **_kw: Any) -> str:
    # MySQL's DATETIME keeps whole seconds unless told otherwise; runs and leases need
    # microseconds. Every datetime is stored naive UTC (see UTCDateTime), never TIMESTAMP,
    # which the server would shift by its session time zone.
    return "DATETIME(6)"


@compiles(CreateTable, *MYSQL_DIALECTS)
def _mysql_create_table(create: CreateTable, compiler: DDLCompiler, **kw: Any) -> str:
    # The server's default charset and collation vary (utf8mb4_general_ci, latin1 on old
    # installs): every table says what it needs, whatever database it is created in.
    plain: str = compiler.visit_create_table(create, **kw)  # type: ignore[no-untyped-call]
    return f"{plain.rstrip()} {MYSQL_TABLE_OPTIONS}\n\n"


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL, naive-UTC text on SQLite and naive-UTC ``DATETIME(6)``
    on MySQL/MariaDB; always aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database layer")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text, MySQL's DATETIME has no zone: both store one
        # fixed, offset-free form.
        if dialect.name == "sqlite" or is_mysql(dialect):
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def among(conn: Connection, column: ColumnElement[str], ids: list[str]) -> ColumnElement[bool]:
    """``column IN ids`` for a batch of ids. PostgreSQL gets them as one array parameter:
    a thousand placeholders cost more for the driver to render than the rows they match."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(String)))
    return column.in_(ids)


def make_engine(url: str, idle_in_transaction_s: float | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and write-locking transactions.

    Statement parameters are kept out of error messages: they carry schedule kwargs and task
    results (webhook headers, tokens), and those messages end up in logs.

    ``idle_in_transaction_s`` (PostgreSQL): the server ends a session whose transaction sat
    idle that long. A scheduler passes its lease TTL: a leader frozen inside a fenced
    transaction (SIGSTOP, a VM paused) holds a lock on the leader row, and the next term's
    fencing token waits on it; ended by the server, that lock is gone by the time the lease
    has expired, instead of when the frozen process runs again. MariaDB has the same
    timeout in whole seconds (rounded up here); MySQL only its ``wait_timeout``, which see.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    if make_url(url).get_backend_name() in MYSQL_DIALECTS:
        return _mysql_engine(url, idle_in_transaction_s, kwargs)
    if idle_in_transaction_s is not None:
        connect_args = dict(kwargs.pop("connect_args", {}))
        timeout_ms = max(1, round(idle_in_transaction_s * 1000))
        connect_args["options"] = (
            f"{connect_args.get('options', '')} -c idle_in_transaction_session_timeout={timeout_ms}"
        ).strip()
        kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


def _mysql_engine(url: str, idle_s: float | None, kwargs: dict[str, Any]) -> Engine:
    # READ COMMITTED, as on PostgreSQL: under MySQL's default REPEATABLE READ a locking
    # read takes gap locks, and two claimers (or a claim and an API write) deadlock.
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    # The server closes idle connections (wait_timeout, 8 h by default; proxies sooner):
    # pre-ping finds a dead one before use, recycling keeps them from getting that old.
    kwargs.setdefault("pool_recycle", 1800)
    connect_args = dict(kwargs.pop("connect_args", {}))
    if "charset" not in make_url(url).query:
        connect_args.setdefault("charset", "utf8mb4")
    # Strict mode: a value too long for its column is an error, never silently cut.
    connect_args.setdefault(
        "init_command", "SET SESSION sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_TRANS_TABLES')"
    )
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if idle_s is not None:
        _end_idle_transactions(engine, math.ceil(idle_s))
    return engine


def _end_idle_transactions(engine: Engine, seconds: int) -> None:
    # MariaDB ends a session idle inside a transaction, as PostgreSQL does. MySQL has only
    # wait_timeout, which ends any session idle that long, in a transaction or not: a
    # pooled connection it ended is replaced by pre-ping, at the cost of a reconnect.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The dialect knows the server by now: the engine's first connect initializes it
        # before any listener added afterwards runs.
        mariadb = getattr(engine.dialect, "is_mariadb", False)
        variable = "idle_transaction_timeout" if mariadb else "wait_timeout"
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET SESSION {variable} = {seconds}")
        cursor.close()


def update_one_returning(
    conn: Connection,
    table: Table,
    where: list[ColumnElement[bool]],
    values: dict[str, Any],
    columns: list[Any],
) -> Row[Any] | None:
    """``UPDATE … RETURNING columns`` of at most one row, also where the database has no
    ``UPDATE … RETURNING`` (MySQL, MariaDB): there the row is locked and read first, then
    updated by its key. ``columns`` must be ones the update leaves unchanged."""
    if conn.dialect.update_returning:
        statement = update(table).where(*where).values(values).returning(*columns)
        return conn.execute(statement).first()
    key = list(table.primary_key.columns)
    extra = [c for c in key if not any(c is k for k in columns)]
    row = conn.execute(select(*columns, *extra).where(*where).with_for_update()).first()
    if row is None:
        return None
    mapping = row._mapping
    conn.execute(update(table).where(*(c == mapping[c] for c in key)).values(values))
    return row


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail
        # with SQLITE_BUSY instead of waiting, which is how two processes deadlock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
