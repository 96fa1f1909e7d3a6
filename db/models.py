"""The store, modelled as clinicians and laboratory systems see it.

A *panel* is one specimen (one accession, one collection time, one lab); a *result* is one analyte of it.
Results are versioned: a correction or a changed value adds a version and marks the earlier one as no
longer current, so the history of what was reported is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from db.types import UTCDateTime
from monitor.analysis.changes import GRADED
from monitor.analysis.status import LATEST_FIELDS, latest_column
from monitor.formats.events import EVENT_KINDS

# Result status vocabulary (HL7 v2 table 0085 / FHIR observation-status; docs/clinical-basis.md, Result
# status).
RESULT_STATUSES = ("preliminary", "final", "corrected", "cancelled", "entered-in-error")
# "withdrawn": a flag cleared by the lab's correction or withdrawal of a result; "final": a preliminary
# result made final (docs/clinical-basis.md, Preliminary results; Corrections that clear a flag).
STATUS_CHANGES = ("appeared", "worsened", "cleared", "withdrawn", "final")
ROLES = ("viewer", "clinician", "admin")
# What the audit trail records. A new action is added here and to the CHECK on audit_log (a migration):
# the store refuses any other, and the Audit page offers these as its filter.
AuditAction = Literal[
    # Seeing and taking away patient data.
    "view",
    "export",
    # Clinical records.
    "acknowledge",
    "add_event",
    "set_patient_range",
    "end_patient_range",
    # Data and the site's configuration.
    "import",
    "settings",
    "lab_range",
    # Accounts and access.
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "user_add",
    "user_disable",
    "user_unlock",
    "user_set_password",
    "user_remove_team",
    "assign_team",
]
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)

# How much free text a person may write into the store (docs/deployment.md, "The audit trail"); longer input
# is refused with a message saying so, never cut short.
REASON_LIMIT = 2_000  # characters: an acknowledgement's comment, a patient range's reason
EVENT_DETAILS_LIMIT = 16_000  # characters: the details of a clinical event or note
AUDIT_DETAILS_LIMIT = 16_384  # bytes (UTF-8) of an audit row's details, as JSON


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Lab(Base):
    """A laboratory or other source of results."""

    __tablename__ = "lab"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)


class LabRange(Base):
    """A reference range a laboratory publishes for an analyte, set by an administrator.

    Used when a result arrives without its own range (each lab has its own; docs/clinical-basis.md, Which
    range applies); an age band in completed months (``min_months`` inclusive, ``max_months`` exclusive) and
    a sex narrow it.
    """

    __tablename__ = "lab_range"
    __table_args__ = (Index("ix_lab_range_lab_analyte", "lab_id", "analyte"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    analyte: Mapped[str] = mapped_column(String(32))
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(1))
    min_months: Mapped[float | None] = mapped_column(Float)
    max_months: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Patient(Base):
    """A patient, identified by a medical record number within its assigning authority."""

    __tablename__ = "patient"
    __table_args__ = (
        UniqueConstraint("assigning_authority", "mrn"),
        CheckConstraint("sex IN ('F', 'M', 'O', 'U')", name="sex"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64))
    # '' when the source names no authority: a NULL would defeat the unique constraint.
    assigning_authority: Mapped[str] = mapped_column(String(64), default="", server_default="")
    name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))
    is_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Team(Base):
    """A care team (e.g. oncology, internal medicine)."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class PatientTeam(Base):
    """A patient followed by a team; a patient may belong to several."""

    __tablename__ = "patient_team"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True, index=True)


class AppUser(Base):
    """A person who signs in to the dashboard."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignInThrottle(Base):
    """Recent failed sign-ins, counted per account and client, per account (``client`` '*') and per client
    (``username`` '*'); '' is a client whose address is unknown. Each failure is counted by one statement,
    so parallel attempts cannot lose a count (docs/deployment.md, Sign-in throttling and sessions)."""

    __tablename__ = "sign_in_throttle"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The failure before the last: the delay an attempt waits is counted from it.
    previous_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserTeam(Base):
    """A user's membership of a team: what they may see."""

    __tablename__ = "user_team"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True)


