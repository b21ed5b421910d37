"""Schema migrations: upgrade to head, and the check ``/readyz`` makes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations, independent of the working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # Not set as the "sqlalchemy.url" option: ConfigParser reads "%" as interpolation, so a
    # percent-encoded password would fail, with the whole URL in the error message.
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade`` on ``database_url``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """``alembic downgrade`` on ``database_url``."""
    command.downgrade(alembic_config(database_url), revision)


def schema_is_current(engine: Engine) -> bool:
    """True when the database's revision is the newest one we ship."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current == head
