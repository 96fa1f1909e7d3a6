"""patient_status: each patient's latest nadir window and whether a count sampled it (CBCs due)

Revision ID: 0018_cbc_due
Revises: 0017
Create Date: 2026-12-03 08:00:00+00:00

``patient_status`` gains the latest chemotherapy cycle's nadir window (``nadir_cycle``, ``nadir_window``
as "D8-D15", ``nadir_opens_at`` and ``nadir_closes_at``: the start of its first day and of the day after
its last, in the site's zone, stored in UTC; ``nadir_sampled``: whether a WBC or ANC was drawn in it;
``nadir_until``: until when the cycle is current) and the previous cycle's window when it closed without a
count (``missed_cycle``, ``missed_window``, ``missed_opens_at``, ``missed_closes_at``). The ``due`` command,
the worklist's "CBC due" and the alerts' monitoring gaps read them. They are empty until the status is
recomputed: ``python -m monitor db upgrade`` recomputes every patient's status after this revision, as
``python -m monitor recompute`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_cbc_due"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WINDOWS = ("nadir", "missed")


def upgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for prefix in WINDOWS:
            batch_op.add_column(sa.Column(f"{prefix}_cycle", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_window", sa.String(length=20), nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_opens_at", sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_closes_at", sa.DateTime(timezone=True), nullable=True))
            if prefix == "nadir":
                batch_op.add_column(sa.Column("nadir_sampled", sa.Boolean(), nullable=True))
                batch_op.add_column(sa.Column("nadir_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for prefix in reversed(WINDOWS):
            if prefix == "nadir":
                batch_op.drop_column("nadir_until")
                batch_op.drop_column("nadir_sampled")
            batch_op.drop_column(f"{prefix}_closes_at")
            batch_op.drop_column(f"{prefix}_opens_at")
            batch_op.drop_column(f"{prefix}_window")
            batch_op.drop_column(f"{prefix}_cycle")
