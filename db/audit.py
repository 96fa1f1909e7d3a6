"""The audit trail: one way to append to it (who, what, which patient, when). Rows are only ever added;
details carry identifiers of what was done, never a password or a clinical value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from db.frames import bulk_insert
from db.models import AuditLog


def record(
    session: Session,
    *,
    at: datetime,
    username: str,
    action: str,
    patient_key: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row to the audit trail in the caller's transaction."""
    session.add(
        AuditLog(
            at=at,
            username=username,
            action=action,
            patient_id=patient_key,
            details=json.dumps(details or {}, sort_keys=True, default=str),
        )
    )


def record_for_patients(
    session: Session,
    *,
    at: datetime,
    username: str,
    action: str,
    patient_keys: Sequence[int],
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row per patient to the audit trail, written in bulk, in the caller's transaction."""
    if not len(patient_keys):
        return
    text = json.dumps(details or {}, sort_keys=True, default=str)
    rows = pd.DataFrame({"patient_id": list(patient_keys)}).assign(
        at=at, username=username, action=action, details=text
    )
    session.flush()  # rows added one at a time before these keep their order
    bulk_insert(session, AuditLog.__table__, rows)
