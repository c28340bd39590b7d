"""fact checkpointed: how many self-edit candidates a stopped run had checkpointed

A run that stops (killed, or past its time limit) counts as a crash of its facts
only if it checkpointed no candidate more than the run before it: one that made
progress resumes without using up the facts' crash budget.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpointed", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.drop_column("checkpointed")
