"""Celery dispatch options per schedule: time limits, exchange, routing key, headers

Revision ID: 0008_i12opts
Revises: 0007_i10metrics
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_i12opts"
down_revision: str | None = "0007_i10metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_limit_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("soft_time_limit_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("exchange", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("routing_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("headers")
        batch_op.drop_column("routing_key")
        batch_op.drop_column("exchange")
        batch_op.drop_column("soft_time_limit_seconds")
        batch_op.drop_column("time_limit_seconds")
