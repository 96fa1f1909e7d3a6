"""worklist: recent WBC, cycle readiness now, acknowledgements

Revision ID: 0009_worklist
Revises: 0008_status_changes
Create Date: 2026-11-30 06:52:54.870620+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_worklist'
down_revision: str | None = '0008_status_changes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('acknowledgement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('flags', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_acknowledgement_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acknowledgement'))
    )
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.create_index('ix_acknowledgement_patient_at', ['patient_id', 'at'], unique=False)

    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wbc_recent', sa.Text(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('cycle', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cycle_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ready_now', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('readiness', sa.String(length=200), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('readiness')
        batch_op.drop_column('ready_now')
        batch_op.drop_column('cycle_start')
        batch_op.drop_column('cycle')
        batch_op.drop_column('wbc_recent')

    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.drop_index('ix_acknowledgement_patient_at')

    op.drop_table('acknowledgement')
