"""create the CBC store: patients, labs, panels, versioned results, events, imports, access, audit

Revision ID: 0001_cbc_store
Revises:
Create Date: 2026-11-23 19:07:48.057810+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001_cbc_store'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'clinician', 'admin')", name=op.f('ck_app_user_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_log_patient_at', ['patient_id', 'at'], unique=False)

    op.create_table('import_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('imported_by', sa.String(length=100), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('superseded', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batch'))
    )
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_batch_content_sha256'), ['content_sha256'], unique=False)

    op.create_table('lab',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_synthetic', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab')),
    sa.UniqueConstraint('code', name=op.f('uq_lab_code'))
    )
    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('assigning_authority', sa.String(length=64), server_default='', nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=1), nullable=True),
    sa.Column('is_synthetic', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sex IN ('F', 'M', 'O', 'U')", name=op.f('ck_patient_sex')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('assigning_authority', 'mrn', name=op.f('uq_patient_assigning_authority_mrn'))
    )
    op.create_table('setting',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_setting'))
    )
    op.create_table('team',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team')),
    sa.UniqueConstraint('code', name=op.f('uq_team_code'))
    )
    op.create_table('clinical_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), server_default='', nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('chemotherapy', 'gcsf', 'medication', 'infection', 'fever', 'supplement', 'transfusion', 'note')", name=op.f('ck_clinical_event_kind')),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_clinical_event_batch_id_import_batch')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_clinical_event_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinical_event')),
    sa.UniqueConstraint('patient_id', 'kind', 'start_at', 'label', name=op.f('uq_clinical_event_patient_id_kind_start_at_label'))
    )
    with op.batch_alter_table('clinical_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clinical_event_batch_id'), ['batch_id'], unique=False)

    op.create_table('panel',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('lab_id', sa.Integer(), nullable=False),
    sa.Column('accession', sa.String(length=100), server_default='', nullable=False),
    sa.Column('collected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_panel_batch_id_import_batch')),
    sa.ForeignKeyConstraint(['lab_id'], ['lab.id'], name=op.f('fk_panel_lab_id_lab')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_panel_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel')),
    sa.UniqueConstraint('patient_id', 'collected_at', 'lab_id', 'accession', name=op.f('uq_panel_patient_id_collected_at_lab_id_accession'))
    )
    with op.batch_alter_table('panel', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_panel_lab_id'), ['lab_id'], unique=False)

    op.create_table('patient_status',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('latest_wbc', sa.Float(), nullable=True),
    sa.Column('latest_wbc_low', sa.Float(), nullable=True),
    sa.Column('latest_wbc_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('latest_anc', sa.Float(), nullable=True),
    sa.Column('latest_anc_low', sa.Float(), nullable=True),
    sa.Column('latest_anc_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_collected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('n_panels', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_status_patient_id_patient')),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patient_status'))
    )
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.create_index('ix_patient_status_last_collected_at', ['last_collected_at'], unique=False)

    op.create_table('patient_team',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_team_patient_id_patient')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_patient_team_team_id_team')),
    sa.PrimaryKeyConstraint('patient_id', 'team_id', name=op.f('pk_patient_team'))
    )
    with op.batch_alter_table('patient_team', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_team_team_id'), ['team_id'], unique=False)

    op.create_table('reference_override',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('analyte', sa.String(length=32), nullable=False),
    sa.Column('low', sa.Float(), nullable=True),
    sa.Column('high', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_by', sa.String(length=100), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_reference_override_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_override'))
    )
    with op.batch_alter_table('reference_override', schema=None) as batch_op:
        batch_op.create_index('ix_reference_override_patient', ['patient_id', 'analyte'], unique=False)

    op.create_table('rejected_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=100), nullable=False),
    sa.Column('raw_text', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_rejected_record_batch_id_import_batch')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_record'))
    )
    with op.batch_alter_table('rejected_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejected_record_batch_id'), ['batch_id'], unique=False)

    op.create_table('user_team',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_user_team_team_id_team')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_user_team_user_id_app_user')),
    sa.PrimaryKeyConstraint('user_id', 'team_id', name=op.f('pk_user_team'))
    )
    op.create_table('result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('panel_id', sa.Integer(), nullable=False),
    sa.Column('analyte', sa.String(length=32), nullable=False),
    sa.Column('loinc', sa.String(length=16), nullable=True),
    sa.Column('value_raw', sa.String(length=100), nullable=False),
    sa.Column('unit_raw', sa.String(length=50), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('ref_low', sa.Float(), nullable=True),
    sa.Column('ref_high', sa.Float(), nullable=True),
    sa.Column('ref_raw', sa.String(length=100), nullable=True),
    sa.Column('abnormal_flag', sa.String(length=10), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('derived', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('preliminary', 'final', 'corrected', 'cancelled', 'entered-in-error')", name=op.f('ck_result_status')),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batch.id'], name=op.f('fk_result_batch_id_import_batch')),
    sa.ForeignKeyConstraint(['panel_id'], ['panel.id'], name=op.f('fk_result_panel_id_panel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result')),
    sa.UniqueConstraint('panel_id', 'analyte', 'version', name=op.f('uq_result_panel_id_analyte_version'))
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.create_index('ix_result_analyte_current', ['analyte', 'is_current'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('uq_result_current', ['panel_id', 'analyte'], unique=True, sqlite_where=sa.text('is_current'), postgresql_where=sa.text('is_current'))



def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index('uq_result_current', sqlite_where=sa.text('is_current'), postgresql_where=sa.text('is_current'))
        batch_op.drop_index(batch_op.f('ix_result_batch_id'))
        batch_op.drop_index('ix_result_analyte_current')

    op.drop_table('result')
    op.drop_table('user_team')
    with op.batch_alter_table('rejected_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejected_record_batch_id'))

    op.drop_table('rejected_record')
    with op.batch_alter_table('reference_override', schema=None) as batch_op:
        batch_op.drop_index('ix_reference_override_patient')

    op.drop_table('reference_override')
    with op.batch_alter_table('patient_team', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_team_team_id'))

    op.drop_table('patient_team')
    with op.batch_alter_table('patient_status', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_status_last_collected_at')

    op.drop_table('patient_status')
    with op.batch_alter_table('panel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_lab_id'))
        batch_op.drop_index(batch_op.f('ix_panel_batch_id'))

    op.drop_table('panel')
    with op.batch_alter_table('clinical_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clinical_event_batch_id'))

    op.drop_table('clinical_event')
    op.drop_table('team')
    op.drop_table('setting')
    op.drop_table('patient')
    op.drop_table('lab')
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_batch_content_sha256'))

    op.drop_table('import_batch')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_patient_at')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    op.drop_table('app_user')
