"""Access control: key roles, scopes and usage times; users, memberships, sessions.

Keys issued before roles existed could do everything in their scope; they become
``admin`` keys so nothing stops working, and the server logs them at start until they
are rotated to narrower roles (CHANGELOG, "Action needed").

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mentatlab.storage.control.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("org_id", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("role", sa.String(16), nullable=False,
                                   server_default="admin"))
        batch.add_column(sa.Column("created_by", sa.String(200), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("last_used_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("oidc_issuer", sa.String(500), nullable=True),
        sa.Column("oidc_subject", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_login_at", UtcDateTime(), nullable=True),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("orgs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_memberships_org_id", "memberships", ["org_id"])
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("key_id", sa.String(64), sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("memberships")
    op.drop_table("users")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("last_used_at")
        batch.drop_column("created_by")
        batch.drop_column("role")
