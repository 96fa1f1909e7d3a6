"""patient_status: the cycle days the next dose is expected on and readiness is judged from

Revision ID: 0014_cycle_next_dose
Revises: 0013_status_json_audit_actions
Create Date: 2026-12-02 13:00:00+00:00

Readiness is shown only from a window before the expected next dose: the status keeps the cycle
day of that dose (``next_dose_day``) and of the window's start (``readiness_from_day``); ``readiness`` now
holds the verdict alone, the sentence being made on the day shown. Rows written before this revision have
neither day: ``python -m monitor recompute`` (or the next import) fills them; until then such a patient's
readiness is shown as before the window, without a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_cycle_next_dose'
down_revision: str | None = '0013_status_json_audit_actions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_dose_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('readiness_from_day', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_column('readiness_from_day')
        batch_op.drop_column('next_dose_day')
