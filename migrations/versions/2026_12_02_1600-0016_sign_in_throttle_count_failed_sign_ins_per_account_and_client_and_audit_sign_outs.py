"""count failed sign-ins per account and client (a throttle, not a lock); audit sign-outs, account changes

Revision ID: 0016
Revises: 0015_preliminary_corrections
Create Date: 2026-12-02 16:00:00+00:00

``sign_in_throttle`` counts recent failed sign-ins per account and client and per account, each failure by
one statement (docs/deployment.md, Sign-in throttling and sessions). ``app_user.failed_attempts`` and
``locked_until`` held the hard lock it replaces: dropped (a downgrade brings them back, unlocked).
``audit_log.action`` also accepts ``sign_out``, ``user_unlock``, ``user_set_password`` and
``user_remove_team``; a downgrade refuses while the trail holds any of them rather than drop them. On SQLite
the audit trail's table is copied to change the check, and its append-only triggers (0011) are made again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015_preliminary_corrections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = (
    "view",
    "export",
    "acknowledge",
    "add_event",
    "set_patient_range",
    "end_patient_range",
    "import",
    "settings",
    "lab_range",
    "sign_in",
    "sign_in_failed",
    "user_add",
    "user_disable",
    "assign_team",
)
ADDED = ("sign_out", "user_unlock", "user_set_password", "user_remove_team")
APPEND_ONLY = "the audit trail is append-only"  # as in 0011


def _check(actions: tuple[str, ...]) -> str:
    return f"action IN ({', '.join(repr(action) for action in actions)})"


def _action_check(actions: tuple[str, ...]) -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_audit_log_action"), _check(actions))
    if op.get_bind().dialect.name == "sqlite":  # SQLite drops a table's triggers with it
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def upgrade() -> None:
    op.create_table(
        "sign_in_throttle",
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username", "client", name=op.f("pk_sign_in_throttle")),
    )
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): copying app_user, as batch mode would, is refused
    # while user_team's rows refer to it.
    for column in ("failed_attempts", "locked_until"):
        op.execute(f"ALTER TABLE app_user DROP COLUMN {column}")
    _action_check(BEFORE + ADDED)


def downgrade() -> None:
    found = (
        op.get_bind()
        .execute(sa.text(f"SELECT COUNT(*) FROM audit_log WHERE NOT ({_check(BEFORE)})"))
        .scalar_one()
    )
    if found:
        raise RuntimeError(
            f"the audit trail holds {found} sign-outs or account changes the earlier schema cannot hold; "
            "nothing was changed"
        )
    _action_check(BEFORE)
    op.add_column("app_user", sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("app_user", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.drop_table("sign_in_throttle")
