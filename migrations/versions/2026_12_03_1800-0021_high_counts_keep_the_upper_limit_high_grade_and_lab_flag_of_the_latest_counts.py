"""patient_status: high counts: keep the upper limit, high grade and lab flag of the latest counts

Revision ID: 0021_high_counts
Revises: 0020_nadir_forecast
Create Date: 2026-12-03 18:00:00+00:00

For the latest WBC, ANC and ALC: the upper limit that applies (``latest_*_uln``), the CTCAE grade of a high
count (``latest_*_high_grade``: Leukocytosis, Lymphocyte count increased) and the lab's own abnormal flag
(``latest_*_lab_flag``: HL7 v2 OBX-8, FHIR Observation.interpretation); the latest haemoglobin and platelets
with their CTCAE grades; and whether the latest result of an analyte the status reads carries a critical
flag of the lab's (``lab_critical``, ``lab_critical_detail``; docs/clinical-basis.md, High counts and The
lab's abnormal flags). Empty until the status is recomputed: `python -m monitor db upgrade` recomputes every
patient's status after this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_high_counts"
down_revision: str | None = "0020_nadir_forecast"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    *(
        (f"latest_{analyte}_{field}", kind)
        for analyte in ("wbc", "anc", "alc")
        for field, kind in (
            ("uln", sa.Float()),
            ("high_grade", sa.Integer()),
            ("lab_flag", sa.String(length=10)),
        )
    ),
    ("latest_hgb", sa.Float()),
    ("latest_hgb_grade", sa.Integer()),
    ("latest_plt", sa.Float()),
    ("latest_plt_grade", sa.Integer()),
    ("lab_critical", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        batch_op.add_column(sa.Column("lab_critical_detail", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        batch_op.drop_column("lab_critical_detail")
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
