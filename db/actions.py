"""The rows clinicians' actions on a patient write: an acknowledgement, an event or note, a patient range.

Each is written in the caller's transaction and never commits; who may act, the audit row and the status
refresh are the caller's (``services.patient_actions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.frames import read_frame
from db.models import Acknowledgement, ClinicalEvent, PatientStatus, ReferenceOverride, StatusChange
from db.queries import FEBRILE_FLAGS, febrile_ended
from monitor.analysis.changes import LAB_CRITICAL
from monitor.analysis.flags import flag_label

REFUSED = (
    "not acknowledged: the patient's flags changed since this page showed them ({what}); the flags above are "
    "now current: review them and acknowledge again"
)
# What a refusal names when no change was recorded after the page's (flags that cleared, for instance).
SOME_CHANGE = "a flag appeared, cleared or worsened, after a new result, range or event"


def acknowledge(
    session: Session,
    patient_key: int,
    *,
    username: str,
    comment: str,
    now: datetime,
    seen: Sequence[str] | None = None,
    seen_changed_at: datetime | None = None,
) -> str:
    """Acknowledge the patient's current flags with a comment; returns the flags acknowledged.

    ``seen``: the flags the person was shown, and ``seen_changed_at`` when, as shown, a flag last appeared
    or a grade last rose (the status's ``flags_changed_at``; None when it showed none). The status row is
    taken first (locked until the commit), then compared with them (without ``seen``, its flags with the
    flags read before): other flags, or a flag that appeared or worsened under the same names (a count from
    grade 3 to 4), are refused with a ValueError, so that an acknowledgement never covers flags nobody saw.
    The flags are compared as the pages show them at ``now`` (`db.queries.febrile_ended`)."""
    listed = session.scalar(select(PatientStatus.flags).where(PatientStatus.patient_id == patient_key))
    acknowledged = (
        update(PatientStatus).where(PatientStatus.patient_id == patient_key).values(acknowledged_at=now)
    )
    if not session.execute(acknowledged).rowcount:
        # PostgreSQL: a status recompute replaced the row while this waited for it (its UPDATE then finds
        # the row it waited for gone); a statement of its own sees the new one.
        session.execute(acknowledged)
    # The row as it stands now that this transaction holds it: what the acknowledgement covers.
    current = read_frame(
        session,
        select(
            PatientStatus.flags,
            PatientStatus.flags_changed_at,
            PatientStatus.febrile_neutropenia,
            PatientStatus.febrile_detail,
            PatientStatus.febrile_until,
        ).where(PatientStatus.patient_id == patient_key),
        utc=["flags_changed_at", "febrile_until"],
    )
    stored = list(current["flags"].iloc[0] or []) if not current.empty else []
    # The flags as the pages show them now (an ended febrile episode is no longer shown).
    ended = not current.empty and bool(febrile_ended(current, now)[0])
    flags_now = [flag for flag in stored if flag not in FEBRILE_FLAGS] if ended else stored
    changed_now = current["flags_changed_at"].iloc[0] if not current.empty else None
    if seen is None:
        refused = stored != list(listed or [])
    else:
        refused = flags_now != list(seen) or _instant(changed_now) != _instant(seen_changed_at)
    if refused:
        since = seen_changed_at if seen is not None else changed_now
        raise ValueError(REFUSED.format(what=_changes_since(session, patient_key, since) or SOME_CHANGE))
    # The status keeps its flags as a list; an acknowledgement records them as the text it always had.
    flags = ",".join(flags_now)
    session.add(
        Acknowledgement(patient_id=patient_key, at=now, username=username, flags=flags, comment=comment)
    )
    return flags


def _changes_since(session: Session, patient_key: int, since: datetime | None) -> str:
    """The flags that appeared and the grades that rose in the recomputes after ``since`` (all of them when
    the page showed none), in words: "ANC worsening appeared; ANC CTCAE grade 3 -> 4"."""
    query = select(StatusChange.change, StatusChange.flag, StatusChange.explanation).where(
        StatusChange.patient_id == patient_key, StatusChange.change.in_(("appeared", "worsened"))
    )
    if since is not None and not pd.isna(since):
        query = query.where(StatusChange.recorded_at > _instant(since).to_pydatetime())
    said: list[str] = []
    for change, flag, explanation in session.execute(query.order_by(StatusChange.id)):
        if change == "worsened" or flag == LAB_CRITICAL:
            words = explanation  # "ANC CTCAE grade 3 -> 4", "critical result from the lab: ..."
        else:
            words = f"{flag_label(flag)} appeared"
        if words and words not in said:
            said.append(words)
    return "; ".join(said[-6:])


def _instant(value: datetime | None) -> pd.Timestamp | None:
    """A time as stored or as a page read it (both in UTC), comparable with ==; None for none (or NaT)."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value)


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
