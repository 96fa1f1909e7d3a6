"""Clinical events into the store: idempotent on (patient, kind, start, label)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import insert, select, true
from sqlalchemy.orm import Session

from db.frames import read_frame_in, to_records
from db.models import ClinicalEvent, Patient

EVENT_KEY = ["patient_key", "kind", "start_at", "label"]


def write_events(
    session: Session, events: pd.DataFrame, *, batch_id: int | None, imported_by: str, now: datetime
) -> tuple[int, pd.DataFrame, list[int]]:
    """Store new events; return how many were added, the rows refused for an unknown patient, and the keys
    of the patients that gained an event (whose status the caller recomputes).

    An event names a patient already in the store: a mistyped identifier must not create a patient.
    """
    refused = pd.DataFrame(columns=["location", "raw_text", "reason"])
    if events.empty:
        return 0, refused, []
    known = read_frame_in(
        session,
        lambda part: select(
            Patient.id.label("patient_key"), Patient.mrn.label("patient_id"), Patient.assigning_authority
        ).where(Patient.mrn.in_(part)),
        events["patient_id"].unique().tolist(),
    )
    keyed = events.merge(known, on=["assigning_authority", "patient_id"], how="left")
    unknown = keyed["patient_key"].isna()
    refused = keyed.loc[unknown, ["location", "raw_text"]].assign(
        reason=_not_found(session, keyed[unknown], known)
    )
    keyed = keyed[~unknown].astype({"patient_key": "int64"}).drop_duplicates(EVENT_KEY)
    stored = read_frame_in(
        session,
        lambda part: select(
            ClinicalEvent.patient_id.label("patient_key"),
            ClinicalEvent.kind,
            ClinicalEvent.start_at,
            ClinicalEvent.label,
        ).where(ClinicalEvent.patient_id.in_(part)),
        keyed["patient_key"].unique().tolist(),
        utc=["start_at"],
    )
    merged = keyed.merge(stored, on=EVENT_KEY, how="left", indicator=True)
    new = merged[merged["_merge"] == "left_only"]
    if not new.empty:
        rows = new[["patient_key", "kind", "start_at", "end_at", "label", "details"]].rename(
            columns={"patient_key": "patient_id"}
        )
        session.execute(
            insert(ClinicalEvent),
            to_records(rows.assign(created_by=imported_by, batch_id=batch_id, created_at=now)),
        )
    return len(new), refused, sorted(int(key) for key in new["patient_key"].unique())


def _not_found(session: Session, events: pd.DataFrame, known: pd.DataFrame) -> pd.Series:
    """Why each of ``events`` names no stored patient: not in the store, or known only under another
    assigning authority (an events file without the column, or a line leaving it empty, names none)."""
    authorities = (
        known.sort_values("assigning_authority")
        .groupby("patient_id")["assigning_authority"]
        .agg(lambda names: " and ".join(f"authority {name!r}" if name else "no authority" for name in names))
    )
    found = events["patient_id"].isin(authorities.index)
    theirs = events["patient_id"].map(authorities).astype("str").where(found, "")
    given = events["assigning_authority"].fillna("").astype(str)
    patient = "patient '" + events["patient_id"].astype(str) + "'"
    missing = patient + " is not in the store (import results first)"
    if (
        given.eq("").any()
        and session.scalar(select(true()).where(Patient.assigning_authority == "").limit(1)) is None
        and session.scalar(select(true()).select_from(Patient).limit(1))
    ):
        missing = missing.where(
            given.ne(""),
            patient
            + " is not in the store, and no assigning_authority is given while every stored patient has "
            "one (add an assigning_authority column)",
        )
    elsewhere = (
        "no assigning_authority given: "
        + patient
        + " is known under "
        + theirs
        + " (add an assigning_authority column, or fill it in)"
    ).where(
        given.eq(""),
        patient + " is not in the store under authority '" + given + "': it is known under " + theirs,
    )
    return elsewhere.where(found, missing)
