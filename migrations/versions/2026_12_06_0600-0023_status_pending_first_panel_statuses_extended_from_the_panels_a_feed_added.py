"""status pending first panel: statuses extended from the panels a feed added, not read again whole

Revision ID: 0023_pending_first_panel
Revises: 0022_live_feed
Create Date: 2026-12-06 06:00:00+00:00

``status_pending.first_panel``: the lowest id of the panels a live feed added to a waiting patient since
their status was last recomputed, when adding new panels is all it did (null otherwise: the status is then
recomputed from the whole history). The listener's status process, which keeps each patient's history
between passes, then reads only those panels (``db.histories``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0023_pending_first_panel"
down_revision: str | None = "0022_live_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("status_pending", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_panel", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("status_pending", schema=None) as batch_op:
        batch_op.drop_column("first_panel")
