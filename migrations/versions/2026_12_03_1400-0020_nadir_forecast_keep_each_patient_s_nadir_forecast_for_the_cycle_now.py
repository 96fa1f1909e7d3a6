"""patient_status: keep each patient's nadir forecast for the cycle now

Revision ID: 0020_nadir_forecast
Revises: 0019_febrile_until
Create Date: 2026-12-03 14:00:00+00:00

The nadir forecast of the chemotherapy cycle now (analysis.forecast; docs/clinical-basis.md, Nadir
forecast): the cycle, the median nadir ANC and its 80 % interval, the nadir's day and window, the day back
at 1.5, the probability of a grade 4 nadir, or the reason there is none, when the nadir window ends and the
lowest ANC measured in the cycle so far, with the fingerprint of what it was fitted to (``forecast_key``); and ``nadir_forecast``, whether the latest cycle's nadir window (CBCs
due) is the forecast's. Empty until the status is recomputed: `python -m monitor db upgrade` recomputes
every patient's status after this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_nadir_forecast"
down_revision: str | None = "0019_febrile_until"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("nadir_forecast", sa.Boolean()),
    ("forecast_cycle", sa.Integer()),
    ("nadir_anc", sa.Float()),
    ("nadir_anc_low", sa.Float()),
    ("nadir_anc_high", sa.Float()),
    ("nadir_day", sa.Float()),
    ("nadir_window_first", sa.Integer()),
    ("nadir_window_last", sa.Integer()),
    ("recovery_day", sa.Float()),
    ("p_grade4", sa.Float()),
    ("forecast_reason", sa.Text()),
    ("nadir_window_ends_at", sa.DateTime(timezone=True)),
    ("observed_nadir_anc", sa.Float()),
    ("forecast_key", sa.String(length=64)),
)


def upgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient_status", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
