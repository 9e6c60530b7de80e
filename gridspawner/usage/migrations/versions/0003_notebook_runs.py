"""notebook runs (issue 12): the ``gridspawner_runs`` table — every run and, in state
``queued``, the queue

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gridspawner_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("backend_kind", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("bindings", sa.Text(), nullable=False),
        sa.Column("warnings", sa.Text(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_memory_gb", sa.Integer(), nullable=False),
        sa.Column("gpu_model", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("max_runtime", sa.Double(), nullable=True),
        sa.Column("submitted_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("cancel_requested", sa.Integer(), nullable=False),
        sa.Column("cancelled_by", sa.String(255), nullable=True),
        sa.Column("launch_state", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gridspawner_runs"),
    )
    op.create_index("ix_gridspawner_runs_username_submitted_at", "gridspawner_runs", ["username", "submitted_at"])
    op.create_index("ix_gridspawner_runs_status_backend_submitted_at", "gridspawner_runs",
                    ["status", "backend", "submitted_at"])
    op.create_index("ix_gridspawner_runs_updated_at", "gridspawner_runs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_gridspawner_runs_updated_at", "gridspawner_runs")
    op.drop_index("ix_gridspawner_runs_status_backend_submitted_at", "gridspawner_runs")
    op.drop_index("ix_gridspawner_runs_username_submitted_at", "gridspawner_runs")
    op.drop_table("gridspawner_runs")
