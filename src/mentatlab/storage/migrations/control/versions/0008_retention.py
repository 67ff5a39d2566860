"""Per-org retention overrides (issue 17, retention and erasure).

Revision ID: 0008_retention
Revises: 0007_policies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mentatlab.storage.control.models import UtcDateTime

revision = "0008_retention"
down_revision = "0007_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_overrides",
        sa.Column("org_id", sa.String(64), sa.ForeignKey("orgs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("span_days", sa.BigInteger(), nullable=True),
        sa.Column("aggregate_days", sa.BigInteger(), nullable=True),
        sa.Column("audit_years", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_overrides")
