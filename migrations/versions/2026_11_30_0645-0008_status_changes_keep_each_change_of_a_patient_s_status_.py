"""keep each change of a patient's status for alerts

Revision ID: 0008_status_changes
Revises: 0007_alc_pattern_lab_ranges
Create Date: 2026-11-30 06:45:39.012100+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_status_changes'
down_revision: str | None = '0007_alc_pattern_lab_ranges'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('status_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('change', sa.String(length=10), nullable=False),
    sa.Column('flag', sa.String(length=40), nullable=False),
    sa.Column('analyte', sa.String(length=32), nullable=True),
    sa.Column('grade_before', sa.Integer(), nullable=True),
    sa.Column('grade_after', sa.Integer(), nullable=True),
    sa.Column('explanation', sa.Text(), server_default='', nullable=False),
    sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("change IN ('appeared', 'worsened', 'cleared')", name=op.f('ck_status_change_change')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_status_change_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_change'))
    )
    with op.batch_alter_table('status_change', schema=None) as batch_op:
        batch_op.create_index('ix_status_change_patient', ['patient_id', 'recorded_at'], unique=False)
        batch_op.create_index('ix_status_change_recorded_at', ['recorded_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('status_change', schema=None) as batch_op:
        batch_op.drop_index('ix_status_change_recorded_at')
        batch_op.drop_index('ix_status_change_patient')

    op.drop_table('status_change')
