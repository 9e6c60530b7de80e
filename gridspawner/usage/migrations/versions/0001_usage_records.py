"""usage records and their groups (the first version)

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gridspawner_usage_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("backend_kind", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_model", sa.String(255), nullable=False),
        sa.Column("gpu_memory_gb", sa.Integer(), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=True),
        sa.Column("memory_gb", sa.Integer(), nullable=True),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("price_per_hour", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("stopped_at", sa.Double(), nullable=True),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.Column("stop_reason", sa.String(32), nullable=True),
        sa.Column("stopped_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gridspawner_usage_records"),
    )
    op.create_index("ix_gridspawner_usage_records_username_started_at", "gridspawner_usage_records",
                    ["username", "started_at"])
    op.create_index("ix_gridspawner_usage_records_started_at", "gridspawner_usage_records", ["started_at"])
    op.create_index("ix_gridspawner_usage_records_stopped_at", "gridspawner_usage_records", ["stopped_at"])
    op.create_index("ix_gridspawner_usage_records_sums", "gridspawner_usage_records",
                    ["started_at", "stopped_at", "gpus", "price_per_hour", "username"])
    op.create_table(
        "gridspawner_usage_groups",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["gridspawner_usage_records.id"], ondelete="CASCADE",
                                name="fk_gridspawner_usage_groups_record_id"),
        sa.PrimaryKeyConstraint("record_id", "group_name", name="pk_gridspawner_usage_groups"),
    )
    op.create_index("ix_gridspawner_usage_groups_group_name_record_id", "gridspawner_usage_groups",
                    ["group_name", "record_id"])


def downgrade() -> None:
    op.drop_table("gridspawner_usage_groups")
    op.drop_table("gridspawner_usage_records")
