"""grade the latest WBC and ANC against the range that applies

Revision ID: 0005_graded_status
Revises: 0004_censored_results
Create Date: 2026-11-23 20:47:25.494259+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_graded_status'
down_revision: str | None = '0004_censored_results'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latest_wbc_lln', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('latest_wbc_range_source', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('latest_wbc_grade', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('latest_anc_lln', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('latest_anc_range_source', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('latest_anc_grade', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('latest_anc_grade')
        batch_op.drop_column('latest_anc_range_source')
        batch_op.drop_column('latest_anc_lln')
        batch_op.drop_column('latest_wbc_grade')
        batch_op.drop_column('latest_wbc_range_source')
        batch_op.drop_column('latest_wbc_lln')

