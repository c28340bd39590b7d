"""self-edit candidates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "self_edit_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("candidate_index", sa.Integer(), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("self_edits", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_self_edit_candidates_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["adapter_versions.id"],
            name=op.f("fk_self_edit_candidates_version_id_adapter_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_self_edit_candidates")),
    )
    with op.batch_alter_table("self_edit_candidates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_self_edit_candidates_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_self_edit_candidates_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("self_edit_candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_self_edit_candidates_version_id"))
        batch_op.drop_index(batch_op.f("ix_self_edit_candidates_user_id"))

    op.drop_table("self_edit_candidates")
