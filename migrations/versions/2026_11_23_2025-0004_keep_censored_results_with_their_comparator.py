"""keep censored results with their comparator

Revision ID: 0004_censored_results
Revises: 0003_lean_indexes
Create Date: 2026-11-23 20:25:31.948789+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_censored_results'
down_revision: str | None = '0003_lean_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latest_wbc_comparator', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('latest_anc_comparator', sa.String(length=2), nullable=True))

    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('comparator', sa.String(length=2), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_column('comparator')

    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('latest_anc_comparator')
        batch_op.drop_column('latest_wbc_comparator')

