"""patient_status: when an open febrile-neutropenia episode ends if nothing new arrives

Revision ID: 0019_febrile_until
Revises: 0018_cbc_due
Create Date: 2026-12-03 09:00:00+00:00

``patient_status.febrile_until``: the time an open episode of febrile neutropenia ends if no fever and no
lower ANC arrive before it (the ANC in force is already >= 0.5 and the last fever's 24 afebrile hours run
out then; docs/clinical-basis.md, Febrile neutropenia). A list read after that time shows the episode
ended without waiting for the next status recompute. Empty until the status is recomputed: `python -m
monitor db upgrade` recomputes every patient's status after this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_febrile_until"
down_revision: str | None = "0018_cbc_due"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("febrile_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        batch_op.drop_column("febrile_until")
