"""materialise when flags changed and were acknowledged

Revision ID: 0010_ack_state
Revises: 0009_worklist
Create Date: 2026-11-30 08:02:47.703231+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_ack_state'
down_revision: str | None = '0009_worklist'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flags_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))

    # Carried over from the history the lists used to read on every view.
    op.execute(
        "UPDATE patient_status SET flags_changed_at = (SELECT max(recorded_at) FROM status_change c "
        "WHERE c.patient_id = patient_status.patient_id AND c.change IN ('appeared', 'worsened'))"
    )
    op.execute(
        "UPDATE patient_status SET acknowledged_at = (SELECT max(at) FROM acknowledgement a "
        "WHERE a.patient_id = patient_status.patient_id)"
    )



def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('flags_changed_at')

