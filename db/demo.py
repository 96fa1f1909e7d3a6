"""Store the synthetic demo cohort (monitor.simulation.demo), idempotently and in bulk, and take it out again.

Everything written here is marked synthetic: patients (``is_synthetic``, authority ``DEMO``), labs, and the
import batch (format ``demo``); ``remove_cohort`` removes all of it, and disables the demo accounts. The
cohort is simulated up to an anchor date fixed at the first seeding and kept as a setting, so seeding again
on a later day adds nothing. Simulating it and recomputing the patients' status is the caller's part
(``services.admin``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from db.accounts import DEMO_ACCOUNTS, DEMO_PASSWORD, ensure_demo_accounts
from db.audit import record
from db.frames import read_frame, read_frame_in, to_records
from db.ingest import ensure_patients, new_batch, write_results
from db.models import (
    Acknowledgement,
    AppUser,
    ClinicalEvent,
    ImportBatch,
    Lab,
    LabRange,
    OtherObservation,
    Panel,
    Patient,
    PatientStatus,
    PatientTeam,
    ReferenceOverride,
    RejectedRecord,
    Result,
    Setting,
    StatusChange,
    StatusPending,
    Team,
    UserTeam,
)
from monitor.analytes import PREFERRED_LOINC
from monitor.simulation.demo import DemoCohort

DEMO_AUTHORITY = "DEMO"
DEMO_USER = "demo-seed"
ANCHOR_SETTING = "demo.anchor_date"
SEED_SETTING = "demo.seed"
# When the cohort was removed (``remove_cohort``): a store the demo was taken out of is not seeded again
# on the dashboard's next start.
REMOVED_SETTING = "demo.removed"
TEAMS = {"oncology": "Oncology", "internal-medicine": "Internal medicine"}


@dataclass(frozen=True, slots=True)
class StoredResults:
    """What storing a cohort's results wrote: its import batch, the patients whose results it added or
    changed, every patient of the cohort (their store keys by identifier), and how many results were new."""

    batch_id: int
    written: tuple[int, ...]
    keys: pd.Series
    results_added: int

    @property
    def patients(self) -> tuple[int, ...]:
        return tuple(sorted(int(key) for key in self.keys.unique()))


class DemoConflict(ValueError):
    """The store already holds a demo cohort simulated with another seed."""


def _fixed(session: Session, key: str, value: object, *, now: datetime) -> object:
    """A setting fixed the first time the cohort is seeded: the stored value, or ``value`` now stored."""
    stored = session.get(Setting, key)
    if stored is not None:
        return json.loads(stored.value)
    session.add(Setting(key=key, value=json.dumps(value), updated_by=DEMO_USER, updated_at=now))
    session.flush()
    return value


def anchor_date(session: Session, *, now: datetime) -> date:
    """The demo's end date: fixed the first time the cohort is seeded (``now``'s date in UTC), so a later
    seeding adds nothing."""
    today = now.astimezone(UTC).date()
    return date.fromisoformat(str(_fixed(session, ANCHOR_SETTING, today.isoformat(), now=now)))


def check_seed(session: Session, seed: int, *, now: datetime) -> None:
    """Refuse a second cohort with another seed: its patients would share identifiers with the first."""
    first = _fixed(session, SEED_SETTING, seed, now=now)
    if first != seed:
        raise DemoConflict(
            f"the store holds the demo cohort simulated with seed {first}; seeding with {seed} would mix two "
            f"histories under the same identifiers (use --seed {first}, or a new database)"
        )


def _fingerprint(patients: int, seed: int, anchor: date) -> str:
    return hashlib.sha256(f"demo:{patients}:{seed}:{anchor}".encode()).hexdigest()


def already_seeded(session: Session, *, patients: int, seed: int, anchor: date) -> bool:
    """Whether this cohort (its size, seed and anchor date) is stored already."""
    fingerprint = _fingerprint(patients, seed, anchor)
    return session.scalar(select(ImportBatch.id).where(ImportBatch.content_sha256 == fingerprint)) is not None


def _canonical_results(cohort: DemoCohort) -> pd.DataFrame:
    """The simulated results in the store's canonical form, with the lab's H/L flag."""
    results = cohort.results
    value_text = results["value"].map("{:g}".format)
    flag = np.select(
        [results["value"] < results["ref_low"], results["value"] > results["ref_high"]], ["L", "H"], None
    )
    return pd.DataFrame(
        {
            "patient_id": results["patient_id"],
            "assigning_authority": DEMO_AUTHORITY,
            "collected_at": results["collected_at"],
            "analyte": results["analyte"],
            # The code a result came with (a showcase temperature's site), else the analyte's own.
            "loinc": (
                results["loinc"] if "loinc" in results else pd.Series(None, index=results.index)
            ).fillna(results["analyte"].map(PREFERRED_LOINC)),
            "value_raw": value_text,
            "unit_raw": results["unit"],
            "value": results["value"],
            "comparator": None,
            "unit": results["unit"],
            "ref_low": results["ref_low"],
            "ref_high": results["ref_high"],
            # None where no range comes with the result (a temperature).
            "ref_raw": (
                results["ref_low"].map("{:g}".format) + "-" + results["ref_high"].map("{:g}".format)
            ).where(results["ref_low"].notna() & results["ref_high"].notna(), None),
            "abnormal_flag": flag,
            "status": results["status"],
            "derived": False,
            "lab": results["lab"],
            "accession": results["accession"],
            "location": "",
            "raw_text": "",
        }
    )


def _ensure_teams(session: Session) -> dict[str, int]:
    known = read_frame(session, select(Team.code, Team.id))
    missing = [code for code in TEAMS if code not in set(known["code"])]
    if missing:
        session.execute(insert(Team), [{"code": code, "name": TEAMS[code]} for code in missing])
        known = read_frame(session, select(Team.code, Team.id))
    return dict(zip(known["code"], known["id"], strict=True))


def _add_missing(
    session: Session, model: type, rows: pd.DataFrame, key: list[str], utc: tuple[str, ...] = ()
) -> int:
    """Insert the rows whose ``key`` is not already stored for these patients; return how many."""
    if rows.empty:
        return 0
    columns = [getattr(model, name) for name in key]
    stored = read_frame_in(
        session,
        lambda part: select(*columns).where(model.patient_id.in_(part)),  # type: ignore[attr-defined]
        rows["patient_id"].unique().tolist(),
        utc=utc,
    )
    merged = rows.merge(stored, on=key, how="left", indicator=True)
    new = merged[merged["_merge"] == "left_only"].drop(columns="_merge")
    if not new.empty:
        session.execute(insert(model), to_records(new))
    return len(new)


def store_results(
    session: Session, cohort: DemoCohort, *, patients: int, seed: int, anchor: date, now: datetime
) -> StoredResults:
    """Store the ``cohort``'s patients, labs and results as one synthetic import batch; ``patients``,
    ``seed`` and ``anchor`` are what it was simulated with (``patients`` simulated, the showcase after)."""
    batch = new_batch(
        session,
        file_name=f"synthetic demo cohort ({patients} patients, seed {seed}, to {anchor})",
        sha256=_fingerprint(patients, seed, anchor),
        fmt="demo",
        imported_by=DEMO_USER,
        now=now,
    )
    people = cohort.patients.assign(assigning_authority=DEMO_AUTHORITY, is_synthetic=True)
    counts = write_results(
        session,
        _canonical_results(cohort),
        batch_id=batch.id,
        now=now,
        patients=people,
        labs=cohort.labs.assign(is_synthetic=True),
    )
    batch.accepted, batch.unchanged, batch.superseded = counts.accepted, counts.unchanged, counts.superseded
    keys = ensure_patients(session, people, now=now).set_index("patient_id")["patient_key"]
    return StoredResults(batch.id, tuple(counts.patient_keys), keys, counts.accepted)


def store_care(session: Session, cohort: DemoCohort, stored: StoredResults, *, now: datetime) -> int:
    """Store what surrounds the cohort's ``stored`` results: care teams and memberships, the demo accounts,
    clinical events and patient-specific ranges; return how many events were new."""
    keys = stored.keys
    team_ids = _ensure_teams(session)
    memberships = pd.DataFrame(
        {
            "patient_id": cohort.memberships["patient_id"].map(keys).astype("int64"),
            "team_id": cohort.memberships["team"].map(team_ids).astype("int64"),
        }
    )
    _add_missing(session, PatientTeam, memberships, ["patient_id", "team_id"])
    ensure_demo_accounts(session, now=now)

    events = cohort.events.rename(columns={"start": "start_at", "end": "end_at"})
    events = events.assign(
        patient_id=events["patient_id"].map(keys).astype("int64"),
        created_by=DEMO_USER,
        batch_id=stored.batch_id,
        created_at=now,
    )
    added = _add_missing(
        session, ClinicalEvent, events, ["patient_id", "kind", "start_at", "label"], utc=("start_at",)
    )

    overrides = cohort.overrides.assign(
        patient_id=cohort.overrides["patient_id"].map(keys).astype("int64"),
        set_by=DEMO_USER,
        set_at=now,
        is_active=True,
    )
    _add_missing(session, ReferenceOverride, overrides, ["patient_id", "analyte"])
    return added


@dataclass(frozen=True, slots=True)
class RemovedCohort:
    """What removing the demo cohort took out of the store (``accounts``: the demo accounts disabled)."""

    patients: int
    results: int
    events: int
    accounts: tuple[str, ...]


def _demo_accounts(session: Session) -> list[AppUser]:
    """The demo accounts still enabled: named and described as ``ensure_demo_accounts`` made them (a site's
    own account that happens to be called ``admin`` has its own display name and is left alone)."""
    made = or_(
        *(
            and_(AppUser.username == username, AppUser.display_name == display)
            for username, display, _role, _teams in DEMO_ACCOUNTS
        )
    )
    return list(
        session.scalars(select(AppUser).where(AppUser.is_active.is_(True), made).order_by(AppUser.id))
    )


def accounts_with_published_password(session: Session) -> list[str]:
    """The enabled demo accounts whose password is still the published ``demo``."""
    return [user.username for user in _demo_accounts(session) if _published(user.password_hash or "")]


@functools.lru_cache(maxsize=16)
def _published(password_hash: str) -> bool:
    """Whether this Argon2 hash is of ``DEMO_PASSWORD``: checked once per hash and process (a check costs
    tens of milliseconds, and every import asks)."""
    try:
        return bool(password_hash) and PasswordHasher().verify(password_hash, DEMO_PASSWORD)
    except (VerificationError, InvalidHashError):
        return False


def remove_cohort(session: Session, *, now: datetime, by: str) -> RemovedCohort:
    """Take the synthetic cohort out of the store: its patients (``is_synthetic``) with all their rows
    (results and panels, other observations, statuses and status changes, events, patient ranges,
    acknowledgements, team memberships), the demo's import batches and settings, the synthetic labs no
    panel or lab range still uses; and disable the demo accounts.

    The audit trail is append-only and keeps every row that names them. For the same reason a demo account
    is disabled, its password hash cleared and its teams taken away rather than deleted: the trail, the
    events and the acknowledgements name it by its username, which a new account could otherwise take over.
    Both are audited; a store the demo was removed from is not seeded again on the dashboard's start.
    """
    patients = select(Patient.id).where(Patient.is_synthetic.is_(True))
    panels = select(Panel.id).where(Panel.patient_id.in_(patients))
    batches = select(ImportBatch.id).where(ImportBatch.format == "demo")
    n_patients = int(session.scalar(select(func.count()).select_from(patients.subquery())) or 0)
    n_results = session.execute(delete(Result).where(Result.panel_id.in_(panels))).rowcount
    session.execute(delete(OtherObservation).where(OtherObservation.panel_id.in_(panels)))
    session.execute(delete(Panel).where(Panel.patient_id.in_(patients)))
    n_events = session.execute(delete(ClinicalEvent).where(ClinicalEvent.patient_id.in_(patients))).rowcount
    for model in (
        ReferenceOverride,
        PatientStatus,
        StatusChange,
        Acknowledgement,
        PatientTeam,
        StatusPending,
    ):
        session.execute(delete(model).where(model.patient_id.in_(patients)))  # type: ignore[attr-defined]
    session.execute(delete(Patient).where(Patient.is_synthetic.is_(True)))
    removed_batches = [int(b) for b in session.scalars(batches)]
    session.execute(delete(RejectedRecord).where(RejectedRecord.batch_id.in_(removed_batches)))
    session.execute(delete(ImportBatch).where(ImportBatch.id.in_(removed_batches)))
    in_use = select(Panel.lab_id).union(select(LabRange.lab_id))
    session.execute(delete(Lab).where(Lab.is_synthetic.is_(True), Lab.id.not_in(in_use)))
    session.execute(delete(Setting).where(Setting.key.in_((ANCHOR_SETTING, SEED_SETTING, REMOVED_SETTING))))
    session.add(
        Setting(key=REMOVED_SETTING, value=json.dumps(now.isoformat()), updated_by=by, updated_at=now)
    )
    details = {
        "removed": "synthetic demo cohort",
        "patients": n_patients,
        "results": n_results,
        "events": n_events,
        "batches": removed_batches,
    }
    record(session, at=now, username=by, action="import", details=details)

    accounts = _demo_accounts(session)
    for user in accounts:
        user.is_active, user.password_hash, user.failed_attempts, user.locked_until = False, None, 0, None
        reason = "demo account, removed with the synthetic cohort: disabled and its password cleared"
        record(
            session,
            at=now,
            username=by,
            action="user_disable",
            details={"user": user.username, "reason": reason},
        )
    session.execute(delete(UserTeam).where(UserTeam.user_id.in_([user.id for user in accounts])))
    session.flush()
    return RemovedCohort(n_patients, n_results, n_events, tuple(user.username for user in accounts))


def was_removed(session: Session) -> bool:
    """Whether the demo cohort was removed from this store (``remove_cohort``)."""
    return session.get(Setting, REMOVED_SETTING) is not None


def has_active_admin(session: Session) -> bool:
    """Whether any enabled account is an administrator."""
    found = select(AppUser.id).where(AppUser.is_active.is_(True), AppUser.role == "admin").limit(1)
    return session.scalar(found) is not None
