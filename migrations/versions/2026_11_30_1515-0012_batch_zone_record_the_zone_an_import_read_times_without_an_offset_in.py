"""record the zone an import read times without an offset in

Revision ID: 0012_batch_zone
Revises: 0011_audit_append_only
Create Date: 2026-11-30 15:15:00+00:00

A file is read again (``import --again``) only in the zone it was first read in: in another zone its
results would be stored a second time at other times. Imports made before this revision have no zone
recorded (NULL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_batch_zone'
down_revision: str | None = '0011_audit_append_only'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('import_batch', sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): a batch copy of import_batch would have to drop
    # the table every imported panel and result refers to, which its foreign keys refuse.
    op.drop_column('import_batch', 'timezone')
