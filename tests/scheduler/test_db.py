"""The engine: what its errors may say."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from scheduler.store.models import schedules
from scheduler.timing.clock import utcnow
from tests.factories import add_schedule, schedule_row


def test_a_failed_statement_does_not_print_its_parameters(engine: Engine) -> None:
    # Parameters carry schedule kwargs (webhook headers, tokens) and task results; the
    # error message ends up in a log.
    add_schedule(engine, "dup", {"type": "interval", "seconds": 60}, utcnow())
    secret = {"headers": {"Authorization": "Bearer tok-123"}}
    row = schedule_row("dup", {"type": "interval", "seconds": 60}, utcnow(), kwargs=secret)

    with pytest.raises(IntegrityError) as failed, engine.begin() as conn:
        conn.execute(insert(schedules).values(**row))

    assert "tok-123" not in str(failed.value)
