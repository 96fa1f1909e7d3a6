"""The read side: frames in the analysis contract for pages and the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.accounts import Viewer, visible
from db.forecasts import FORECAST_STATUS
from db.frames import read_frame
from db.models import (
    Acknowledgement,
    ClinicalEvent,
    ImportBatch,
    Lab,
    Panel,
    Patient,
    PatientStatus,
    PatientTeam,
    ReferenceOverride,
    RejectedRecord,
    Result,
    StatusChange,
    Team,
)
from db.status import patient_context, with_limits
from monitor.analysis.changes import FEBRILE, FEBRILE_UNJUDGED, GRADED
from monitor.analysis.cycles import readiness_as_of
from monitor.analysis.due import STATUS_COLUMNS as NADIR_COLUMNS
from monitor.analysis.febrile import on_day, on_day_text
from monitor.analysis.status import (
    LATEST_COLUMNS,
    STATUS_EXTRA_COLUMNS,
    latest_column,
    preliminary_analytes,
)
from monitor.timestamps import local_days

# The flags whose sentences are febrile_detail's (stored dated, read with today's times undated).
FEBRILE_FLAGS = (FEBRILE, FEBRILE_UNJUDGED)


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


def patient_list(
    session: Session,
    *,
    viewer: Viewer,
    timezone: str = "UTC",
    today: date | None = None,
    patient_key: int | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """One row per patient ``viewer`` may see, from the materialised status, most recent CBC first.

    Days (since the last CBC, of the current cycle) are calendar days in ``timezone`` (the site's);
    ``today`` is the date there unless given. ``patient_key``: that patient's row only. ``now`` (the
    current time unless given): an episode of febrile neutropenia whose quiet end (``febrile_until``) has
    passed is read as ended, before the next recompute records it.
    """
    zone = timezone
    now = now or datetime.now(UTC)
    today = today or now.astimezone(ZoneInfo(zone)).date()
    statement = (
        select(
            Patient.id.label("patient_key"),
            Patient.mrn.label("patient_id"),
            Patient.assigning_authority,
            Patient.name,
            Patient.birth_date,
            Patient.sex,
            Patient.is_synthetic,
            *(PatientStatus.__table__.c[name] for name in LATEST_COLUMNS),
            *(PatientStatus.__table__.c[name] for name in STATUS_EXTRA_COLUMNS),
            PatientStatus.pattern,
            PatientStatus.pattern_detail,
            PatientStatus.wbc_recent,
            PatientStatus.cycle,
            PatientStatus.cycle_start,
            PatientStatus.next_dose_day,
            PatientStatus.readiness_from_day,
            PatientStatus.ready_now,
            PatientStatus.readiness,
            PatientStatus.febrile_neutropenia,
            PatientStatus.febrile_detail,
            PatientStatus.febrile_until,
            *(PatientStatus.__table__.c[name] for name in NADIR_COLUMNS),
            *(PatientStatus.__table__.c[name] for name in FORECAST_STATUS),
            PatientStatus.computed_at,
            PatientStatus.last_collected_at,
            PatientStatus.flags_changed_at,
            PatientStatus.acknowledged_at,
            func.coalesce(PatientStatus.n_panels, 0).label("n_panels"),
            PatientStatus.flags,
            PatientStatus.explanations,
        )
        .outerjoin(PatientStatus, PatientStatus.patient_id == Patient.id)
        .where(visible(Patient.id, viewer))
        .order_by(PatientStatus.last_collected_at.desc().nulls_last(), Patient.mrn)
    )
    if patient_key is not None:
        statement = statement.where(Patient.id == patient_key)
    frame = read_frame(
        session,
        statement,
        utc=[
            *(latest_column(analyte, "at") for analyte in GRADED),
            "cycle_start",
            *(name for name in NADIR_COLUMNS if name.endswith(("_at", "_until"))),
            "computed_at",
            "last_collected_at",
            "flags_changed_at",
            "acknowledged_at",
        ],
    )
    frame = frame.join(_teams_by_patient(session), on="patient_key")
    # Flags and explanations come as lists; a patient without a status yet has none.
    for listed in ("flags", "explanations"):
        frame[listed] = [value if isinstance(value, list) else [] for value in frame[listed]]
    frame["teams"] = frame["teams"].fillna("")
    for analyte in ("wbc", "anc", "alc"):
        frame[f"latest_{analyte}_grade"] = frame[f"latest_{analyte}_grade"].astype("Int64")
        frame[f"latest_{analyte}_high_grade"] = frame[f"latest_{analyte}_high_grade"].astype("Int64")
    for analyte in ("hgb", "plt"):
        frame[f"latest_{analyte}_grade"] = frame[f"latest_{analyte}_grade"].astype("Int64")
    # A critical flag of the lab's on a latest result (docs/clinical-basis.md, The lab's abnormal flags).
    frame["lab_critical"] = frame["lab_critical"].astype("boolean")
    frame["lab_critical_detail"] = frame["lab_critical_detail"].fillna("")
    # The analytes whose latest result is preliminary (docs/clinical-basis.md, Preliminary results).
    frame["preliminary"] = preliminary_analytes(frame)
    # Each latest count's day in the site's zone and its age in calendar days: the worklist's reason dates a
    # count older than a week (docs/clinical-basis.md, Worklist priority).
    for analyte in GRADED:
        day = local_days(frame[latest_column(analyte, "at")], zone)
        frame[f"latest_{analyte}_day"] = day
        frame[f"latest_{analyte}_age_days"] = (pd.Timestamp(today) - day).dt.days.astype("Int64")
    # Febrile neutropenia now (an open episode): true, false, or null without a temperature or fever recorded.
    frame["febrile_neutropenia"] = frame["febrile_neutropenia"].astype("boolean")
    frame["febrile_detail"] = frame["febrile_detail"].fillna("")
    ended = febrile_ended(frame, now)
    if ended.any():
        frame.loc[ended, "febrile_neutropenia"] = False
        frame.loc[ended, "febrile_detail"] = ""
        kept = [
            [(flag, said) for flag, said in zip(flags, told, strict=False) if flag not in FEBRILE_FLAGS]
            for flags, told in zip(frame.loc[ended, "flags"], frame.loc[ended, "explanations"], strict=True)
        ]
        frame.loc[ended, "flags"] = pd.Series(
            [[flag for flag, _ in pairs] for pairs in kept], index=frame.index[ended], dtype=object
        )
        frame.loc[ended, "explanations"] = pd.Series(
            [[said for _, said in pairs] for pairs in kept], index=frame.index[ended], dtype=object
        )
    # Febrile neutropenia's times are stored dated: read today, today's are told by the clock alone.
    day = today.isoformat()
    frame["febrile_detail"] = on_day(frame["febrile_detail"], day).astype(object)
    febrile = frame["febrile_detail"].ne("").to_numpy(dtype=bool)
    frame.loc[febrile, "explanations"] = pd.Series(
        [
            [
                on_day_text(said, day) if flag in FEBRILE_FLAGS else said
                for flag, said in zip(flags, told, strict=False)
            ]
            for flags, told in zip(
                frame.loc[febrile, "flags"], frame.loc[febrile, "explanations"], strict=True
            )
        ],
        index=frame.index[febrile],
        dtype=object,
    )
    frame["age"] = age_in_years(frame["birth_date"], today)
    frame["days_since_cbc"] = (pd.Timestamp(today) - local_days(frame["last_collected_at"], zone)).dt.days
    frame["days_since_cbc"] = frame["days_since_cbc"].astype("Int64")
    frame["wbc_recent"] = frame["wbc_recent"].fillna("[]").map(json.loads)
    frame["cycle_day"] = (pd.Timestamp(today) - local_days(frame["cycle_start"], zone)).dt.days.astype(
        "Int64"
    )
    frame["cycle"] = frame["cycle"].astype("Int64")
    # Readiness as it stands today: judged when the status was computed, shown only from its window.
    for day in ("next_dose_day", "readiness_from_day"):
        frame[day] = frame[day].astype("Int64")
    judged_day = (local_days(frame["computed_at"], zone) - local_days(frame["cycle_start"], zone)).dt.days
    shown = readiness_as_of(
        frame.assign(judged_day=judged_day.astype("Int64"), verdict=frame["readiness"].fillna("")),
        timezone=zone,
    )
    frame["ready_now"], frame["readiness"] = shown["ready_now"], shown["readiness"]
    frame = frame.drop(columns=["computed_at"])
    # Acknowledged: the last acknowledgement is not older than the last flag that appeared or grade that
    # rose (both materialised in the status); nothing to acknowledge while no flag is raised.
    changed, acked = frame["flags_changed_at"], frame["acknowledged_at"]
    acknowledged = (acked >= changed).astype("boolean").where(acked.notna(), False)
    frame["acknowledged"] = acknowledged.where(changed.notna() & (frame["flags"].map(len) > 0), pd.NA)
    return frame


def febrile_ended(status: pd.DataFrame, now: datetime) -> np.ndarray:
    """Which status rows' episode of febrile neutropenia has ended by ``now``, before the next recompute
    records it: an episode whose quiet end (``febrile_until``) has passed (ANC >= 0.5 already, no fever
    since for 24 hours), or an unjudged fever (null with words) older than ``febrile.unjudged_hours``.
    ``status``: ``febrile_neutropenia``, ``febrile_detail`` and ``febrile_until`` as stored."""
    told = status["febrile_neutropenia"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    told &= status["febrile_detail"].fillna("").ne("").to_numpy(dtype=bool)
    until = pd.to_datetime(status["febrile_until"], utc=True)
    return told & (until <= pd.Timestamp(now)).to_numpy(dtype=bool)


def check_access(session: Session, patient_key: int, viewer: Viewer) -> None:
    """Raise ``PatientNotFound`` unless ``viewer`` may see this patient (every per-patient read calls it)."""
    found = session.scalar(select(Patient.id).where(Patient.id == patient_key, visible(Patient.id, viewer)))
    if found is None:
        raise PatientNotFound("no such patient among those you may see")


def find_patient(
    session: Session, patient_id: str, *, viewer: Viewer, authority: str | None = None
) -> Patient:
    """The patient with this MRN (and authority, when several authorities use the same MRN)."""
    # A patient outside the viewer's teams is "not found": its existence is not disclosed either.
    statement = select(Patient).where(Patient.mrn == patient_id, visible(Patient.id, viewer))
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
    session: Session,
    patient_key: int,
    *,
    viewer: Viewer,
    history: bool = False,
    analytes: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A patient's results, oldest first; ``history`` adds superseded versions."""
    check_access(session, patient_key, viewer)
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


