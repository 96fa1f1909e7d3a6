"""live feed: the messages an MLLP listener acknowledged, its heartbeat, and statuses still to recompute

Revision ID: 0022_live_feed
Revises: 0021_high_counts
Create Date: 2026-12-06 00:00:00+00:00

``feed_message``: one row per message a live feed delivered, with the acknowledgement it was given
(AA/AE/AR, its words and the refusals its ERR segments named) and, for a processed message, a key of its control ID and content (unique), so that a message
sent again is answered from here and stored once. ``feed_listener``: each listener's host, address, process and
last sign of life. ``status_pending``: patients whose results a feed stored and whose status the listener
still has to recompute.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0022_live_feed"
down_revision: str | None = "0021_high_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=True),
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack_text", sa.Text(), nullable=False),
        sa.Column("ack_errors", sa.Text(), server_default="[]", nullable=False),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["import_batch.id"], name=op.f("fk_feed_message_batch_id_import_batch")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_message")),
        sa.UniqueConstraint("message_key", name=op.f("uq_feed_message_message_key")),
    )
    with op.batch_alter_table("feed_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_message_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_feed_message_received_at"), ["received_at"], unique=False)
    op.create_table(
        "feed_listener",
        sa.Column("host_name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("host_name", "address", name=op.f("pk_feed_listener")),
    )
    op.create_table(
        "status_pending",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_status_pending_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_status_pending")),
    )


def downgrade() -> None:
    op.drop_table("status_pending")
    op.drop_table("feed_listener")
    with op.batch_alter_table("feed_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_message_received_at"))
        batch_op.drop_index(batch_op.f("ix_feed_message_batch_id"))
    op.drop_table("feed_message")
