"""The materialised per-patient status: recomputed for the patients a write touched, read by lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, distinct, func, select
from sqlalchemy.orm import Session

from db.frames import bulk_insert, chunks, read_frame_in
from db.models import Panel, PatientStatus, Result
from monitor.status import EXCLUDED_STATUSES, latest_values


def refresh_patient_status(session: Session, patient_keys: Sequence[int], *, now: datetime) -> None:
    """Recompute and replace the status rows of ``patient_keys`` (every patient keeps a row).

    Reads only what the status needs: the WBC and ANC rows, and per-patient panel counts computed by
    the database.
    """
    if not patient_keys:
        return
    usable = (
        Result.is_current.is_(True),
        Result.status.not_in(EXCLUDED_STATUSES),
        Result.value.is_not(None),
    )
    counts = read_frame_in(
        session,
        lambda part: (
            select(
                Panel.patient_id.label("patient_key"),
                func.max(Panel.collected_at).label("last_collected_at"),
                func.count(distinct(Panel.id)).label("n_panels"),
            )
            .join(Result, Result.panel_id == Panel.id)
            .where(Panel.patient_id.in_(part), *usable)
            .group_by(Panel.patient_id)
        ),
        list(patient_keys),
    )
    # The latest WBC and ANC per patient, chosen by the database (a window function), so that only
    # two rows per patient travel back, however long the history.
    ranked = (
        select(
            Panel.patient_id.label("patient_key"),
            Panel.id.label("panel_id"),
            Panel.collected_at,
            Result.analyte,
            Result.value,
            Result.comparator,
            Result.ref_low,
            Result.status,
            func.row_number()
            .over(
                partition_by=(Panel.patient_id, Result.analyte),
                order_by=(Panel.collected_at.desc(), Panel.id.desc()),
            )
            .label("recency"),
        )
        .join(Result, Result.panel_id == Panel.id)
        .where(Result.analyte.in_(("wbc", "anc")), *usable)
    )

    def latest_rows(part: Sequence[int]) -> Select[Any]:
        inner = ranked.where(Panel.patient_id.in_(part)).subquery()
        columns = [
            inner.c[name]
            for name in (
                "patient_key",
                "panel_id",
                "collected_at",
                "analyte",
                "value",
                "comparator",
                "ref_low",
                "status",
            )
        ]
        return select(*columns).where(inner.c.recency == 1)

    values = read_frame_in(session, latest_rows, list(patient_keys))
    summary = counts.set_index("patient_key").join(latest_values(values)).reindex(list(patient_keys))
    summary["n_panels"] = summary["n_panels"].fillna(0).astype("int64")
    rows = summary.rename_axis("patient_id").reset_index().assign(computed_at=now)
    rows = rows[[column.name for column in PatientStatus.__table__.columns]]
    for part in chunks(list(patient_keys)):
        session.execute(delete(PatientStatus).where(PatientStatus.patient_id.in_(part)))
    bulk_insert(session, PatientStatus.__table__, rows)
