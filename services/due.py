"""CBCs due: the nadir windows opening in the next days or missed, and the grade 3-4 patients without a
recent count, among the patients a viewer may see (``monitor.analysis.due``)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from db.settings import site_rules
from monitor.analysis.due import due_items
from monitor.analysis.triage import max_grade

__all__ = ["DUE_LIST_COLUMNS", "cbcs_due"]

DUE_LIST_COLUMNS = [
    "patient_id",
    "assigning_authority",
    "name",
    "kind",
    "cycle",
    "window",
    "window_start",
    "window_end",
    "last_collected_at",
    "reason",
    "patient_key",
]
# The order a clinician works the list in (docs/clinical-basis.md, CBCs due): grade 4 neutropenia or
# leukopenia without a recent count first (the most dangerous, and no count says whether it lasts), then
# the missed nadir windows (the chance has passed), then the windows due by their first day, then grade 3
# without a recent count.
_KIND_ORDER = {"severe grade 4": 0, "missed": 1, "due": 2, "severe": 3}


def cbcs_due(
    store: sessionmaker[Session], *, viewer: Viewer, timezone: str, now: datetime, days: int
) -> pd.DataFrame:
    """One row per CBC due among the patients ``viewer`` may see as of ``now``: a nadir window whose first
    day is at most ``days`` calendar days away (in ``timezone``) or open, with no count in it yet ("due"); a
    window that closed without one ("missed"); outside chemotherapy, a grade 3-4 finding with no CBC for
    more than the site's ``due_severe_days`` ("severe"). Grade 4 "severe" first, then "missed", "due" (by
    first day), grade 3 "severe" (``_KIND_ORDER``). Columns ``DUE_LIST_COLUMNS``; window dates are the
    first and last days in ``timezone``, ``last_collected_at`` the last CBC (UTC)."""
    with store() as session:
        listed = queries.patient_list(session, viewer=viewer, timezone=timezone, now=now)
        rules = site_rules(session).cycles
    items = due_items(listed, as_of=pd.Timestamp(now), rules=rules, timezone=timezone, days=days)
    if items.empty:
        return pd.DataFrame(columns=DUE_LIST_COLUMNS).astype({"last_collected_at": "datetime64[us, UTC]"})
    people = listed[["patient_key", "patient_id", "assigning_authority", "name", "last_collected_at"]]
    found = items.merge(people, on="patient_key", how="left", validate="many_to_one")
    grade = found["patient_key"].map(max_grade(listed).set_axis(listed["patient_key"]))
    rank = found["kind"].where(~(found["kind"].eq("severe") & grade.ge(4)).fillna(False), "severe grade 4")
    found = found.assign(_kind=rank.map(_KIND_ORDER)).sort_values(
        ["_kind", "window_start", "patient_id", "cycle"], kind="stable"
    )
    return found[DUE_LIST_COLUMNS].reset_index(drop=True)
