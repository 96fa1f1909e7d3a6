"""keep only the indexes imports and pages use (each index on result costs every import)

Revision ID: 0003_lean_indexes
Revises: 0002_other_observations
Create Date: 2026-11-23 20:11:35.899491+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_lean_indexes'
down_revision: str | None = '0002_other_observations'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('panel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_batch_id'))
        batch_op.drop_index(batch_op.f('ix_panel_lab_id'))

    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_analyte_current'))
        batch_op.drop_index(batch_op.f('ix_result_batch_id'))
        batch_op.drop_index(batch_op.f('uq_result_current'))



def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('uq_result_current'), ['panel_id', 'analyte'], unique=True,
            sqlite_where=sa.text('is_current'), postgresql_where=sa.text('is_current'),
        )
        batch_op.create_index(batch_op.f('ix_result_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_analyte_current'), ['analyte', 'is_current'], unique=False)

    with op.batch_alter_table('panel', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_lab_id'), ['lab_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_panel_batch_id'), ['batch_id'], unique=False)

