"""store each patient's flags and their explanations

Revision ID: 0006_flags
Revises: 0005_graded_status
Create Date: 2026-11-23 21:03:00.908908+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_flags'
down_revision: str | None = '0005_graded_status'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flags', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('explanations', sa.Text(), server_default='[]', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('explanations')
        batch_op.drop_column('flags')

