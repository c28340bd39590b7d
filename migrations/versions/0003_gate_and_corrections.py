"""gate (rejected versions) and corrections (fact slots, supersession)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("superseded_by_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_facts_slot_key"), ["slot_key"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_facts_superseded_by_id_facts"), "facts", ["superseded_by_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejection_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.drop_column("rejection_reason")
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_facts_superseded_by_id_facts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_facts_slot_key"))
        batch_op.drop_column("superseded_by_id")
        batch_op.drop_column("slot_key")
