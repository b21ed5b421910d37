"""Alembic owns the schema: it round-trips, and the models match it exactly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, inspect, select, table

from scheduler.store import migrate
from scheduler.store.db import make_engine
from scheduler.store.models import changes, leader, metadata, schedules


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade_leaves_no_drift(
    kind: str, new_database_url: Callable[[str], str]
) -> None:
    url = new_database_url(kind)  # already upgraded to head
    migrate.downgrade(url, "base")
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert migrate.schema_is_current(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata) == []
            assert conn.execute(select(leader.c.fencing_token)).scalar_one() == 0
    finally:
        engine.dispose()


def test_schema_not_current_after_downgrade(new_database_url: Callable[[str], str]) -> None:
    url = new_database_url("sqlite")
    migrate.downgrade(url, "base")
    engine = make_engine(url)
    try:
        assert not migrate.schema_is_current(engine)
    finally:
        engine.dispose()


def test_upgrade_takes_a_url_with_percent_escapes(tmp_path: Path) -> None:
    # Percent-encoded passwords are common; Alembic's ConfigParser once read "%" as
    # interpolation, failing with the whole URL (password included) in its message.
    url = f"sqlite:///{tmp_path / 'pass%40word.db'}"

    migrate.upgrade(url)

    engine = make_engine(url)
    try:
        assert migrate.schema_is_current(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_records_each_existing_schedule_as_its_history_baseline(
    kind: str, new_database_url: Callable[[str], str]
) -> None:
    url = new_database_url(kind)
    migrate.downgrade(url, "0002")
    engine = make_engine(url)
    created = datetime(2026, 11, 1, tzinfo=UTC)
    old = {
        "id": "old",
        "task": "t",
        "args": [],
        "kwargs": {"a": 1},
        "trigger": {"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"},
        "queue": "celery",
        "coalesce": True,
        "overlap": "allow",
        "jitter_seconds": 0.0,
        "misfire_grace_seconds": 60.0,
        "start_at": created,
        "state": "paused",
        "description": "",
        "labels": {},
        "created_at": created,
        "updated_at": created + timedelta(days=1),
        "version": 4,
    }
    try:
        columns = [column(name, schedules.c[name].type) for name in old]
        with engine.begin() as conn:
            conn.execute(insert(table("schedules", *columns)).values(**old))
        migrate.upgrade(url)
        with engine.connect() as conn:
            (change,) = conn.execute(select(changes)).mappings().all()
    finally:
        engine.dispose()
    assert (change["schedule_id"], change["kind"], change["version"]) == ("old", "baseline", 4)
    assert change["at"] == created + timedelta(days=1) and change["state"] == "paused"
    assert change["spec"]["kwargs"] == {"a": 1} and change["spec"]["paused"] is True
    assert change["spec"]["start_at"] == created.isoformat()
