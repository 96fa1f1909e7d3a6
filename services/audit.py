"""The audit trail's use cases: record that someone looked at or exported patient data, and read the trail.

Writes that change something (an import, an acknowledgement, an account) are audited by the use case that
makes them, in its own transaction; these are for reads, which change nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import audit, roles
from db.accounts import Viewer
from db.audit import ChainBreak, ChainState, command_line_actor
from db.models import AUDIT_ACTIONS, AuditAction
from db.queries import check_access
from db.roles import RoleError
from services.accounts import require_administrator

__all__ = [
    "AUDIT_ACTIONS",
    "ChainBreak",
    "ChainState",
    "RoleError",
    "command_line_actor",
    "grant_app_role",
    "read_trail",
    "record_export",
    "record_exports",
    "record_for_list",
    "record_view",
    "verify_trail",
]


def record_view(
    store: sessionmaker[Session], *, viewer: Viewer, patient_key: int | None, what: str, now: datetime
) -> None:
    """Record that ``viewer`` looked at a patient (``what``: the page or command), or, with no
    ``patient_key``, at records holding several patients' data (an import's refused records).

    Raises ``PatientNotFound`` (and records nothing) when the patient is not one ``viewer`` may see.
    """
    with store.begin() as session:
        if patient_key is not None:
            # Checked here, not left to the caller: a page may record the view before it reads the patient.
            check_access(session, patient_key, viewer)
        audit.audit_view(session, viewer, patient_key, what, now=now)


def record_export(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    what: str,
    patient_key: int | None = None,
    now: datetime,
) -> None:
    """Record that ``viewer`` exported something (a worklist, a flowsheet, the trail itself)."""
    with store.begin() as session:
        audit.audit_export(session, viewer, what, patient_key, now=now)


def record_exports(
    store: sessionmaker[Session], *, viewer: Viewer, what: str, patient_keys: Iterable[int], now: datetime
) -> None:
    """Record that ``viewer`` exported a list of patients (a printed handover): one ``export`` row per
    patient on it, so that each patient's trail names the list."""
    record_for_list(store, viewer=viewer, action="export", what=what, patient_keys=patient_keys, now=now)


def record_for_list(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    action: AuditAction,
    what: str,
    patient_keys: Iterable[int],
    now: datetime,
) -> None:
    """One ``action`` row per distinct patient of a list, with ``what`` (none for an empty list)."""
    listed = sorted({int(key) for key in patient_keys})
    if not listed:
        return
    with store.begin() as session:
        audit.record_for_patients(
            session,
            at=now,
            username=viewer.username,
            action=action,
            patient_keys=listed,
            details={"what": what},
        )


def read_trail(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    since: datetime | None = None,
    username: str | None = None,
    action: str | None = None,
    patient_id: str | None = None,
) -> pd.DataFrame:
    """The trail for the Audit page, newest first (administrators only): since a time, of one person under
    every name the trail has held for them, of one action (``AUDIT_ACTIONS``), about one patient."""
    require_administrator(viewer, "read the audit trail")
    with store() as session:
        return audit.audit_trail(
            session, since=since, username=username, action=action, patient_id=patient_id
        )


def verify_trail(
    store: sessionmaker[Session], *, viewer: Viewer, after: ChainState | None = None
) -> ChainState:
    """Recompute the trail's hash chain (administrators only): intact, or the rows that break it; with
    ``after`` (an earlier result) only the rows added since, once the last row it verified is unchanged."""
    require_administrator(viewer, "verify the audit trail")
    with store() as session:
        return audit.verify_chain(session, after=after)


def grant_app_role(store: sessionmaker[Session], role: str) -> list[str]:
    """Make ``role`` the application's PostgreSQL role: its data, and the trail only to read and add to.
    Run on the owner's connection; returns the statements run (``RoleError`` if the role cannot be)."""
    with store.begin() as session:
        return roles.grant_app_role(session.connection(), role)
