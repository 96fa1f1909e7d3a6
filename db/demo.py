"""Seed the synthetic demo cohort (monitor.simulation.demo) into the store, idempotently and in bulk.

Everything written here is marked synthetic: patients (``is_synthetic``, authority ``DEMO``), labs, and the
import batch. The cohort is simulated up to an anchor date fixed at the first seeding and kept as a
setting, so seeding again on a later day adds nothing.
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
from db.status import refresh_patient_status
from monitor.analytes import PREFERRED_LOINC
from monitor.simulation.demo import DemoCohort, simulate_cohort

DEMO_AUTHORITY = "DEMO"
DEMO_USER = "demo-seed"
ANCHOR_SETTING = "demo.anchor_date"
SEED_SETTING = "demo.seed"
TEAMS = {"oncology": "Oncology", "internal-medicine": "Internal medicine"}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    patients: int
    results_added: int
    events_added: int
    already_seeded: bool
    anchor: date


class DemoConflict(ValueError):
    """The store already holds a demo cohort simulated with another seed."""


def _fixed(session: Session, key: str, value: object) -> object:
    """A setting fixed the first time the cohort is seeded: the stored value, or ``value`` now stored."""
    stored = session.get(Setting, key)
    if stored is not None:
        return json.loads(stored.value)
    session.add(Setting(key=key, value=json.dumps(value), updated_by=DEMO_USER, updated_at=datetime.now(UTC)))
    session.flush()
    return value


def anchor_date(session: Session, *, today: date) -> date:
    """The demo's end date: fixed the first time the cohort is seeded, so a later seeding adds nothing."""
    return date.fromisoformat(str(_fixed(session, ANCHOR_SETTING, today.isoformat())))


def check_seed(session: Session, seed: int) -> None:
    """Refuse a second cohort with another seed: its patients would share identifiers with the first."""
    first = _fixed(session, SEED_SETTING, seed)
    if first != seed:
        raise DemoConflict(
            f"the store holds the demo cohort simulated with seed {first}; seeding with {seed} would mix two "
            f"histories under the same identifiers (use --seed {first}, or a new database)"
        )


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


def seed_demo(session: Session, *, patients: int, seed: int, today: date) -> DemoSummary:
    """Simulate and store the demo cohort inside the caller's transaction."""
    check_seed(session, seed)
    anchor = anchor_date(session, today=today)
    fingerprint = hashlib.sha256(f"demo:{patients}:{seed}:{anchor}".encode()).hexdigest()
    done = session.scalar(select(ImportBatch.id).where(ImportBatch.content_sha256 == fingerprint))
    if done is not None:
        ensure_demo_accounts(session, now=datetime.now(UTC))  # a store seeded before accounts existed
        return DemoSummary(patients, 0, 0, True, anchor)

    cohort = simulate_cohort(patients, seed=seed, end_date=anchor)
    now = datetime.now(UTC)
    batch = new_batch(
        session,
        file_name=f"synthetic demo cohort ({patients} patients, seed {seed}, to {anchor})",
        sha256=fingerprint,
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
        batch_id=batch.id,
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
    # The overrides change which limit applies to those patients: recompute their status.
    refresh_patient_status(session, sorted(keys.unique().tolist()), now=now)
    return DemoSummary(len(cohort.patients), counts.accepted, added, False, anchor)
