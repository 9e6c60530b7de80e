"""indexes for the admin page over many records: on backend and gpu_model (the filter
menus read their distinct values from them instead of scanning every record), and the sums
index in user order (the sums per user read it in order, with no sort)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_gridspawner_usage_records_user_sums", "gridspawner_usage_records",
                    ["username", "started_at", "stopped_at", "gpus", "price_per_hour"])
    op.create_index("ix_gridspawner_usage_records_backend", "gridspawner_usage_records", ["backend"])
    op.create_index("ix_gridspawner_usage_records_gpu_model", "gridspawner_usage_records", ["gpu_model"])


def downgrade() -> None:
    op.drop_index("ix_gridspawner_usage_records_gpu_model", "gridspawner_usage_records")
    op.drop_index("ix_gridspawner_usage_records_backend", "gridspawner_usage_records")
    op.drop_index("ix_gridspawner_usage_records_user_sums", "gridspawner_usage_records")