def patient_events(session: Session, patient_key: int, *, viewer: Viewer) -> pd.DataFrame:
    """A patient's clinical events, oldest first."""
    check_access(session, patient_key, viewer)
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


def status_changes_since(session: Session, *, since: datetime, viewer: Viewer) -> pd.DataFrame:
    """Flags that appeared, grades that rose, flags the lab withdrew and preliminary results made final
    since ``since``, of the patients ``viewer`` may see, oldest first (``analysis.alerts.current_alerts``
    keeps those that still hold)."""
    return read_frame(
        session,
        select(
            StatusChange.patient_id.label("patient_key"),
            StatusChange.recorded_at,
            StatusChange.change,
            StatusChange.flag,
            StatusChange.analyte,
            StatusChange.grade_after,
            StatusChange.explanation,
        )
        .where(
            StatusChange.recorded_at >= since,
            StatusChange.change.in_(("appeared", "worsened", "withdrawn", "final")),
            visible(StatusChange.patient_id, viewer),
        )
        .order_by(StatusChange.recorded_at, StatusChange.id),
        utc=["recorded_at"],
    )


def lab_codes(session: Session) -> list[str]:
    """The codes of the labs results came from."""
    return list(session.scalars(select(Lab.code).order_by(Lab.code)))


def treated_patients(session: Session, *, viewer: Viewer) -> list[int]:
    """Keys of the patients ``viewer`` may see with at least one chemotherapy event."""
    statement = (
        select(ClinicalEvent.patient_id)
        .where(ClinicalEvent.kind == "chemotherapy", visible(ClinicalEvent.patient_id, viewer))
        .distinct()
    )
    return sorted(int(key) for key in session.scalars(statement))


def patient_ranges(session: Session, patient_key: int, *, viewer: Viewer) -> pd.DataFrame:
    """The patient's specific ranges (active and ended), newest first."""
    check_access(session, patient_key, viewer)
    return read_frame(
        session,
        select(
            ReferenceOverride.analyte,
            ReferenceOverride.low,
            ReferenceOverride.high,
            ReferenceOverride.reason,
            ReferenceOverride.set_by,
            ReferenceOverride.set_at,
            ReferenceOverride.is_active,
        )
        .where(ReferenceOverride.patient_id == patient_key)
        .order_by(ReferenceOverride.is_active.desc(), ReferenceOverride.set_at.desc()),
        utc=["set_at"],
    )


def acknowledgements(session: Session, patient_key: int, *, viewer: Viewer) -> pd.DataFrame:
    """Acknowledgements of the patient's flags, newest first."""
    check_access(session, patient_key, viewer)
    return read_frame(
        session,
        select(Acknowledgement.at, Acknowledgement.username, Acknowledgement.flags, Acknowledgement.comment)
        .where(Acknowledgement.patient_id == patient_key)
        .order_by(Acknowledgement.at.desc()),
        utc=["at"],
    )


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
