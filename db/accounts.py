"""Accounts, sign-in and who may see which patient.

Passwords are hashed with Argon2id (argon2-cffi); a password is never stored, logged or audited. After
``LOCKOUT_AFTER`` failed sign-ins an account is locked for ``LOCKOUT_MINUTES``. A ``Viewer`` is what every
patient query takes: administrators see every patient, everyone else only the patients of their teams.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from db.audit import record, record_for_patients
from db.frames import bulk_insert, read_frame, read_frame_in
from db.models import ROLES, AppUser, AuditAction, PatientTeam, Team, UserTeam

LOCKOUT_AFTER = 5
LOCKOUT_MINUTES = 15
PASSWORD_MIN_LENGTH = 12
IDLE_MINUTES = 30
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong name costs as long as a wrong password;
    made on the first sign-in rather than at import, which every command would pay for."""
    return _HASHER.hash("not a password of anyone")


DEMO_PASSWORD = "demo"
# Created only with the demo cohort (python -m monitor demo, or the dashboard's first start).
DEMO_ACCOUNTS = (
    ("admin", "Demo administrator", "admin", ()),
    ("oncology", "Demo oncology clinician", "clinician", ("oncology",)),
    ("medicine", "Demo internal medicine clinician", "clinician", ("internal-medicine",)),
)


class AccountError(ValueError):
    """An account cannot be created or changed as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: their name, role and the teams whose patients they may see (None: all)."""

    username: str
    role: str
    team_ids: tuple[int, ...] | None

    @property
    def sees_everyone(self) -> bool:
        return self.team_ids is None

    def may(self, action: str) -> bool:
        """``view`` for everyone; ``record`` (events, notes, acknowledgements, patient ranges) for
        clinicians and administrators; ``administer`` (users, teams, settings, imports, audit) for admins."""
        allowed = {"view": ROLES, "record": ("clinician", "admin"), "administer": ("admin",)}
        return self.role in allowed[action]


# The command line run by someone with the store's credentials: the system itself.
SYSTEM = Viewer(username="system", role="admin", team_ids=None)


def visible(patient_id: ColumnElement[Any], viewer: Viewer) -> ColumnElement[bool]:
    """A condition on a patient id column: true for the patients ``viewer`` may see."""
    if viewer.sees_everyone:
        return patient_id.is_not(None)
    teams = select(PatientTeam.patient_id).where(PatientTeam.team_id.in_(viewer.team_ids or (-1,)))
    return patient_id.in_(teams)


