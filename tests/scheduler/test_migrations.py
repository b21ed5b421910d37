"""Alembic owns the schema: it round-trips, and the models match it exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from scheduler import migrate
from scheduler.db import make_engine
from scheduler.models import leader, metadata


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
