"""Where each patient stands now: the per-patient summary the lists read (materialised by db/)."""

from __future__ import annotations

import pandas as pd

# Results that no longer count: kept in history, never summarised (reference §10 item 4).
EXCLUDED_STATUSES = ("cancelled", "entered-in-error")


def usable_results(results: pd.DataFrame) -> pd.DataFrame:
    """Results that count: not cancelled or entered in error, and with a value."""
    return results[~results["status"].isin(EXCLUDED_STATUSES) & results["value"].notna()]


def latest_values(results: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the latest usable WBC, ANC and ALC with the lower limit reported beside each.

    >>> ts = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-02-01"], utc=True)
    >>> results = pd.DataFrame({"patient_key": [1, 1, 1], "panel_id": [10, 11, 11],
    ...     "collected_at": ts, "analyte": ["wbc", "wbc", "anc"], "value": [5.0, 3.1, 1.2],
    ...     "ref_low": [4.0, 4.0, 1.8], "status": ["final"] * 3})
    >>> latest_values(results)[["latest_wbc", "latest_wbc_low", "latest_anc"]].to_dict("records")
    [{'latest_wbc': 3.1, 'latest_wbc_low': 4.0, 'latest_anc': 1.2}]
    """
    usable = usable_results(results).sort_values(["patient_key", "collected_at", "panel_id"], kind="stable")
    latest = pd.DataFrame(index=pd.Index(usable["patient_key"].unique(), name="patient_key"))
    for analyte in ("wbc", "anc", "alc"):
        # tail(1), not last(): last() would fill a missing ref_low from an older result.
        mine = usable[usable["analyte"] == analyte]
        last = mine.groupby("patient_key").tail(1).set_index("patient_key")
        latest[f"latest_{analyte}"] = last["value"]
        latest[f"latest_{analyte}_comparator"] = last["comparator"] if "comparator" in last else None
        latest[f"latest_{analyte}_low"] = last["ref_low"]
        latest[f"latest_{analyte}_at"] = last["collected_at"]
    return latest