def password_problem(username: str, password: str) -> str | None:
    """Why a password is not acceptable, or None (the policy: length, not the name, not one character)."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"a password needs at least {PASSWORD_MIN_LENGTH} characters"
    if username.lower() in password.lower():
        return "a password must not contain the username"
    if len(set(password)) < 4:
        return "a password needs at least 4 different characters"
    return None


def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    teams: Iterable[str],
    password: str,
    now: datetime,
    display_name: str = "",
    by: str = "system",
    check_policy: bool = True,
) -> AppUser:
    """A new active account in ``teams`` (team codes, created when missing). Raises ``AccountError``."""
    username = username.strip()
    plain = username.translate(str.maketrans("", "", ".-_@"))
    if not username or len(username) > 100 or not plain.isalnum():
        raise AccountError(
            "a username is 1-100 letters, digits, '.', '-', '_' or '@' (an e-mail address will do)"
        )
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if session.scalar(select(AppUser.id).where(AppUser.username == username)) is not None:
        raise AccountError(f"user {username!r} exists already")
    if check_policy and (problem := password_problem(username, password)):
        raise AccountError(problem)
    user = AppUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=_HASHER.hash(password),
        is_active=True,
        failed_attempts=0,
        created_at=now,
    )
    session.add(user)
    session.flush()
    teams = list(teams)
    for team in ensure_teams(session, teams):
        session.add(UserTeam(user_id=user.id, team_id=team))
    details = {"user": username, "role": role, "teams": sorted(teams)}
    record(session, at=now, username=by, action="user_add", details=details)
    session.flush()
    return user


def ensure_teams(session: Session, codes: Iterable[str]) -> list[int]:
    """The ids of the teams with these codes, creating the missing ones (named after their code)."""
    ids = []
    for code in dict.fromkeys(c.strip() for c in codes if c.strip()):
        found = session.scalar(select(Team.id).where(Team.code == code))
        if found is None:
            team = Team(code=code, name=code.replace("-", " ").capitalize())
            session.add(team)
            session.flush()
            found = team.id
        ids.append(int(found))
    return ids


def authenticate(session: Session, username: str, password: str, *, now: datetime) -> Viewer | str:
    """The ``Viewer`` for a right name and password, or the reason the sign-in is refused (one message
    for an unknown name and a wrong password). Failures count towards the lockout; both are audited."""
    user = session.scalar(select(AppUser).where(AppUser.username == username.strip()))
    if user is None or not user.password_hash:
        _verify(_dummy_hash(), password)
        _audit(session, now, username.strip()[:100], "sign_in_failed", "unknown user")
        return "wrong username or password"
    if not user.is_active:
        _audit(session, now, user.username, "sign_in_failed", "account disabled")
        return "this account is disabled"
    if user.locked_until is not None and user.locked_until > now:
        _audit(session, now, user.username, "sign_in_failed", "account locked")
        return f"too many failed attempts: locked until {user.locked_until:%H:%M} UTC"
    if not _verify(user.password_hash, password):
        user.failed_attempts = (user.failed_attempts or 0) + 1
        if user.failed_attempts >= LOCKOUT_AFTER:
            user.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
            user.failed_attempts = 0
        _audit(session, now, user.username, "sign_in_failed", "wrong password")
        return "wrong username or password"
    user.failed_attempts, user.locked_until = 0, None
    _audit(session, now, user.username, "sign_in", "")
    return viewer_of(session, user)


def sign_in_by_identity(session: Session, username: str, *, now: datetime) -> Viewer | str:
    """The ``Viewer`` of an active account named ``username`` (an identity a provider has verified), or why
    not. Audited like a password sign-in; no password is involved."""
    user = session.scalar(select(AppUser).where(AppUser.username == username.strip()))
    if user is None or not user.is_active:
        _audit(session, now, username.strip()[:100], "sign_in_failed", "single sign-on: no active account")
        return f"no active account for {username!r}: ask an administrator to add one"
    _audit(session, now, user.username, "sign_in", "single sign-on")
    return viewer_of(session, user)


def viewer_of(session: Session, user: AppUser) -> Viewer:
    if user.role == "admin":
        return Viewer(user.username, user.role, None)
    teams = session.scalars(
        select(UserTeam.team_id).where(UserTeam.user_id == user.id).order_by(UserTeam.team_id)
    )
    return Viewer(user.username, user.role, tuple(int(t) for t in teams))


def viewer_named(session: Session, username: str) -> Viewer:
    """The active user's ``Viewer`` (for ``--user`` on the command line). Raises ``AccountError``."""
    user = session.scalar(select(AppUser).where(AppUser.username == username, AppUser.is_active.is_(True)))
    if user is None:
        raise AccountError(f"no active user {username!r}")
    return viewer_of(session, user)


def disable_user(session: Session, username: str, *, now: datetime, by: str = "system") -> None:
    done = session.execute(update(AppUser).where(AppUser.username == username).values(is_active=False))
    if not done.rowcount:
        raise AccountError(f"no user {username!r}")
    _audit(session, now, by, "user_disable", f"disabled {username}")


