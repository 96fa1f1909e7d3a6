"""The audit trail: one way to append to it (who, what, which patient, when). Rows are only ever added;
details carry identifiers of what was done, never a password or a clinical value."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

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
