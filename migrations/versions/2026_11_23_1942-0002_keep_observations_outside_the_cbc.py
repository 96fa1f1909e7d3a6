"""keep observations outside the CBC

Revision ID: 0002_other_observations
Revises: 0001_cbc_store
Create Date: 2026-11-23 19:42:41.510916+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002_other_observations'
down_revision: str | None = '0001_cbc_store'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('other_observation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('panel_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('code_system', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value_type', sa.String(length=20), nullable=False),
    sa.Column('value_raw', sa.Text(), nullable=False),
    sa.Column('unit_raw', sa.String(length=50), nullable=False),
    sa.Column('ref_raw', sa.String(length=100), nullable=False),
    sa.Column('abnormal_flag', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_other_observation_batch_id_import_batch')),
    sa.ForeignKeyConstraint(['panel_id'], ['panel.id'], name=op.f('fk_other_observation_panel_id_panel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_other_observation')),
    sa.UniqueConstraint('panel_id', 'content_hash', name=op.f('uq_other_observation_panel_id_content_hash'))
    )
    with op.batch_alter_table('other_observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_other_observation_batch_id'), ['batch_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('other_observation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_other_observation_batch_id'))

    op.drop_table('other_observation')
