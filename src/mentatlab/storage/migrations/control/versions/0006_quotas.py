"""Per-org quota overrides.

Revision ID: 0006_quotas
Revises: 0005_audit (one line of history: nodes migrating at once then record one version)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mentatlab.storage.control.models import UtcDateTime

revision = "0006_quotas"
down_revision = "0005_audit"
branch_labels = None
depends_on = None

_LIMITS = ("key_ingest_requests_per_s", "org_ingest_requests_per_s",
           "key_ingest_spans_per_min", "org_ingest_spans_per_min",
           "key_queries_per_min", "org_queries_per_min")


def upgrade() -> None:
    op.create_table(
        "quota_overrides",
        sa.Column("org_id", sa.String(64), sa.ForeignKey("orgs.id", ondelete="CASCADE"),
                  primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in _LIMITS),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quota_overrides")
