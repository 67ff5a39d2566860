"""Node watermarks: how far each server process's span commits are visible.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mentatlab.storage.control.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_watermarks",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("committed_through_ns", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_watermarks")
