"""grade the latest ALC, name the pattern, keep lab ranges

Revision ID: 0007_alc_pattern_lab_ranges
Revises: 0006_flags
Create Date: 2026-11-30 06:32:31.703658+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_alc_pattern_lab_ranges'
down_revision: str | None = '0006_flags'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lab_range',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lab_id', sa.Integer(), nullable=False),
    sa.Column('analyte', sa.String(length=32), nullable=False),
    sa.Column('low', sa.Float(), nullable=False),
    sa.Column('high', sa.Float(), nullable=True),
    sa.Column('sex', sa.String(length=1), nullable=True),
    sa.Column('min_months', sa.Float(), nullable=True),
    sa.Column('max_months', sa.Float(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lab_id'], ['lab.id'], name=op.f('fk_lab_range_lab_id_lab')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_range'))
    )
    with op.batch_alter_table('lab_range', schema=None) as batch_op:
        batch_op.create_index('ix_lab_range_lab_analyte', ['lab_id', 'analyte'], unique=False)

    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latest_alc', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_comparator', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_low', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_lln', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_range_source', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('latest_alc_grade', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pattern', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('pattern_detail', sa.String(length=200), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('pattern_detail')
        batch_op.drop_column('pattern')
        batch_op.drop_column('latest_alc_grade')
        batch_op.drop_column('latest_alc_range_source')
        batch_op.drop_column('latest_alc_lln')
        batch_op.drop_column('latest_alc_at')
        batch_op.drop_column('latest_alc_low')
        batch_op.drop_column('latest_alc_comparator')
        batch_op.drop_column('latest_alc')

    with op.batch_alter_table('lab_range', schema=None) as batch_op:
        batch_op.drop_index('ix_lab_range_lab_analyte')

    op.drop_table('lab_range')
