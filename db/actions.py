"""What clinicians do on a patient: acknowledge flags, add an event or note, set a patient-specific range.

Each action is written with its audit row in the caller's transaction, and the patient's status is
recomputed where the action changes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.accounts import Viewer
from db.audit import record
from db.config import display_timezone
from db.models import Acknowledgement, ClinicalEvent, PatientStatus, ReferenceOverride
from db.queries import check_access
from db.status import refresh_patient_status
from monitor.analytes import ANALYTES
from monitor.formats.events import EVENT_KINDS, LABEL_LIMIT

COMMENT_LIMIT = 2000


def _may_record(session: Session, patient_key: int, viewer: Viewer) -> str:
    """The viewer's name, if they may record on this patient (a clinician or admin who can see it)."""
    if not viewer.may("record"):
        raise PermissionError(f"{viewer.role} accounts cannot add or change records; a clinician can")
    check_access(session, patient_key, viewer)
    return viewer.username


def acknowledge(session: Session, patient_key: int, *, viewer: Viewer, comment: str, now: datetime) -> str:
    """Acknowledge the patient's current flags with a comment; returns the flags acknowledged."""
    username = _may_record(session, patient_key, viewer)
    comment = comment.strip()
    if len(comment) > COMMENT_LIMIT:
        raise ValueError(f"a comment is at most {COMMENT_LIMIT} characters")
    listed = session.scalar(select(PatientStatus.flags).where(PatientStatus.patient_id == patient_key))
    flags = ",".join(listed or [])
    session.execute(
        update(PatientStatus).where(PatientStatus.patient_id == patient_key).values(acknowledged_at=now)
    )
    session.add(
        Acknowledgement(patient_id=patient_key, at=now, username=username, flags=flags, comment=comment)
    )
    record(
        session,
        username=username,
        action="acknowledge",
        patient_key=patient_key,
        at=now,
        details={"flags": flags, "comment": comment},
    )
    return flags


def add_event(
    session: Session,
    patient_key: int,
    *,
    kind: str,
    start: datetime,
    end: datetime | None,
    label: str,
    details: str,
    viewer: Viewer,
    now: datetime,
) -> None:
    """Add a clinical event or note (a chemotherapy start changes the cycles: the status is recomputed)."""
    username = _may_record(session, patient_key, viewer)
    label = label.strip()
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})")
    if not label or len(label) > LABEL_LIMIT:
        raise ValueError(f"an event needs a label of 1 to {LABEL_LIMIT} characters")
    if end is not None and end < start:
        raise ValueError("an event cannot end before it starts")
    session.add(
        ClinicalEvent(
            patient_id=patient_key,
            kind=kind,
            start_at=start,
            end_at=end,
            label=label,
            details=details.strip(),
            created_by=username,
            created_at=now,
        )
    )
    record(
        session,
        username=username,
        action="add_event",
        patient_key=patient_key,
        at=now,
        details={"kind": kind, "start": start, "end": end, "label": label},
    )
    session.flush()
    refresh_patient_status(session, [patient_key], now=now, timezone=display_timezone())


def set_patient_range(
    session: Session,
    patient_key: int,
    *,
    analyte: str,
    low: float | None,
    high: float | None,
    reason: str,
    viewer: Viewer,
    now: datetime,
) -> None:
    """Set (or with ``low`` None, end) a patient-specific range for an analyte, with the reason; recompute.

    The earlier range stays in the table, inactive, for the record.
    """
    username = _may_record(session, patient_key, viewer)
    reason = reason.strip()
    if analyte not in ANALYTES:
        raise ValueError(f"unknown analyte {analyte!r}")
    if not reason:
        raise ValueError("a patient-specific range needs a reason (e.g. 'Duffy-null phenotype confirmed')")
    if low is not None and (low < 0 or (high is not None and high < low)):
        raise ValueError(f"a range needs 0 <= low <= high, not {low} - {high}")
    session.execute(
        update(ReferenceOverride)
        .where(
            ReferenceOverride.patient_id == patient_key,
            ReferenceOverride.analyte == analyte,
            ReferenceOverride.is_active.is_(True),
        )
        .values(is_active=False)
    )
    if low is not None:
        session.add(
            ReferenceOverride(
                patient_id=patient_key,
                analyte=analyte,
                low=low,
                high=high,
                reason=reason,
                set_by=username,
                set_at=now,
                is_active=True,
            )
        )
    record(
        session,
        username=username,
        action="set_patient_range" if low is not None else "end_patient_range",
        patient_key=patient_key,
        at=now,
        details={"analyte": analyte, "low": low, "high": high, "reason": reason},
    )
    session.flush()
    refresh_patient_status(session, [patient_key], now=now, timezone=display_timezone())
