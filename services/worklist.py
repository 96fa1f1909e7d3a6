"""The patients a viewer may see, as lists: the patient list, the worklist in priority order, the treated
patients, and the alerts since a time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from monitor.analysis.alerts import ALERT_COLUMNS, current_alerts
from monitor.analysis.triage import prioritised

__all__ = ["alerts", "patient_list", "treated_patients", "worklist"]


def patient_list(
    store: sessionmaker[Session], *, viewer: Viewer, timezone: str, now: datetime
) -> pd.DataFrame:
    """One row per patient ``viewer`` may see (their status as materialised), most recent CBC first; days
    since the last CBC and of the current cycle are calendar days in ``timezone`` as of ``now``."""
    with store() as session:
        return queries.patient_list(
            session, viewer=viewer, timezone=timezone, today=now.astimezone(ZoneInfo(timezone)).date()
        )


def worklist(store: sessionmaker[Session], *, viewer: Viewer, timezone: str, now: datetime) -> pd.DataFrame:
    """The patient list in priority order (most urgent clinical risk first), with each patient's ``tier``,
    ``priority_reason`` and ``grade`` (``analysis.triage.prioritised``)."""
    return prioritised(patient_list(store, viewer=viewer, timezone=timezone, now=now))


def treated_patients(store: sessionmaker[Session], *, viewer: Viewer) -> list[int]:
    """Keys of the patients ``viewer`` may see with at least one chemotherapy event."""
    with store() as session:
        return queries.treated_patients(session, viewer=viewer)


def alerts(
    store: sessionmaker[Session], *, viewer: Viewer, since: datetime, timezone: str, now: datetime
) -> pd.DataFrame:
    """Patients whose flags appeared or whose grades rose since ``since`` and still hold, in the worklist's
    order, then the most recent change first (``analysis.alerts.current_alerts``)."""
    with store() as session:
        changes = queries.status_changes_since(session, since=since, viewer=viewer)
        if changes.empty:
            return pd.DataFrame(columns=ALERT_COLUMNS)
        patients = queries.patient_list(
            session, viewer=viewer, timezone=timezone, today=now.astimezone(ZoneInfo(timezone)).date()
        )
    return current_alerts(changes, patients)