def user_list(session: Session) -> pd.DataFrame:
    """Accounts with role, teams and state; no password material."""
    users = read_frame(
        session,
        select(
            AppUser.id,
            AppUser.username,
            AppUser.display_name,
            AppUser.role,
            AppUser.is_active,
            AppUser.locked_until,
        ).order_by(AppUser.username),
        utc=["locked_until"],
    )
    memberships = read_frame(
        session,
        select(UserTeam.user_id, Team.code).join(Team, Team.id == UserTeam.team_id).order_by(Team.code),
    )
    teams = memberships.groupby("user_id")["code"].agg(", ".join)
    users["teams"] = users["id"].map(teams).fillna("")
    users.loc[users["role"] == "admin", "teams"] = "(all patients)"
    return users.drop(columns="id")


def team_list(session: Session) -> pd.DataFrame:
    """Teams with how many patients and users each has."""
    teams = read_frame(session, select(Team.id, Team.code, Team.name).order_by(Team.code))
    patients = read_frame(
        session, select(PatientTeam.team_id, func.count().label("n")).group_by(PatientTeam.team_id)
    )
    members = read_frame(
        session, select(UserTeam.team_id, func.count().label("n")).group_by(UserTeam.team_id)
    )
    teams["patients"] = teams["id"].map(patients.set_index("team_id")["n"]).fillna(0).astype("int64")
    teams["users"] = teams["id"].map(members.set_index("team_id")["n"]).fillna(0).astype("int64")
    return teams.drop(columns="id")


def assign_patient(session: Session, patient_key: int, team: str, *, now: datetime, by: str) -> bool:
    """Put a patient in a team (created when new); False when it was there already. Audited."""
    code = team.strip()
    ensure_teams(session, [code])
    return assign_patients(session, [patient_key], code, now=now, by=by) == 1


def assign_patients(
    session: Session, patient_keys: Sequence[int], team: str, *, now: datetime, by: str
) -> int:
    """Put patients in an existing team (``team``: its code); return how many were not in it yet.

    Each new membership is audited. An unknown team is an error, not created: an import's patients must
    not go to a mistyped team that nobody belongs to (`assign_patient` creates it, on purpose).
    """
    session.flush()  # the raw reads and writes below see what the session holds
    team_id = session.scalar(select(Team.id).where(Team.code == team))
    if team_id is None:
        raise AccountError(f"no team {team!r} (python -m monitor teams lists them)")
    present = read_frame_in(
        session,
        lambda part: select(PatientTeam.patient_id).where(
            PatientTeam.team_id == team_id, PatientTeam.patient_id.in_(part)
        ),
        list(patient_keys),
    )
    new = sorted(set(patient_keys) - set(present["patient_id"].tolist()))
    if new:
        bulk_insert(session, PatientTeam.__table__, pd.DataFrame({"patient_id": new, "team_id": team_id}))
        details = {"team": team}
        record_for_patients(
            session, at=now, username=by, action="assign_team", patient_keys=new, details=details
        )
    return len(new)


def without_team(session: Session, patient_keys: Sequence[int]) -> int:
    """How many of these patients are in no team (only administrators see them)."""
    member = read_frame_in(
        session,
        lambda part: select(PatientTeam.patient_id).where(PatientTeam.patient_id.in_(part)),
        list(patient_keys),
    )
    return len(set(patient_keys) - set(member["patient_id"].tolist()))


def ensure_demo_accounts(session: Session, *, now: datetime) -> int:
    """The demo accounts (``DEMO_ACCOUNTS``, password ``demo``), for the synthetic cohort only."""
    added = 0
    for username, display, role, teams in DEMO_ACCOUNTS:
        if session.scalar(select(AppUser.id).where(AppUser.username == username)) is None:
            create_user(
                session,
                username=username,
                role=role,
                teams=teams,
                password=DEMO_PASSWORD,
                display_name=display,
                now=now,
                check_policy=False,
            )
            added += 1
    return added


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _audit(session: Session, now: datetime, username: str, action: AuditAction, reason: str) -> None:
    record(session, at=now, username=username, action=action, details={"reason": reason} if reason else {})
