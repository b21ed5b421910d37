"""apply: which file source manages a schedule, what it last applied, a lock per source

Revision ID: 0005_i9
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_i9"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("managed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("applied", sa.JSON(), nullable=True))
        batch_op.create_index("ix_schedules_managed_by", ["managed_by"], unique=False)
    op.create_table(
        "apply_sources",
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_apply_sources")),
    )


def downgrade() -> None:
    op.drop_table("apply_sources")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_schedules_managed_by")
        batch_op.drop_column("applied")
        batch_op.drop_column("managed_by")
