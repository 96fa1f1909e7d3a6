"""Store the synthetic demo cohort (monitor.simulation.demo), idempotently and in bulk.

Everything written here is marked synthetic: patients (``is_synthetic``, authority ``DEMO``), labs, and the
import batch. The cohort is simulated up to an anchor date fixed at the first seeding and kept as a
setting, so seeding again on a later day adds nothing. Simulating it and recomputing the patients' status
is the caller's part (``services.admin``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.accounts import ensure_demo_accounts
from db.frames import read_frame, read_frame_in, to_records
from db.ingest import ensure_patients, new_batch, write_results
from db.models import ClinicalEvent, ImportBatch, PatientTeam, ReferenceOverride, Setting, Team
from monitor.analytes import PREFERRED_LOINC
from monitor.simulation.demo import DemoCohort

DEMO_AUTHORITY = "DEMO"
DEMO_USER = "demo-seed"
ANCHOR_SETTING = "demo.anchor_date"
SEED_SETTING = "demo.seed"
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
            "loinc": results["analyte"].map(PREFERRED_LOINC),
            "value_raw": value_text,
            "unit_raw": results["unit"],
            "value": results["value"],
            "comparator": None,
            "unit": results["unit"],
            "ref_low": results["ref_low"],
            "ref_high": results["ref_high"],
            "ref_raw": results["ref_low"].map("{:g}".format) + "-" + results["ref_high"].map("{:g}".format),
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
    session: Session, cohort: DemoCohort, *, seed: int, anchor: date, now: datetime
) -> StoredResults:
    """Store the simulated ``cohort``'s patients, labs and results as one synthetic import batch."""
    patients = len(cohort.patients)
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
