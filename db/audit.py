"""The audit trail: who saw or changed what, which patient, when. Rows are only ever added (the store
refuses changes); details carry identifiers of what was done and what a user typed (a comment, a
patient range and its reason), never a password or a patient's result.

What is recorded is one of ``db.models.AUDIT_ACTIONS``; who did it is a signed-in username, or for the
command line ``cli:`` and the login that ran it (``command_line_actor``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.frames import bulk_insert, read_frame
from db.models import AUDIT_ACTIONS, AuditAction, AuditLog, Patient

if TYPE_CHECKING:
    from db.accounts import Viewer

# How the command line names who ran it: this prefix and their login.
COMMAND_LINE_PREFIX = "cli:"
# How account and team changes made on the command line named the login before the prefix was the only
# spelling (settings and lab-range changes named the login alone). Rows keep what they were written with.
_FORMER_COMMAND_LINE_SUFFIX = " (command line)"


def command_line_actor(login: str) -> str:
    """The trail's name for someone who ran a command under ``login``.

    >>> command_line_actor("alice")
    'cli:alice'
    """
    return f"{COMMAND_LINE_PREFIX}{login}"


def actor_spellings(name: str) -> tuple[str, ...]:
    """Every name the trail may hold for the person ``name`` (given bare or in any of these spellings).

    >>> actor_spellings("alice")
    ('alice', 'cli:alice', 'alice (command line)')
    >>> actor_spellings("cli:alice") == actor_spellings("alice (command line)") == actor_spellings("alice")
    True
    """
    bare = name.strip().removeprefix(COMMAND_LINE_PREFIX).removesuffix(_FORMER_COMMAND_LINE_SUFFIX).strip()
    return (bare, command_line_actor(bare), f"{bare}{_FORMER_COMMAND_LINE_SUFFIX}")


def _checked(action: str) -> str:
    if action not in AUDIT_ACTIONS:  # the store refuses it too; this names it
        raise ValueError(f"{action!r} is not an audit action (db.models.AUDIT_ACTIONS)")
    return action


def record(
    session: Session,
    *,
    at: datetime,
    username: str,
    action: AuditAction,
    patient_key: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row to the audit trail in the caller's transaction."""
    session.add(
        AuditLog(
            at=at,
            username=username,
            action=_checked(action),
            patient_id=patient_key,
            details=json.dumps(details or {}, sort_keys=True, default=str),
        )
    )


def record_for_patients(
    session: Session,
    *,
    at: datetime,
    username: str,
    action: AuditAction,
    patient_keys: Sequence[int],
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row per patient to the audit trail, written in bulk, in the caller's transaction."""
    if not len(patient_keys):
        return
    text = json.dumps(details or {}, sort_keys=True, default=str)
    rows = pd.DataFrame({"patient_id": list(patient_keys)}).assign(
        at=at, username=username, action=_checked(action), details=text
    )
    session.flush()  # rows added one at a time before these keep their order
    bulk_insert(session, AuditLog.__table__, rows)


def audit_view(
    session: Session, viewer: Viewer, patient_key: int | None, what: str, *, now: datetime
) -> None:
    """Record that ``viewer`` looked at a patient (a page or a command), without any clinical value; or,
    with no ``patient_key``, at records that hold several patients' data (an import's refused records)."""
    record(
        session,
        at=now,
        username=viewer.username,
        action="view",
        patient_key=patient_key,
        details={"what": what},
    )


def audit_export(
    session: Session, viewer: Viewer, what: str, patient_key: int | None, *, now: datetime
) -> None:
    """Record that ``viewer`` exported something (a worklist, a flowsheet)."""
    record(
        session,
        at=now,
        username=viewer.username,
        action="export",
        patient_key=patient_key,
        details={"what": what},
    )


def audit_trail(
    session: Session,
    *,
    since: datetime | None = None,
    username: str | None = None,
    action: str | None = None,
    patient_id: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """The audit trail, newest first, filtered; with the patient's identifier where there is one.

    ``username`` finds the person under every name the trail has held for them (``actor_spellings``).
    """
    statement = (
        select(
            AuditLog.at,
            AuditLog.username,
            AuditLog.action,
            Patient.mrn.label("patient_id"),
            AuditLog.details,
        )
        .outerjoin(Patient, Patient.id == AuditLog.patient_id)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(AuditLog.at >= since)
    if username:
        statement = statement.where(AuditLog.username.in_(actor_spellings(username)))
    if action:
        statement = statement.where(AuditLog.action == action)
    if patient_id:
        statement = statement.where(Patient.mrn == patient_id)
    return read_frame(session, statement, utc=["at"])
