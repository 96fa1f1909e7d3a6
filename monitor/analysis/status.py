"""Where each patient stands now: the per-patient summary the lists read (materialised by db/)."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.changes import GRADED

# Results that no longer count (HL7 v2 OBX-11 W, D, X; FHIR entered-in-error, cancelled): kept in history,
# never summarised (docs/clinical-rules.md, Result status).
EXCLUDED_STATUSES = ("cancelled", "entered-in-error")


def usable_results(results: pd.DataFrame) -> pd.DataFrame:
    """Results that count: not cancelled or entered in error, and with a value."""
    return results[~results["status"].isin(EXCLUDED_STATUSES) & results["value"].notna()]


# What the status keeps of each graded analyte's latest usable result, in this order: the value with its
# comparator (a censored "<0.1") and collection time, the lower limit that applies with whose limit it is
# (a patient's own range, the one reported, the lab's, a population default), and the CTCAE grade.
LATEST_FIELDS = ("", "comparator", "at", "lln", "range_source", "grade")


def latest_column(analyte: str, field: str = "") -> str:
    """The status column holding ``field`` of the latest ``analyte``: ``latest_wbc``, ``latest_wbc_grade``."""
    return f"latest_{analyte}_{field}" if field else f"latest_{analyte}"


# Every such column, analyte by analyte: the one list the store, its reads and the command line share.
LATEST_COLUMNS = tuple(latest_column(analyte, field) for analyte in GRADED for field in LATEST_FIELDS)


def latest_values(results: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the latest usable WBC, ANC and ALC with their comparators and collection times.

    >>> ts = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-02-01"], utc=True)
    >>> results = pd.DataFrame({"patient_key": [1, 1, 1], "panel_id": [10, 11, 11],
    ...     "collected_at": ts, "analyte": ["wbc", "wbc", "anc"], "value": [5.0, 3.1, 1.2],
    ...     "status": ["final"] * 3})
    >>> latest_values(results)[["latest_wbc", "latest_wbc_at", "latest_anc"]].to_dict("records")
    [{'latest_wbc': 3.1, 'latest_wbc_at': Timestamp('2026-02-01 00:00:00+0000', tz='UTC'), 'latest_anc': 1.2}]
    """
    usable = usable_results(results).sort_values(["patient_key", "collected_at", "panel_id"], kind="stable")
    latest = pd.DataFrame(index=pd.Index(usable["patient_key"].unique(), name="patient_key"))
    for analyte in GRADED:
        # tail(1), not last(): last() would fill a missing comparator from an older result.
        mine = usable[usable["analyte"] == analyte]
        last = mine.groupby("patient_key").tail(1).set_index("patient_key")
        latest[latest_column(analyte)] = last["value"]
        latest[latest_column(analyte, "comparator")] = last["comparator"] if "comparator" in last else None
        latest[latest_column(analyte, "at")] = last["collected_at"]
    return latest
