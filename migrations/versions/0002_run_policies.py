"""run policies: run due times and schedule counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "run_count",
    "failure_count",
    "consecutive_failures",
    "missed_count",
    "skipped_count",
)


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("hold_while_busy", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_run_state", sa.String(length=16), nullable=True))
        for name in COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        for name in reversed(COUNTERS):
            batch_op.drop_column(name)
        batch_op.drop_column("last_run_state")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("hold_while_busy")
        batch_op.drop_column("due_at")
