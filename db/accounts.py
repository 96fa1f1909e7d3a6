"""Accounts, sign-in and who may see which patient.

Passwords are hashed with Argon2id (argon2-cffi); a password is never stored, logged or audited. Failed
sign-ins slow further attempts down (``CLIENT_THROTTLE``, ``ACCOUNT_THROTTLE``) rather than lock the account,
which anyone could do to anyone. A ``Viewer`` is what every patient query takes: administrators see every
patient, everyone else only the patients of their teams.
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
from sqlalchemy import ColumnElement, case, delete, func, select, update
from sqlalchemy.orm import Session

from db.audit import record, record_for_patients
from db.frames import bulk_insert, conflict_insert, read_frame, read_frame_in
from db.models import ROLES, AppUser, AuditAction, PatientTeam, SignInThrottle, Team, UserTeam

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
    # The read-only role, to be tried on the whole cohort: it reads every demo patient, records nothing.
    ("viewer", "Demo viewer (read-only)", "viewer", ("oncology", "internal-medicine")),
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


@dataclass(frozen=True, slots=True)
class Throttle:
    """Progressive delays after failed sign-ins: after ``free`` recent failures, each further attempt waits
    ``first`` seconds after the failure before it, doubling with each failure up to ``cap`` seconds. A
    failure is forgotten ``forget`` seconds after the last one."""

    free: int
    first: float
    cap: float
    forget: float = 24 * 3600

    def wait_after(self, failures: int) -> timedelta:
        """How long an attempt waits after the last of ``failures`` recent failures."""
        if failures < self.free:
            return timedelta(0)
        return timedelta(seconds=min(self.first * 2 ** min(failures - self.free, 32), self.cap))


# One person at one address (strict; a success clears it), and one account from any address that has
# itself failed on it recently (looser; an address without recent failures is never held back by it, so
# that no one can keep an account's owner out). docs/deployment.md, Sign-in throttling and sessions.
CLIENT_THROTTLE = Throttle(free=5, first=2, cap=5 * 60)
ACCOUNT_THROTTLE = Throttle(free=20, first=2, cap=15 * 60)
ANY_CLIENT = "*"
REFUSED = "wrong username or password, or too many recent attempts: wait a moment and try again"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt counted (as a failure until it succeeds) before its password is checked."""

    username: str
    client: str
    password_hash: str | None
    refusal: str  # why it will be refused whatever the password ('' if only the password decides)


def begin_sign_in(session: Session, username: str, *, client: str | None, now: datetime) -> Attempt:
    """Count an attempt at signing in to ``username`` from ``client`` (an address; None when unknown) as a
    failure, atomically, and say whether the throttle already refuses it.

    Counting before the password is checked, one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` per
    count, means that parallel attempts each get a count of their own: none can slip through between
    another's check and its write.
    A name without an account is not counted (there is nothing to protect; its refusal looks the same).
    """
    name = username.strip()[:100]
    address = (client or "")[:64]
    user = session.execute(
        select(AppUser.password_hash, AppUser.is_active).where(AppUser.username == name)
    ).one_or_none()
    if user is None or not user.password_hash:
        return Attempt(name, address, None, "unknown user")
    mine = _count_failure(session, name, address, CLIENT_THROTTLE, now)
    anyone = _count_failure(session, name, ANY_CLIENT, ACCOUNT_THROTTLE, now)
    earlier_here = mine[1] is not None  # this address failed on this account recently
    if not user.is_active:
        refusal = "account disabled"
    elif _held(mine, CLIENT_THROTTLE, now) or (earlier_here and _held(anyone, ACCOUNT_THROTTLE, now)):
        refusal = "throttled"
    else:
        refusal = ""
    return Attempt(name, address, user.password_hash, refusal)


def password_matches(attempt: Attempt, password: str) -> bool:
    """Whether ``password`` is the account's; one hash verification whatever the attempt (the dummy hash for
    an unknown name), so that every refusal takes as long as a wrong password."""
    return _verify(attempt.password_hash or _dummy_hash(), password) and not attempt.refusal


def finish_sign_in(session: Session, attempt: Attempt, matched: bool, *, now: datetime) -> Viewer | str:
    """The ``Viewer`` when the password matched (the attempt's count taken back, this address's failures
    on the account forgotten), else the one refusal for every cause; both audited, the cause in the trail."""
    details: dict[str, Any] = {"client": attempt.client} if attempt.client else {}
    user = session.scalar(select(AppUser).where(AppUser.username == attempt.username))
    if not matched or user is None or not user.is_active:
        if attempt.refusal:
            details["reason"] = attempt.refusal
        elif user is None:
            details["reason"] = "unknown user"
        else:
            details["reason"] = "wrong password" if user.is_active else "account disabled"
        record(session, at=now, username=attempt.username, action="sign_in_failed", details=details)
        return REFUSED
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.username == attempt.username, SignInThrottle.client == attempt.client
        )
    )
    session.execute(
        update(SignInThrottle)
        .where(
            SignInThrottle.username == attempt.username,
            SignInThrottle.client == ANY_CLIENT,
            SignInThrottle.failures > 0,
        )
        .values(failures=SignInThrottle.failures - 1)
    )
    record(session, at=now, username=user.username, action="sign_in", details=details)
    return viewer_of(session, user)


