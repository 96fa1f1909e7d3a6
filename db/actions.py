"""The rows clinicians' actions on a patient write: an acknowledgement, an event or note, a patient range.

Each is written in the caller's transaction and never commits; who may act, the audit row and the status
refresh are the caller's (``services.patient_actions``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Acknowledgement, ClinicalEvent, PatientStatus, ReferenceOverride


def acknowledge(session: Session, patient_key: int, *, username: str, comment: str, now: datetime) -> str:
    """Acknowledge the patient's current flags with a comment; returns the flags acknowledged."""
    # The status keeps its flags as a list; an acknowledgement records them as the text it always had.
    listed = session.scalar(select(PatientStatus.flags).where(PatientStatus.patient_id == patient_key))
    flags = ",".join(listed or [])
    acknowledged = (
        update(PatientStatus).where(PatientStatus.patient_id == patient_key).values(acknowledged_at=now)
    )
    if not session.execute(acknowledged).rowcount:
        # PostgreSQL: a status recompute replaced the row while this waited for it (its UPDATE then finds
        # the row it waited for gone); a statement of its own sees the new one.
        session.execute(acknowledged)
    session.add(
        Acknowledgement(patient_id=patient_key, at=now, username=username, flags=flags, comment=comment)
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
    username: str,
    now: datetime,
) -> None:
    """Add a clinical event or note."""
    session.add(
        ClinicalEvent(
            patient_id=patient_key,
            kind=kind,
            start_at=start,
            end_at=end,
            label=label,
            details=details,
            created_by=username,
            created_at=now,
        )
    )


def set_patient_range(
    session: Session,
    patient_key: int,
    *,
    analyte: str,
    low: float | None,
    high: float | None,
    reason: str,
    username: str,
    now: datetime,
) -> None:
    """End the active patient-specific range of ``analyte`` and, unless ``low`` is None, start a new one.

    The earlier range stays in the table, inactive, for the record.
    """
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
