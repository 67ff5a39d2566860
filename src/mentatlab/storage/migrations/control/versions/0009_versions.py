"""Registered prompt/workflow versions; the first use of each API key.

``registered_versions`` holds a version's content hash per ``(org, kind, name, version)``
(storage/control/versions.py). ``api_keys.first_used_at`` feeds the ``new_key`` security
signal; keys used before this migration get their ``created_at``, so an upgrade does not
report every key in use as new.

Revision ID: 0009_versions
Revises: 0008_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mentatlab.storage.control.models import UtcDateTime

revision = "0009_versions"
down_revision = "0008_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("orgs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(200), nullable=False),
        sa.Column("registered_by", sa.String(200), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("org_id", "kind", "name", "version", name="uq_registered_versions"),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("first_used_at", UtcDateTime(), nullable=True))
    op.execute("UPDATE api_keys SET first_used_at = created_at WHERE last_used_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("first_used_at")
    op.drop_table("registered_versions")
