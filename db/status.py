"""The materialised per-patient status: recomputed for the patients a write touched, read by lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.frames import chunks, read_frame_in, to_records
from db.models import Panel, PatientStatus, Result
from monitor.status import latest_status


def refresh_patient_status(session: Session, patient_keys: Sequence[int], *, now: datetime) -> None:
    """Recompute and replace the status rows of ``patient_keys`` (every patient keeps a row)."""
    if not patient_keys:
        return
    results = read_frame_in(
        session,
        lambda part: (
            select(
                Panel.patient_id.label("patient_key"),
                Panel.id.label("panel_id"),
                Panel.collected_at,
                Result.analyte,
                Result.value,
                Result.ref_low,
                Result.status,
            )
            .join(Result, Result.panel_id == Panel.id)
            .where(Panel.patient_id.in_(part), Result.is_current.is_(True))
        ),
        list(patient_keys),
        utc=["collected_at"],
    )
    summary = latest_status(results).set_index("patient_key").reindex(list(patient_keys))
    summary["n_panels"] = summary["n_panels"].fillna(0).astype("int64")
    rows = summary.rename_axis("patient_id").reset_index().assign(computed_at=now)
    for part in chunks(list(patient_keys)):
        session.execute(delete(PatientStatus).where(PatientStatus.patient_id.in_(part)))
    session.execute(insert(PatientStatus), to_records(rows))