class ImportBatch(Base):
    """One file (or one demo seeding) brought into the store, with what became of its records."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(32))
    imported_by: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    superseded: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # The zone times without an offset were read in: '' when such times were refused (a CSV imported
    # without one), NULL when not recorded (imports before migration 0012).
    timezone: Mapped[str | None] = mapped_column(String(64))


class RejectedRecord(Base):
    """A record that could not be trusted, kept verbatim for review with the reason."""

    __tablename__ = "rejected_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    location: Mapped[str] = mapped_column(String(100))
    raw_text: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class Panel(Base):
    """One specimen: a patient's CBC from one lab, at one collection time, under one accession."""

    __tablename__ = "panel"
    __table_args__ = (
        # The natural key that makes a repeated import idempotent ('' when no accession was sent).
        UniqueConstraint("patient_id", "collected_at", "lab_id", "accession"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    accession: Mapped[str] = mapped_column(String(100), default="", server_default="")
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"))


class Result(Base):
    """One analyte of a panel: as received, as normalised, and its place in the version history."""

    __tablename__ = "result"
    __table_args__ = (
        # Versions are numbered per panel and analyte, and the current one is always the highest: two
        # writers racing to supersede the same result collide here instead of both becoming current.
        # This one index also serves every lookup by panel; each further index on this largest table
        # would cost every import (measured by benchmarks/import_csv.py).
        UniqueConstraint("panel_id", "analyte", "version"),
        CheckConstraint(_in("status", RESULT_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    panel_id: Mapped[int] = mapped_column(ForeignKey("panel.id"))
    analyte: Mapped[str] = mapped_column(String(32))
    loinc: Mapped[str | None] = mapped_column(String(16))
    # Exactly as received, for audit and for re-normalising should a unit rule change.
    value_raw: Mapped[str] = mapped_column(String(100))
    unit_raw: Mapped[str] = mapped_column(String(50))
    # Canonical: counts in 10^9/L, haemoglobin in g/dL, differential in %.
    value: Mapped[float | None] = mapped_column(Float)
    # A censored result ("<0.1"): the value is the limit the lab could measure, on this side of it.
    comparator: Mapped[str | None] = mapped_column(String(2))
    unit: Mapped[str] = mapped_column(String(16))
    ref_low: Mapped[float | None] = mapped_column(Float)
    ref_high: Mapped[float | None] = mapped_column(Float)
    ref_raw: Mapped[str | None] = mapped_column(String(100))
    abnormal_flag: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    derived: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClinicalEvent(Base):
    """Something that happened to the patient and explains the counts: a cycle, G-CSF, a drug, ..."""

    __tablename__ = "clinical_event"
    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "start_at", "label"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(20))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    label: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str] = mapped_column(String(100))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReferenceOverride(Base):
    """A patient-specific reference range set by a clinician, e.g. a Duffy-null ANC range (Hibbs et al. 2025).

    The ranges and their sources: docs/clinical-basis.md, Duffy-null reference intervals.
    """

    __tablename__ = "reference_override"
    __table_args__ = (Index("ix_reference_override_patient", "patient_id", "analyte"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    analyte: Mapped[str] = mapped_column(String(32))
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class AuditLog(Base):
    """Who saw or changed what, when. Rows are only ever added, each chained to the one before.

    ``at`` is the store's clock when the row was written; ``row_hash`` is the SHA-256 of the previous row's
    hash and this row's content (``db.audit.chain_hash``), so that a row changed, removed or slipped in
    afterwards breaks the chain (``python -m monitor audit verify``).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_patient_at", "patient_id", "at"),
        CheckConstraint(_in("action", AUDIT_ACTIONS), name="action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    username: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    # No foreign key: the trail must outlive anything it mentions.
    patient_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Null only in a row written around the application (which the chain then names as broken).
    row_hash: Mapped[str | None] = mapped_column(String(64))


class Setting(Base):
    """A site setting (rule thresholds, CTCAE version, demo anchor date), stored as JSON text."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PatientStatus(Base):
    """The materialised per-patient summary that lists read; recomputed after every write.

    Besides the columns below, one column per graded analyte and field of
    ``monitor.analysis.status.LATEST_FIELDS`` (``latest_wbc``, ``latest_wbc_comparator``, ``latest_wbc_at``,
    ``latest_wbc_lln``, ``latest_wbc_range_source``, ``latest_wbc_grade``, ``latest_wbc_status``,
    ``latest_wbc_uln``, ``latest_wbc_high_grade``, ``latest_wbc_lab_flag``, then ANC's and ALC's), added
    after the class from that one list.
    """

    __tablename__ = "patient_status"
    __table_args__ = (Index("ix_patient_status_last_collected_at", "last_collected_at"),)

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    # analysis.patterns: which lineages the latest panel with a WBC shows low together, and the counts.
    pattern: Mapped[str | None] = mapped_column(String(40))
    pattern_detail: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The recent WBC series (JSON list, oldest first) for the worklist's sparkline.
    wbc_recent: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # In a chemotherapy cycle when computed: which and when it started (its day is counted when shown), the
    # cycle days the next dose is expected on and readiness is judged from, and the readiness verdict judged
    # then (none before that day; the sentence is made when shown: analysis.cycles.readiness_as_of).
    cycle: Mapped[int | None] = mapped_column(Integer)
    cycle_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_dose_day: Mapped[int | None] = mapped_column(Integer)
    readiness_from_day: Mapped[int | None] = mapped_column(Integer)
    ready_now: Mapped[bool | None] = mapped_column(Boolean)
    readiness: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Febrile neutropenia now, for any patient (analysis.febrile: true while an episode is open, false with a
    # temperature or fever recorded and none open, none with neither), and the episode's sentence (its times
    # dated); the worklist ranks it first.
    febrile_neutropenia: Mapped[bool | None] = mapped_column(Boolean)
    febrile_detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When the open episode ends if no fever and no lower ANC arrive first (the ANC in force is already >= 0.5
    # and the last fever's 24 hours run out then): a list read after it shows the episode ended without
    # waiting for the next recompute.
    febrile_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The latest haemoglobin (g/dL) and platelets (10^9/L) with their CTCAE grades (Anemia, Platelet count
    # decreased), for the worklist's per-lineage cells.
    latest_hgb: Mapped[float | None] = mapped_column(Float)
    latest_hgb_grade: Mapped[int | None] = mapped_column(Integer)
    latest_plt: Mapped[float | None] = mapped_column(Float)
    latest_plt_grade: Mapped[int | None] = mapped_column(Integer)
    # Whether the latest result of an analyte the status reads carries a critical flag of the lab's (HH, LL,
    # AA, off scale: monitor.analysis.status.CRITICAL_FLAGS), and its words; the worklist ranks it first.
    lab_critical: Mapped[bool | None] = mapped_column(Boolean)
    lab_critical_detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    # CBCs due (analysis.due.nadir_status): the latest chemotherapy cycle's nadir window ("D8-D15"), when it
    # opens and closes (the site zone's day starts, in UTC), whether a WBC or ANC was drawn in it, and until
    # when the cycle is current; the previous cycle's window when it closed without a count. What is due is
    # judged when a list is read, as of its time (analysis.due.due_items).
    nadir_cycle: Mapped[int | None] = mapped_column(Integer)
    nadir_window: Mapped[str | None] = mapped_column(String(20))
    nadir_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nadir_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nadir_sampled: Mapped[bool | None] = mapped_column(Boolean)
    nadir_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    missed_cycle: Mapped[int | None] = mapped_column(Integer)
    missed_window: Mapped[str | None] = mapped_column(String(20))
    missed_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    missed_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The latest cycle's nadir window is the nadir forecast's (analysis.due, from the columns below).
    nadir_forecast: Mapped[bool | None] = mapped_column(Boolean)
    # The nadir forecast of the chemotherapy cycle now (analysis.forecast, as of computed_at; none outside a
    # cycle): the cycle, the median nadir ANC and its 80 % interval, its day and the window of whole days a
    # CBC best catches it (days since the dose, the dose = day 0), the day back at 1.5, the probability of a
    # grade 4 nadir, or the reason there is none; ``forecast_key`` fingerprints what it was fitted to (the
    # doses and G-CSF, the ANC results, the model and the rules), so that a recompute with the same
    # inputs copies it instead of fitting again.
    forecast_cycle: Mapped[int | None] = mapped_column(Integer)
    nadir_anc: Mapped[float | None] = mapped_column(Float)
    nadir_anc_low: Mapped[float | None] = mapped_column(Float)
    nadir_anc_high: Mapped[float | None] = mapped_column(Float)
    nadir_day: Mapped[float | None] = mapped_column(Float)
    nadir_window_first: Mapped[int | None] = mapped_column(Integer)
    nadir_window_last: Mapped[int | None] = mapped_column(Integer)
    recovery_day: Mapped[float | None] = mapped_column(Float)
    p_grade4: Mapped[float | None] = mapped_column(Float)
    forecast_reason: Mapped[str | None] = mapped_column(Text)
    # The end of the nadir window's last day (after it the forecast is of the past: no worklist chip) and
    # the lowest ANC measured in the cycle from D2 (a grade 4 measured is no longer a forecast).
    nadir_window_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    observed_nadir_anc: Mapped[float | None] = mapped_column(Float)
    forecast_key: Mapped[str | None] = mapped_column(String(64))
    # When a flag last appeared or a grade last rose, and when the flags were last acknowledged: the
    # worklist's "acknowledged" without reading the whole change and acknowledgement history.
    flags_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    n_panels: Mapped[int] = mapped_column(Integer, default=0)
    # monitor.analysis.flags' names in priority order, and one sentence per flag in the same order.
    flags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    explanations: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


# The type of each field of the latest results the status keeps (monitor.analysis.status.LATEST_FIELDS).
_LATEST_TYPES: dict[str, Callable[[], TypeEngine[Any]]] = {
    "": Float,
    "comparator": lambda: String(2),
    "at": UTCDateTime,
    "lln": Float,
    "range_source": lambda: String(20),
    "grade": Integer,
    "status": lambda: String(20),
    "uln": Float,
    "high_grade": Integer,
    "lab_flag": lambda: String(10),
}


def _add_latest_columns(model: type[Base]) -> None:
    """A nullable column per graded analyte and field of ``LATEST_FIELDS``, in that order (declarative adds
    a column assigned to a mapped class to its table and its mapper)."""
    for analyte in GRADED:
        for field in LATEST_FIELDS:
            setattr(
                model, latest_column(analyte, field), mapped_column(_LATEST_TYPES[field](), nullable=True)
            )


_add_latest_columns(PatientStatus)


class StatusChange(Base):
    """A change in a patient's status noticed when it was recomputed: a flag appeared or cleared, a grade
    rose. Append-only; ``python -m monitor alerts --since`` reads it."""

    __tablename__ = "status_change"
    __table_args__ = (
        Index("ix_status_change_recorded_at", "recorded_at"),
        Index("ix_status_change_patient", "patient_id", "recorded_at"),
        CheckConstraint(_in("change", STATUS_CHANGES), name="change"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    change: Mapped[str] = mapped_column(String(10))
    # A flag of monitor.analysis.flags.FLAGS, "grade" for a rise in an analyte's CTCAE grade, or "result"
    # for a preliminary result made final.
    flag: Mapped[str] = mapped_column(String(40))
    analyte: Mapped[str | None] = mapped_column(String(32))
    grade_before: Mapped[int | None] = mapped_column(Integer)
    grade_after: Mapped[int | None] = mapped_column(Integer)
    explanation: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When the latest result behind the change was collected.
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Acknowledgement(Base):
    """A clinician's acknowledgement of a patient's flags as they stood, with a comment (also audited)."""

    __tablename__ = "acknowledgement"
    __table_args__ = (Index("ix_acknowledgement_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    username: Mapped[str] = mapped_column(String(100))
    # The flags acknowledged, comma-separated in the status's order.
    flags: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="", server_default="")


class OtherObservation(Base):
    """An observation outside the CBC (chemistry, morphology, ...): kept exactly as received, not analysed."""

    __tablename__ = "other_observation"
    # The same content for the same panel is stored once: a repeated import adds nothing.
    __table_args__ = (UniqueConstraint("panel_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    panel_id: Mapped[int] = mapped_column(ForeignKey("panel.id"))
    code: Mapped[str] = mapped_column(String(64))
    code_system: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    value_type: Mapped[str] = mapped_column(String(20))
    value_raw: Mapped[str] = mapped_column(Text)
    unit_raw: Mapped[str] = mapped_column(String(50))
    ref_raw: Mapped[str] = mapped_column(String(100))
    abnormal_flag: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedMessage(Base):
    """One message a live feed (``python -m monitor listen``) delivered, and the acknowledgement it got.

    A message processed (AA or AE) has a ``message_key`` (its control ID and content): the same message
    sent again is answered from here, never stored twice. A message rejected (AR: not an ORU^R01, not
    readable) has none, so that a corrected or repeated one is read afresh; its text is kept with the
    batch's refused records. No patient data here: the control ID, counts and the ACK's words.
    """

    __tablename__ = "feed_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    control_id: Mapped[str] = mapped_column(String(199))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ack_code: Mapped[str] = mapped_column(String(2))
    ack_text: Mapped[str] = mapped_column(Text)
    # The refusals its ERR segments named, as JSON [[location, reason], ...]: a message sent again is
    # answered with exactly these.
    ack_errors: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # Observations the message carried, and the records of it refused.
    results: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)


class FeedListener(Base):
    """A live-feed listener's last sign of life, by its host and the address it listens on (its health,
    read by the dashboard and ``python -m monitor listen-status``)."""

    __tablename__ = "feed_listener"

    host_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    address: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # NULL while it runs.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StatusPending(Base):
    """A patient whose results a live feed stored and whose status is still to be recomputed (the listener
    recomputes them in passes, off the acknowledgement's path; written in the results' own transaction, so
    that a listener stopped at any moment leaves them to its next start)."""

    __tablename__ = "status_pending"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    # The lowest id of the panels the feed added since the status was last recomputed, when adding new
    # panels is all it did to this patient's results; null when it did anything else (a correction, a
    # repeat): then the status is recomputed from the whole history (db.histories).
    first_panel: Mapped[int | None] = mapped_column(Integer)
