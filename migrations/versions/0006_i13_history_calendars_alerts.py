"""history, leader terms, exclusion calendars, success deadlines and alerts

Revision ID: 0006_i13
Revises: 0005_i9
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from scheduler.store.db import UTCDateTime

revision: str = "0006_i13"
down_revision: str | None = "0005_i9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The user-set columns of a schedule: a version's whole specification.
SPEC_COLUMNS = (
    "task",
    "args",
    "kwargs",
    "trigger",
    "queue",
    "priority",
    "expires_seconds",
    "misfire_grace_seconds",
    "coalesce",
    "overlap",
    "jitter_seconds",
    "retry",
    "pause_after_failures",
    "start_at",
    "end_at",
    "description",
    "labels",
)


def upgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exclude_calendars", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("on_excluded", sa.String(length=16), nullable=False, server_default="skip")
        )
        batch_op.add_column(sa.Column("expect_success_within_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule_version", sa.Integer(), nullable=True))

    op.create_table(
        "changes",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schedule_id", sa.String(length=128), nullable=True),
        sa.Column("calendar", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("diff", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_changes_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_calendar"), ["calendar"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_actor"), ["actor"], unique=False)
        batch_op.create_index("ix_changes_schedule_id_id", ["schedule_id", "id"], unique=False)

    op.create_table(
        "leader_terms",
        sa.Column("fencing_token", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("fencing_token", name=op.f("pk_leader_terms")),
    )
    with op.batch_alter_table("leader_terms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leader_terms_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "calendars",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_calendars")),
    )
    op.create_table(
        "schedule_calendars",
        sa.Column("schedule_id", sa.String(length=128), nullable=False),
        sa.Column("calendar", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar"], ["calendars.name"], name=op.f("fk_schedule_calendars_calendar_calendars")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_calendars_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schedule_id", "calendar", name=op.f("pk_schedule_calendars")),
    )
    with op.batch_alter_table("schedule_calendars", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedule_calendars_calendar"), ["calendar"], unique=False
        )

    op.create_table(
        "alerts",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("notify", sa.String(length=16), nullable=True),
        sa.Column("notify_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("notify_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notify_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("schedule_id", "kind", "subject", name=op.f("uq_alerts_schedule_id")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_schedule_id"), ["schedule_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_notify"), ["notify"], unique=False)

    _baseline_history()


def _baseline_history() -> None:
    """History starts here: each existing schedule's current spec, as its known version."""
    bind = op.get_bind()
    json_columns = {"args", "kwargs", "trigger", "retry", "labels"}
    time_columns = {"start_at", "end_at", "updated_at"}
    schedules = sa.table(
        "schedules",
        *(
            sa.column(
                name,
                sa.JSON()
                if name in json_columns
                else UTCDateTime()
                if name in time_columns
                else None,
            )
            for name in ("id", "state", "version", "updated_at", *SPEC_COLUMNS)
        ),
    )
    changes = sa.table(
        "changes",
        sa.column("at", UTCDateTime()),
        sa.column("spec", sa.JSON()),
        *(sa.column(name) for name in ("schedule_id", "kind", "actor", "version", "state")),
    )
    rows = bind.execute(sa.select(schedules)).mappings().all()
    if rows:
        op.bulk_insert(changes, [_baseline(row) for row in rows])


def _baseline(row: Any) -> dict[str, Any]:
    spec = {
        name: row[name].isoformat() if isinstance(row[name], datetime) else row[name]
        for name in SPEC_COLUMNS
    }
    spec.update(exclude_calendars=[], on_excluded="skip", expect_success_within_seconds=None)
    spec["paused"] = row["state"] == "paused"
    return {
        "at": row["updated_at"],
        "schedule_id": row["id"],
        "kind": "baseline",
        "actor": "migration",
        "version": row["version"],
        "state": row["state"],
        "spec": spec,
    }


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_notify"))
        batch_op.drop_index(batch_op.f("ix_alerts_schedule_id"))
    op.drop_table("alerts")
    with op.batch_alter_table("schedule_calendars", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_calendars_calendar"))
    op.drop_table("schedule_calendars")
    op.drop_table("calendars")
    with op.batch_alter_table("leader_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leader_terms_started_at"))
    op.drop_table("leader_terms")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_schedule_id_id")
        batch_op.drop_index(batch_op.f("ix_changes_actor"))
        batch_op.drop_index(batch_op.f("ix_changes_kind"))
        batch_op.drop_index(batch_op.f("ix_changes_calendar"))
        batch_op.drop_index(batch_op.f("ix_changes_at"))
    op.drop_table("changes")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("schedule_version")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("expect_success_within_seconds")
        batch_op.drop_column("on_excluded")
        batch_op.drop_column("exclude_calendars")
