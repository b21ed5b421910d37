"""retention: indexes that let the leader find what to prune without a scan

Revision ID: 0009_i11retain
Revises: 0008_i12opts
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_i11retain"
down_revision: str | None = "0008_i12opts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The oldest finished one-offs first; the composite serves every lookup by state too.
    op.drop_index("ix_schedules_state", table_name="schedules")
    op.create_index("ix_schedules_state_updated_at", "schedules", ["state", "updated_at"])
    # The oldest retention deletes first; the composite serves every lookup by actor too.
    op.drop_index("ix_changes_actor", table_name="changes")
    op.create_index("ix_changes_actor_at", "changes", ["actor", "at"])
    # Deleting a schedule deletes its keys (ON DELETE CASCADE): without this, a scan each.
    op.create_index("ix_idempotency_keys_schedule_id", "idempotency_keys", ["schedule_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        # InnoDB needs an index for the foreign key and refuses to drop the only one: give
        # back the one it had made itself (named after the constraint) before this revision.
        op.create_index(
            "fk_idempotency_keys_schedule_id_schedules", "idempotency_keys", ["schedule_id"]
        )
    op.drop_index("ix_idempotency_keys_schedule_id", table_name="idempotency_keys")
    op.drop_index("ix_changes_actor_at", table_name="changes")
    op.create_index("ix_changes_actor", "changes", ["actor"])
    op.drop_index("ix_schedules_state_updated_at", table_name="schedules")
    op.create_index("ix_schedules_state", "schedules", ["state"])
