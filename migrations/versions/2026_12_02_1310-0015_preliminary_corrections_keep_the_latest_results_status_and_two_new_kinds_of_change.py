"""keep the latest results' status; record flags withdrawn by a correction and preliminary results made final

Revision ID: 0015_preliminary_corrections
Revises: 0014_cycle_next_dose
Create Date: 2026-12-02 13:00:00+00:00

``patient_status`` gains ``latest_wbc_status``, ``latest_anc_status`` and ``latest_alc_status`` (the status of
the latest result its grade rests on: preliminary, final, corrected), empty until the status is recomputed
(``python -m monitor recompute``; every import recomputes the patients it touched). ``status_change.change``
accepts ``withdrawn`` (a flag the lab took back by correcting or withdrawing a result) and ``final`` (a
preliminary result made final); a downgrade refuses while such changes are stored rather than drop them.

``patient_status`` also gains ``febrile_neutropenia`` (the current chemotherapy cycle's verdict, null when
unknown or not in a cycle) and ``febrile_detail`` (its fevers in words), which the worklist ranks first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_preliminary_corrections"
down_revision: str | None = "0014_cycle_next_dose"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYTES = ("wbc", "anc", "alc")
BEFORE = ("appeared", "worsened", "cleared")
AFTER = (*BEFORE, "withdrawn", "final")


def _check(kinds: tuple[str, ...]) -> str:
    return f"change IN ({', '.join(repr(kind) for kind in kinds)})"


def upgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for analyte in ANALYTES:
            batch_op.add_column(sa.Column(f"latest_{analyte}_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("febrile_neutropenia", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("febrile_detail", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("status_change", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_status_change_change"), type_="check")
        batch_op.create_check_constraint(op.f("ck_status_change_change"), _check(AFTER))


def downgrade() -> None:
    found = (
        op.get_bind()
        .execute(sa.text(f"SELECT COUNT(*) FROM status_change WHERE NOT ({_check(BEFORE)})"))
        .scalar_one()
    )
    if found:
        raise RuntimeError(
            f"{found} withdrawn or final status changes are stored, which the earlier schema cannot hold; "
            "nothing was changed"
        )
    with op.batch_alter_table("status_change", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_status_change_change"), type_="check")
        batch_op.create_check_constraint(op.f("ck_status_change_change"), _check(BEFORE))
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        batch_op.drop_column("febrile_detail")
        batch_op.drop_column("febrile_neutropenia")
        for analyte in reversed(ANALYTES):
            batch_op.drop_column(f"latest_{analyte}_status")
