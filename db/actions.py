"""The rows clinicians' actions on a patient write: an acknowledgement, an event or note, a patient range.

Each is written in the caller's transaction and never commits; who may act, the audit row and the status
refresh are the caller's (``services.patient_actions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Acknowledgement, ClinicalEvent, PatientStatus, ReferenceOverride


def acknowledge(
    session: Session,
    patient_key: int,
    *,
    username: str,
    comment: str,
    now: datetime,
    seen: Sequence[str] | None = None,
) -> str:
    """Acknowledge the patient's current flags with a comment; returns the flags acknowledged.

    ``seen``: the flags the person was shown. Their status row is taken first (locked until the commit), then
    its flags compared with those (or, without ``seen``, with the flags read before): flags changed meanwhile
    (a recompute after a new result) are refused with a ValueError, so that an acknowledgement never covers
    flags nobody saw."""
    listed = session.scalar(select(PatientStatus.flags).where(PatientStatus.patient_id == patient_key))
    acknowledged = (
        update(PatientStatus).where(PatientStatus.patient_id == patient_key).values(acknowledged_at=now)
    )
    if not session.execute(acknowledged).rowcount:
        # PostgreSQL: a status recompute replaced the row while this waited for it (its UPDATE then finds
        # the row it waited for gone); a statement of its own sees the new one.
        session.execute(acknowledged)
    # The row as it stands now that this transaction holds it: what the acknowledgement covers.
    current = session.scalar(select(PatientStatus.flags).where(PatientStatus.patient_id == patient_key))
    expected = list(seen) if seen is not None else list(listed or [])
    if list(current or []) != expected:
        raise ValueError(
            "the patient's flags changed since they were shown (a new result was analysed): nothing was "
            "acknowledged; look at the flags again"
        )
    # The status keeps its flags as a list; an acknowledgement records them as the text it always had.
    flags = ",".join(current or [])
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
