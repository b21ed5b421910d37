"""each replica's metrics snapshot, for the dashboard

Revision ID: 0007_i10metrics
Revises: 0006_i13
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_i10metrics"
down_revision: str | None = "0006_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_replicas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scheduler_replicas", schema=None) as batch_op:
        batch_op.drop_column("metrics")
