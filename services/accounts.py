"""Who is asking, and the accounts behind it: sign-in, users, teams and which patients a team follows.

Each use case runs in its own transaction and is audited as the store's account functions audit it (sign-ins
and their failures, sign-outs, accounts added, disabled, unlocked, given a password or taken out of a team,
patients put in a team); a sign-in runs in two, its attempt counted before its password is checked.
Changing accounts or teams is for administrators (``Viewer.may("administer")``); the command line acts as
the system, an administrator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import accounts
from db.accounts import DEMO_ACCOUNTS, DEMO_PASSWORD, IDLE_MINUTES, REFUSED, SYSTEM, AccountError, Viewer
from db.queries import find_patient

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_PASSWORD",
    "IDLE_MINUTES",
    "REFUSED",
    "SYSTEM",
    "AccountError",
    "Viewer",
    "add_user",
    "account_now",
    "assign_patient",
    "disable_user",
    "list_teams",
    "list_users",
    "record_sign_out",
    "remove_team",
    "require_administrator",
    "set_password",
    "sign_in",
    "sign_in_with_identity",
    "unlock_user",
    "viewer_named",
]


def require_administrator(viewer: Viewer, what: str) -> None:
    """Raise ``PermissionError`` unless ``viewer`` may administer; ``what`` says what was refused them
    ("change accounts or teams")."""
    if not viewer.may("administer"):
        raise PermissionError(f"{viewer.role} accounts cannot {what}; an administrator can")


def sign_in(
    store: sessionmaker[Session],
    *,
    username: str,
    password: str,
    now: datetime,
    client: str | None = None,
) -> Viewer | str:
    """The ``Viewer`` for a right name and password, or ``REFUSED`` (the same words for a wrong password, an
    unknown name, a disabled account and a throttled attempt).

    The attempt is counted (a failure until it succeeds) and committed before the password is checked, so
    no parallel attempt waits on another's hash and none escapes the count; ``client`` is the address it
    comes from (None when unknown, as on the command line)."""
    with store.begin() as session:
        attempt = accounts.begin_sign_in(session, username, client=client, now=now)
    matched = accounts.password_matches(attempt, password)
    with store.begin() as session:
        return accounts.finish_sign_in(session, attempt, matched, now=now)


def account_now(store: sessionmaker[Session], *, username: str) -> Viewer | None:
    """The signed-in account's ``Viewer`` as it stands now (None: disabled or gone); one small query."""
    with store() as session:
        return accounts.account_now(session, username)


def record_sign_out(store: sessionmaker[Session], *, username: str, reason: str, now: datetime) -> None:
    """Audit a sign-out: ``reason`` is 'signed out' (the button) or 'idle' (after ``IDLE_MINUTES``)."""
    with store.begin() as session:
        accounts.record_sign_out(session, username, now=now, reason=reason)


def sign_in_with_identity(store: sessionmaker[Session], *, username: str, now: datetime) -> Viewer | str:
    """The ``Viewer`` of the active account named after an identity a provider has verified, or why not."""
    with store.begin() as session:
        return accounts.sign_in_by_identity(session, username, now=now)


def viewer_named(store: sessionmaker[Session], *, username: str) -> Viewer:
    """The ``Viewer`` of an active account, to answer as they would see it. Raises ``AccountError``."""
    with store() as session:
        return accounts.viewer_named(session, username)


def add_user(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    username: str,
    role: str,
    teams: Sequence[str],
    password: str,
    display_name: str = "",
    now: datetime,
) -> None:
    """A new active account in ``teams`` (team codes, created when new). Raises ``AccountError`` (a taken
    name, an unknown role, a password the policy refuses)."""
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        accounts.create_user(
            session,
            username=username,
            role=role,
            teams=teams,
            password=password,
            display_name=display_name,
            now=now,
            by=viewer.username,
        )


def list_users(store: sessionmaker[Session], *, viewer: Viewer) -> pd.DataFrame:
    """Every account with its role, teams and state (never a password or its hash)."""
    require_administrator(viewer, "change accounts or teams")
    with store() as session:
        return accounts.user_list(session)


def disable_user(store: sessionmaker[Session], *, viewer: Viewer, username: str, now: datetime) -> None:
    """Disable an account: it can no longer sign in; its trail stays. Raises ``AccountError``."""
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        accounts.disable_user(session, username, now=now, by=viewer.username)


def unlock_user(store: sessionmaker[Session], *, viewer: Viewer, username: str, now: datetime) -> int:
    """Forget an account's recent failed sign-ins, so that nothing delays its next; how many there were.
    Raises ``AccountError`` for an unknown account."""
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        return accounts.unlock_user(session, username, now=now, by=viewer.username)


def set_password(
    store: sessionmaker[Session], *, viewer: Viewer, username: str, password: str, now: datetime
) -> None:
    """Give an account a new password (the policy applies; its throttle is cleared). Raises
    ``AccountError``."""
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        accounts.set_password(session, username, password, now=now, by=viewer.username)


def remove_team(
    store: sessionmaker[Session], *, viewer: Viewer, username: str, team: str, now: datetime
) -> None:
    """Take an account out of a team (at once, in an open dashboard too). Raises ``AccountError``."""
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        accounts.remove_team(session, username, team, now=now, by=viewer.username)


def list_teams(store: sessionmaker[Session]) -> pd.DataFrame:
    """The care teams (code, name) with their numbers of patients and users."""
    with store() as session:
        return accounts.team_list(session)


def assign_patient(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_id: str,
    team: str,
    authority: str | None = None,
    now: datetime,
) -> bool:
    """Put the patient with this identifier in ``team`` (created when new); False when it was there already.

    Raises ``db.queries.PatientNotFound`` when no patient (or several) answers to the identifier.
    """
    require_administrator(viewer, "change accounts or teams")
    with store.begin() as session:
        patient = find_patient(session, patient_id, viewer=viewer, authority=authority)
        return accounts.assign_patient(session, patient.id, team, now=now, by=viewer.username)
