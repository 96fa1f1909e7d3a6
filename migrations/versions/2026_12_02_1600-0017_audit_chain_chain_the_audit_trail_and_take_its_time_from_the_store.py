"""chain the audit trail's rows by hash and take their time from the store's clock

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 16:00:00+00:00

``audit_log`` gains ``row_hash``: the SHA-256 of the previous row's hash and the row's own content (id,
time, user, action, patient, details), so that a row changed, removed or slipped in around the application
breaks the chain (``python -m monitor audit verify`` names the first such row). The rows already stored
are chained here, in id order, from the same fixed genesis the application starts from.

The store now sets an audit row's time itself: on PostgreSQL a trigger writes the transaction's time
(``now()``) into every new row, whatever the client sent; on SQLite, where a trigger cannot change the row
it is inserting, a row whose time is more than a minute off the store's clock is refused. SQLite also
refuses a new row with the id of a stored one: ``REPLACE INTO`` (and ``INSERT OR REPLACE``) deletes the
old row without firing the delete trigger of 0011 unless ``recursive_triggers`` is on.

A later migration that copies ``audit_log`` on SQLite (batch mode) must make these triggers again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As db.audit.GENESIS and db.audit.chain_hash, frozen with this revision.
GENESIS = "0" * 64
APPEND_ONLY = "the audit trail is append-only"  # as in 0011
OFF_THE_CLOCK = "an audit row takes its time from the clock of the store"
CLOCK_TOLERANCE_SECONDS = 60

audit_log = sa.table(
    "audit_log",
    sa.column("id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("username", sa.String()),
    sa.column("action", sa.String()),
    sa.column("patient_id", sa.Integer()),
    sa.column("details", sa.Text()),
    sa.column("row_hash", sa.String()),
)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _chain_hash(previous: str, row: sa.Row) -> str:
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    time = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content = _encode([row.id, time, row.username, row.action, row.patient_id, row.details])
    return hashlib.sha256((previous + content).encode("utf-8")).hexdigest()


def _chain_the_stored_rows(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.select(
            audit_log.c.id,
            audit_log.c.at,
            audit_log.c.username,
            audit_log.c.action,
            audit_log.c.patient_id,
            audit_log.c.details,
        ).order_by(audit_log.c.id)
    ).all()
    previous, hashes = GENESIS, []
    for row in rows:
        previous = _chain_hash(previous, row)
        hashes.append((row.id, previous))
    if not hashes:
        return
    # Through the driver, in bulk: a trail of 100,000 rows is hashed and stored in seconds.
    cursor = bind.connection.dbapi_connection.cursor()
    try:
        if bind.dialect.name == "postgresql":
            cursor.execute("CREATE TEMPORARY TABLE audit_chain (id integer PRIMARY KEY, row_hash text) ON COMMIT DROP")
            with cursor.copy("COPY audit_chain (id, row_hash) FROM STDIN") as copy:
                for row in hashes:
                    copy.write_row(row)
            cursor.execute(
                "UPDATE audit_log SET row_hash = audit_chain.row_hash FROM audit_chain "
                "WHERE audit_log.id = audit_chain.id"
            )
        else:
            cursor.executemany("UPDATE audit_log SET row_hash = ? WHERE id = ?", [(h, i) for i, h in hashes])
    finally:
        cursor.close()


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("audit_log", sa.Column("row_hash", sa.String(length=64), nullable=True))
    if bind.dialect.name == "postgresql":
        # The migration runs as the schema's owner, the one role that may set the append-only trigger aside.
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        _chain_the_stored_rows(bind)
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        op.execute(
            "CREATE FUNCTION audit_log_store_clock() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.at := now(); RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_store_clock BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_store_clock()"
        )
        return
    op.execute("DROP TRIGGER audit_log_no_update")
    _chain_the_stored_rows(bind)
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
        "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_log_store_clock BEFORE INSERT ON audit_log "
        f"WHEN abs(julianday(NEW.at) - julianday('now')) * 86400 > {CLOCK_TOLERANCE_SECONDS} "
        f"BEGIN SELECT RAISE(ABORT, '{OFF_THE_CLOCK}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_store_clock ON audit_log")
        op.execute("DROP FUNCTION audit_log_store_clock()")
    else:
        op.execute("DROP TRIGGER audit_log_store_clock")
        op.execute("DROP TRIGGER audit_log_no_replace")
    # Not in batch mode: copying the table on SQLite would drop 0011's triggers with it.
    op.execute("ALTER TABLE audit_log DROP COLUMN row_hash")
