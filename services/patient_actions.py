"""What clinicians do on a patient: acknowledge the flags, add an event or a note, set a patient range.

Each action is one transaction: who may act is checked (a clinician or an administrator who can see the
patient), the input is checked, the rows are written with their audit row, and the patient's status is
recomputed where the action changes it. A refused action raises ``PermissionError``, ``PatientNotFound``
or ``ValueError`` (the message says why) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import actions, queries
from db.accounts import Viewer
from db.audit import record
from db.models import EVENT_DETAILS_LIMIT, REASON_LIMIT
from db.status import refresh_patient_status
from monitor.analytes import ANALYTES
from monitor.formats.events import EVENT_KINDS, LABEL_LIMIT
from monitor.timestamps import localize

__all__ = [
    "COMMENT_LIMIT",
    "EVENT_DETAILS_LIMIT",
    "REASON_LIMIT",
    "acknowledge",
    "add_event",
    "set_patient_range",
    "site_instant",
]

COMMENT_LIMIT = REASON_LIMIT


def _may_record(session: Session, patient_key: int, viewer: Viewer) -> str:
    """The viewer's name, if they may record on this patient (a clinician or admin who can see it)."""
    if not viewer.may("record"):
        raise PermissionError(f"{viewer.role} accounts cannot add or change records; a clinician can")
    queries.check_access(session, patient_key, viewer)
    return viewer.username


def acknowledge(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_key: int,
    comment: str,
    now: datetime,
    seen: Sequence[str] | None = None,
    seen_changed_at: datetime | None = None,
) -> str:
    """Acknowledge the patient's current flags with a comment; returns the flags acknowledged. ``seen``: the
    flags the person was shown, ``seen_changed_at`` when (as shown) a flag last appeared or worsened; if the
    status changed since (a new result analysed meanwhile: other flags, or a flag appeared or worsened),
    nothing is acknowledged and a ValueError says so."""
    comment = comment.strip()
    with store.begin() as session:
        username = _may_record(session, patient_key, viewer)
        if len(comment) > COMMENT_LIMIT:
            raise ValueError(
                f"a comment is at most {COMMENT_LIMIT:,} characters (this one has {len(comment):,})"
            )
        flags = actions.acknowledge(
            session,
            patient_key,
            username=username,
            comment=comment,
            now=now,
            seen=seen,
            seen_changed_at=seen_changed_at,
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


def site_instant(day: date, clock: time, timezone: str) -> datetime:
    """A date and a clock time as read in the site's ``timezone``, as the UTC instant they name; a time the
    clocks skipped or repeated is read as imports read it (``monitor.timestamps.localize``).

    >>> site_instant(date(2026, 3, 16), time(9, 30), "Pacific/Auckland")  # UTC+13 in March
    datetime.datetime(2026, 3, 15, 20, 30, tzinfo=datetime.timezone.utc)
    """
    naive = pd.Series([pd.Timestamp(datetime.combine(day, clock))])
    instant: pd.Timestamp = localize(naive, timezone).iloc[0]
    return instant.to_pydatetime().astimezone(UTC)


def add_event(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_key: int,
    kind: str | None,
    start: datetime,
    end: datetime | None,
    label: str,
    details: str,
    now: datetime,
    timezone: str,
) -> None:
    """Add a clinical event or note (a chemotherapy start changes the cycles: the status is recomputed).

    ``kind`` None (none chosen) is refused with a message naming the kinds."""
    label = label.strip()
    with store.begin() as session:
        username = _may_record(session, patient_key, viewer)
        if kind is None:
            raise ValueError(f"choose the event's kind ({', '.join(EVENT_KINDS)})")
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})")
        if not label or len(label) > LABEL_LIMIT:
            raise ValueError(f"an event needs a label of 1 to {LABEL_LIMIT} characters")
        if end is not None and end < start:
            raise ValueError("an event cannot end before it starts")
        if len(details.strip()) > EVENT_DETAILS_LIMIT:
            raise ValueError(
                f"an event's details are at most {EVENT_DETAILS_LIMIT:,} characters "
                f"(these have {len(details.strip()):,})"
            )
        actions.add_event(
            session,
            patient_key,
            kind=kind,
            start=start,
            end=end,
            label=label,
            details=details.strip(),
            username=username,
            now=now,
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
        refresh_patient_status(session, [patient_key], now=now, timezone=timezone)


def set_patient_range(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_key: int,
    analyte: str,
    low: float | None,
    high: float | None,
    reason: str,
    now: datetime,
    timezone: str,
) -> None:
    """Set (or with ``low`` None, end) a patient-specific range for an analyte, with the reason; the
    patient's grades and flags are recomputed against it. The earlier range is kept, inactive."""
    reason = reason.strip()
    with store.begin() as session:
        username = _may_record(session, patient_key, viewer)
        if analyte not in ANALYTES:
            raise ValueError(f"unknown analyte {analyte!r}")
        if not reason:
            raise ValueError(
                "a patient-specific range needs a reason (e.g. 'Duffy-null phenotype confirmed')"
            )
        if len(reason) > REASON_LIMIT:
            raise ValueError(
                f"a reason is at most {REASON_LIMIT:,} characters (this one has {len(reason):,})"
            )
        if low is not None and (low < 0 or (high is not None and high < low)):
            raise ValueError(f"a range needs 0 <= low <= high, not {low} - {high}")
        actions.set_patient_range(
            session,
            patient_key,
            analyte=analyte,
            low=low,
            high=high,
            reason=reason,
            username=username,
            now=now,
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
        refresh_patient_status(session, [patient_key], now=now, timezone=timezone)
