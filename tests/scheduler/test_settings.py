"""Settings keep secrets out of what they print: reprs, validation errors, log-ready URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler.settings import Settings, without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://app:p%40ss%2Fw@db:5432/sundial",
            "postgresql+psycopg://app:***@db:5432/sundial",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest:guest@mq//", "amqp://guest:***@mq//"),
        (
            "postgresql://db/sundial?sslmode=require&password=hunter2",
            "postgresql://db/sundial?sslmode=require&password=***",
        ),
        ("sqlite:///./sundial.db", "sqlite:///./sundial.db"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://[::1/0", "<a URL that cannot be parsed>"),
    ],
)
def test_without_password_hides_only_the_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_urls_stay_out_of_the_settings_repr_and_validation_errors(tmp_path: Path) -> None:
    url = "postgresql+psycopg://app:hunter2@db/sundial"
    settings = Settings(_env_file=None, database_url=url, redis_url="redis://:hunter2@r/0")

    assert "hunter2" not in repr(settings)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, database_url="oracle://app:hunter2@db/sundial")
    assert "hunter2" not in str(refused.value)
    mysql = "mysql+pymysql://app:hunter2@db/sundial"
    assert Settings(_env_file=None, database_url=mysql).database_url == mysql
