"""notebook runs: a ``message`` per run — why a queued run waits (GPUs at once of its
quota, no free GPU) or when a running one will be stopped for the quota

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gridspawner_runs") as batch:
        batch.add_column(sa.Column("message", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("gridspawner_runs") as batch:
        batch.drop_column("message")
