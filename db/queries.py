"""The read side: frames in the analysis contract for pages and the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.frames import read_frame
from db.models import (
    ClinicalEvent,
    ImportBatch,
    Lab,
    Panel,
    Patient,
    PatientStatus,
    PatientTeam,
    RejectedRecord,
    Result,
    Team,
)
from db.settings import site_rules
from db.status import patient_context, with_limits
from monitor.cycles import CycleRules, treatment_cycles


class PatientNotFound(LookupError):
    """No patient (or more than one) answers to the identifier given."""


def _teams_by_patient(session: Session) -> pd.DataFrame:
    memberships = read_frame(
        session,
        select(PatientTeam.patient_id.label("patient_key"), Team.name.label("team"))
        .join(Team, Team.id == PatientTeam.team_id)
        .order_by(Team.name),
    )
    if memberships.empty:
        return pd.DataFrame({"teams": pd.Series(dtype="str")}, index=pd.Index([], name="patient_key"))
    return memberships.groupby("patient_key")["team"].agg(", ".join).rename("teams").to_frame()


def age_in_years(birth_dates: pd.Series, on: date) -> pd.Series:
    """Whole years of age on ``on`` (nullable integers)."""
    born = pd.to_datetime(birth_dates, errors="coerce")
    years = on.year - born.dt.year
    before_birthday = (on.month < born.dt.month) | ((on.month == born.dt.month) & (on.day < born.dt.day))
    return (years - before_birthday.astype("Int64")).astype("Int64")


def patient_list(session: Session, *, today: date | None = None) -> pd.DataFrame:
    """One row per patient from the materialised status, most recent CBC first."""
    today = today or datetime.now(UTC).date()
    statement = (
        select(
            Patient.id.label("patient_key"),
            Patient.mrn.label("patient_id"),
            Patient.assigning_authority,
            Patient.name,
            Patient.birth_date,
            Patient.sex,
            Patient.is_synthetic,
            PatientStatus.latest_wbc,
            PatientStatus.latest_wbc_comparator,
            PatientStatus.latest_wbc_low,
            PatientStatus.latest_wbc_at,
            PatientStatus.latest_wbc_lln,
            PatientStatus.latest_wbc_range_source,
            PatientStatus.latest_wbc_grade,
            PatientStatus.latest_anc,
            PatientStatus.latest_anc_comparator,
            PatientStatus.latest_anc_low,
            PatientStatus.latest_anc_at,
            PatientStatus.latest_anc_lln,
            PatientStatus.latest_anc_range_source,
            PatientStatus.latest_anc_grade,
            PatientStatus.latest_alc,
            PatientStatus.latest_alc_comparator,
            PatientStatus.latest_alc_at,
            PatientStatus.latest_alc_lln,
            PatientStatus.latest_alc_range_source,
            PatientStatus.latest_alc_grade,
            PatientStatus.pattern,
            PatientStatus.pattern_detail,
            PatientStatus.last_collected_at,
            func.coalesce(PatientStatus.n_panels, 0).label("n_panels"),
            PatientStatus.flags,
            PatientStatus.explanations,
        )
        .outerjoin(PatientStatus, PatientStatus.patient_id == Patient.id)
        .order_by(PatientStatus.last_collected_at.desc().nulls_last(), Patient.mrn)
    )
    frame = read_frame(
        session, statement, utc=["latest_wbc_at", "latest_anc_at", "latest_alc_at", "last_collected_at"]
    )
    frame = frame.join(_teams_by_patient(session), on="patient_key")
    # One list per patient (a patient list, not results: a map over a few thousand rows at most).
    frame["flags"] = frame["flags"].fillna("").map(lambda text: [flag for flag in text.split(",") if flag])
    frame["explanations"] = frame["explanations"].fillna("[]").map(json.loads)
    frame["teams"] = frame["teams"].fillna("")
    for analyte in ("wbc", "anc", "alc"):
        frame[f"latest_{analyte}_grade"] = frame[f"latest_{analyte}_grade"].astype("Int64")
    frame["age"] = age_in_years(frame["birth_date"], today)
    last_day = frame["last_collected_at"].dt.tz_convert(None).dt.normalize()
    frame["days_since_cbc"] = (pd.Timestamp(today) - last_day).dt.days.astype("Int64")
    return frame


def find_patient(session: Session, patient_id: str, *, authority: str | None = None) -> Patient:
    """The patient with this MRN (and authority, when several authorities use the same MRN)."""
    statement = select(Patient).where(Patient.mrn == patient_id)
    if authority is not None:
        statement = statement.where(Patient.assigning_authority == authority)
    found = session.scalars(statement).all()
    if not found:
        raise PatientNotFound(f"no patient with identifier {patient_id!r}")
    if len(found) > 1:
        authorities = ", ".join(sorted(p.assigning_authority or "(none)" for p in found))
        raise PatientNotFound(
            f"identifier {patient_id!r} is used by several assigning authorities ({authorities}); "
            "name one with --authority"
        )
    return found[0]


def patient_results(
    session: Session, patient_key: int, *, history: bool = False, analytes: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A patient's results, oldest first; ``history`` adds superseded versions."""
    statement = (
        select(
            Panel.collected_at,
            Result.analyte,
            Result.value,
            Result.comparator,
            Result.unit,
            Result.ref_low,
            Result.ref_high,
            Result.status,
            Result.derived,
            Lab.code.label("lab"),
            Panel.accession,
            Result.value_raw,
            Result.unit_raw,
            Result.loinc,
            Result.abnormal_flag,
            Result.version,
            Result.is_current,
            Result.superseded_at,
            Panel.id.label("panel_id"),
            Panel.lab_id,
        )
        .join(Panel, Panel.id == Result.panel_id)
        .join(Lab, Lab.id == Panel.lab_id)
        .where(Panel.patient_id == patient_key)
        .order_by(Panel.collected_at, Panel.id, Result.analyte, Result.version)
    )
    if not history:
        statement = statement.where(Result.is_current.is_(True))
    if analytes:
        statement = statement.where(Result.analyte.in_(analytes))
    results = read_frame(session, statement, utc=["collected_at", "superseded_at"])
    # The limit each result is judged against: the same resolution the patient status uses.
    return with_limits(results.assign(patient_key=patient_key), patient_context(session, [patient_key]))


