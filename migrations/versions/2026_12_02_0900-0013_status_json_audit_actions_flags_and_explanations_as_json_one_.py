"""flags and explanations as JSON lists, the unread latest_*_low columns dropped, one audit action vocabulary

Revision ID: 0013_status_json_audit_actions
Revises: 0012_batch_zone
Create Date: 2026-12-02 09:00:00+00:00

``patient_status.flags`` held the flag names comma-separated and ``explanations`` a JSON list as text; both
are now JSON lists, carried over (a downgrade writes them back as they were). ``latest_wbc_low``,
``latest_anc_low`` and ``latest_alc_low`` were written and never read: dropped (a downgrade brings them back
empty; nothing read them). ``audit_log.action`` is now checked against every action the application has
written; a store whose trail holds another is refused, naming it, before anything is changed. On SQLite the
audit trail's table is copied to add the check, and its append-only triggers (0011) are made again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_status_json_audit_actions'
down_revision: str | None = '0012_batch_zone'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every action written to the trail up to this revision (a later one that adds an action replaces the check).
AUDIT_ACTIONS = (
    'view',
    'export',
    'acknowledge',
    'add_event',
    'set_patient_range',
    'end_patient_range',
    'import',
    'settings',
    'lab_range',
    'sign_in',
    'sign_in_failed',
    'user_add',
    'user_disable',
    'assign_team',
)
ACTION_CHECK = f"action IN ({', '.join(repr(action) for action in AUDIT_ACTIONS)})"
APPEND_ONLY = "the audit trail is append-only"  # as in 0011
ANALYTES = ('wbc', 'anc', 'alc')

status = sa.table('patient_status', sa.column('patient_id', sa.Integer()), sa.column('flags', sa.Text()))


def _rewrite_flags(convert) -> None:
    """Every row's ``flags`` text rewritten by ``convert`` (the column holds text while this runs)."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(status.c.patient_id, status.c.flags)).all()
    changed = [{'key': key, 'listed': convert(text)} for key, text in rows]
    if changed:
        bind.execute(
            status.update().where(status.c.patient_id == sa.bindparam('key')).values(flags=sa.bindparam('listed')),
            changed,
        )


def _as_json(text: str | None) -> str:
    return json.dumps([flag for flag in (text or '').split(',') if flag])


def _as_commas(text: str | None) -> str:
    return ','.join(json.loads(text or '[]'))


def _refuse_unknown_actions() -> None:
    found = op.get_bind().execute(
        sa.text(f"SELECT DISTINCT action FROM audit_log WHERE NOT ({ACTION_CHECK})")
    ).scalars().all()
    if found:
        raise RuntimeError(
            f"the audit trail holds actions outside its vocabulary ({', '.join(sorted(found))}); "
            "nothing was changed"
        )


def _append_only_on_sqlite() -> None:
    """SQLite drops a table's triggers with it: the audit trail's copy gets 0011's again."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    for event in ('UPDATE', 'DELETE'):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def _drop_text_defaults_on_postgresql() -> None:
    """PostgreSQL cannot cast a column's default with the column between text and json: dropped first,
    set again with the new type."""
    if op.get_bind().dialect.name != 'postgresql':
        return
    for column in ('flags', 'explanations'):
        op.alter_column('patient_status', column, server_default=None)


def upgrade() -> None:
    _refuse_unknown_actions()
    _rewrite_flags(_as_json)
    _drop_text_defaults_on_postgresql()
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.alter_column(
            'flags',
            existing_type=sa.String(length=200),
            type_=sa.JSON(),
            existing_nullable=False,
            server_default='[]',
            postgresql_using='flags::json',
        )
        batch_op.alter_column(
            'explanations',
            existing_type=sa.Text(),
            type_=sa.JSON(),
            existing_nullable=False,
            server_default='[]',
            postgresql_using='explanations::json',
        )
        for analyte in ANALYTES:
            batch_op.drop_column(f'latest_{analyte}_low')

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_audit_log_action'), ACTION_CHECK)
    _append_only_on_sqlite()


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_audit_log_action'), type_='check')
    _append_only_on_sqlite()

    _drop_text_defaults_on_postgresql()
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        for analyte in ANALYTES:
            batch_op.add_column(sa.Column(f'latest_{analyte}_low', sa.Float(), nullable=True))
        batch_op.alter_column(
            'explanations',
            existing_type=sa.JSON(),
            type_=sa.Text(),
            existing_nullable=False,
            server_default='[]',
            postgresql_using='explanations::text',
        )
        batch_op.alter_column(
            'flags',
            existing_type=sa.JSON(),
            type_=sa.String(length=200),
            existing_nullable=False,
            server_default='',
            postgresql_using='flags::text',
        )
    _rewrite_flags(_as_commas)