def authenticate(
    session: Session, username: str, password: str, *, now: datetime, client: str | None = None
) -> Viewer | str:
    """The ``Viewer`` for a right name and password, or the one refusal (`REFUSED`) for a wrong password,
    an unknown name, a disabled account and a throttled attempt, all in one transaction; both audited.
    (``services.accounts.sign_in`` checks the password between two transactions instead.)"""
    attempt = begin_sign_in(session, username, client=client, now=now)
    return finish_sign_in(session, attempt, password_matches(attempt, password), now=now)


def _count_failure(
    session: Session, username: str, client: str, throttle: Throttle, now: datetime
) -> tuple[int, datetime | None]:
    """One more failure for (username, client), in one statement: (recent failures now, the time of the
    one before this), the count starting again once the last is older than ``throttle.forget``."""
    table = SignInThrottle.__table__
    stale = table.c.last_failure_at < now - timedelta(seconds=throttle.forget)
    statement = (
        conflict_insert(session, table)
        .values(username=username, client=client, failures=1, last_failure_at=now, previous_failure_at=None)
        .on_conflict_do_update(
            index_elements=[table.c.username, table.c.client],
            set_={
                "failures": case((stale, 1), else_=table.c.failures + 1),
                "previous_failure_at": case((stale, None), else_=table.c.last_failure_at),
                "last_failure_at": now,
            },
        )
        .returning(table.c.failures, table.c.previous_failure_at)
    )
    failures, previous = session.execute(statement).one()
    return int(failures), previous


def _held(counted: tuple[int, datetime | None], throttle: Throttle, now: datetime) -> bool:
    """Whether an attempt counted as ``counted`` comes too soon after the failure before it."""
    failures, previous = counted
    return previous is not None and now < previous + throttle.wait_after(failures - 1)


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


def account_now(session: Session, username: str) -> Viewer | None:
    """The account's ``Viewer`` as it stands now (role and teams), None when it is disabled or gone: one
    small query, made on every page run so that a change applies at once."""
    rows = session.execute(
        select(AppUser.role, UserTeam.team_id)
        .outerjoin(UserTeam, UserTeam.user_id == AppUser.id)
        .where(AppUser.username == username, AppUser.is_active.is_(True))
        .order_by(UserTeam.team_id)
    ).all()
    if not rows:
        return None
    role = rows[0].role
    if role == "admin":
        return Viewer(username, role, None)
    return Viewer(username, role, tuple(int(row.team_id) for row in rows if row.team_id is not None))


def unlock_user(session: Session, username: str, *, now: datetime, by: str = "system") -> int:
    """Forget the account's recent failed sign-ins (from every address); how many were counted. Audited."""
    _existing(session, username)
    cleared = session.execute(
        select(func.coalesce(func.sum(SignInThrottle.failures), 0)).where(
            SignInThrottle.username == username, SignInThrottle.client == ANY_CLIENT
        )
    ).scalar_one()
    session.execute(delete(SignInThrottle).where(SignInThrottle.username == username))
    record(session, at=now, username=by, action="user_unlock", details={"user": username})
    return int(cleared)


def set_password(
    session: Session, username: str, password: str, *, now: datetime, by: str = "system"
) -> None:
    """Give the account a new password (checked against the policy); its throttle is cleared. Audited
    (never the password). Raises ``AccountError``."""
    _existing(session, username)
    if problem := password_problem(username, password):
        raise AccountError(problem)
    session.execute(
        update(AppUser).where(AppUser.username == username).values(password_hash=_HASHER.hash(password))
    )
    session.execute(delete(SignInThrottle).where(SignInThrottle.username == username))
    record(session, at=now, username=by, action="user_set_password", details={"user": username})


def remove_team(session: Session, username: str, team: str, *, now: datetime, by: str = "system") -> None:
    """Take the account out of a team: it no longer sees that team's patients. Audited. Raises
    ``AccountError`` when the account, the team or the membership does not exist."""
    user_id = _existing(session, username)
    team_id = session.scalar(select(Team.id).where(Team.code == team.strip()))
    if team_id is None:
        raise AccountError(f"no team {team!r} (python -m monitor teams lists them)")
    done = session.execute(delete(UserTeam).where(UserTeam.user_id == user_id, UserTeam.team_id == team_id))
    if not done.rowcount:
        raise AccountError(f"user {username!r} is not in team {team!r}")
    details = {"user": username, "team": team.strip()}
    record(session, at=now, username=by, action="user_remove_team", details=details)


def record_sign_out(session: Session, username: str, *, now: datetime, reason: str) -> None:
    """Audit a sign-out (``reason``: 'signed out', 'idle')."""
    _audit(session, now, username, "sign_out", reason)


def _existing(session: Session, username: str) -> int:
    user_id = session.scalar(select(AppUser.id).where(AppUser.username == username))
    if user_id is None:
        raise AccountError(f"no user {username!r}")
    return int(user_id)


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
        ).order_by(AppUser.username),
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


def teams(session: Session) -> list[tuple[int, str, str]]:
    """Every team's key, code and name, by name."""
    rows = session.execute(select(Team.id, Team.code, Team.name).order_by(Team.name, Team.code))
    return [(int(key), str(code), str(name)) for key, code, name in rows]


def find_team(session: Session, code: str) -> tuple[int, str] | None:
    """The key and name of the team with this code, or None."""
    found = session.execute(select(Team.id, Team.name).where(Team.code == code)).first()
    return None if found is None else (int(found[0]), str(found[1]))


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