def patient_events(session: Session, patient_key: int) -> pd.DataFrame:
    """A patient's clinical events, oldest first."""
    statement = (
        select(
            ClinicalEvent.kind,
            ClinicalEvent.start_at,
            ClinicalEvent.end_at,
            ClinicalEvent.label,
            ClinicalEvent.details,
        )
        .where(ClinicalEvent.patient_id == patient_key)
        .order_by(ClinicalEvent.start_at)
    )
    return read_frame(session, statement, utc=["start_at", "end_at"])


def patient_cycles(session: Session, patient_key: int, *, rules: CycleRules | None = None) -> pd.DataFrame:
    """A patient's chemotherapy cycles (``monitor.cycles.treatment_cycles``) under the site's rules."""
    rules = rules or site_rules(session).cycles
    results = patient_results(session, patient_key, analytes=("wbc", "anc", "plt"))
    events = patient_events(session, patient_key).assign(patient_key=patient_key)
    return treatment_cycles(results.assign(patient_key=patient_key), events, rules=rules)


def has_synthetic_data(session: Session) -> bool:
    """True when any patient in the store is synthetic (the dashboard then shows a banner)."""
    return session.scalar(select(Patient.id).where(Patient.is_synthetic.is_(True)).limit(1)) is not None


def patient_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Patient)) or 0)


def import_batches(session: Session, *, limit: int = 200) -> pd.DataFrame:
    """The most recent imports, newest first, with what became of their records."""
    statement = (
        select(
            ImportBatch.id,
            ImportBatch.file_name,
            ImportBatch.format,
            ImportBatch.imported_by,
            ImportBatch.imported_at,
            ImportBatch.accepted,
            ImportBatch.superseded,
            ImportBatch.unchanged,
            ImportBatch.rejected,
        )
        .order_by(ImportBatch.id.desc())
        .limit(limit)
    )
    return read_frame(session, statement, utc=["imported_at"])


def batch_rejections(session: Session, batch_id: int) -> pd.DataFrame:
    """The records one import refused, verbatim, with their reasons."""
    statement = (
        select(RejectedRecord.location, RejectedRecord.reason, RejectedRecord.raw_text)
        .where(RejectedRecord.batch_id == batch_id)
        .order_by(RejectedRecord.id)
    )
    return read_frame(session, statement)
