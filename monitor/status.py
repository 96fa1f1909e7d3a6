"""Where each patient stands now: the per-patient summary the lists read (materialised by db/)."""

from __future__ import annotations

import pandas as pd

# Results that no longer count: kept in history, never summarised (reference §10 item 4).
EXCLUDED_STATUSES = ("cancelled", "entered-in-error")
STATUS_COLUMNS = (
    "patient_key",
    "latest_wbc",
    "latest_wbc_low",
    "latest_wbc_at",
    "latest_anc",
    "latest_anc_low",
    "latest_anc_at",
    "last_collected_at",
    "n_panels",
)


def latest_status(results: pd.DataFrame) -> pd.DataFrame:
    """The latest WBC and ANC (with the lower limit reported beside them) and the last CBC per patient.

    Parameters
    ----------
    results : pd.DataFrame
        Current results: ``patient_key``, ``panel_id``, ``collected_at``, ``analyte``, ``value``,
        ``ref_low``, ``status``.

    Returns
    -------
    pd.DataFrame
        One row per patient with a usable result, columns ``STATUS_COLUMNS``.

    Examples
    --------
    >>> ts = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-02-01"], utc=True)
    >>> results = pd.DataFrame({"patient_key": [1, 1, 1], "panel_id": [10, 11, 11],
    ...     "collected_at": ts, "analyte": ["wbc", "wbc", "anc"], "value": [5.0, 3.1, 1.2],
    ...     "ref_low": [4.0, 4.0, 1.8], "status": ["final"] * 3})
    >>> latest_status(results)[["latest_wbc", "latest_anc", "n_panels"]].to_dict("records")
    [{'latest_wbc': 3.1, 'latest_anc': 1.2, 'n_panels': 2}]
    """
    usable = results[~results["status"].isin(EXCLUDED_STATUSES) & results["value"].notna()]
    usable = usable.sort_values(["patient_key", "collected_at", "panel_id"], kind="stable")
    summary = usable.groupby("patient_key").agg(
        last_collected_at=("collected_at", "max"), n_panels=("panel_id", "nunique")
    )
    for analyte in ("wbc", "anc"):
        # tail(1), not last(): last() would fill a missing ref_low from an older result.
        mine = usable[usable["analyte"] == analyte]
        latest = mine.groupby("patient_key").tail(1).set_index("patient_key")
        summary[f"latest_{analyte}"] = latest["value"]
        summary[f"latest_{analyte}_low"] = latest["ref_low"]
        summary[f"latest_{analyte}_at"] = latest["collected_at"]
    return summary.reset_index().reindex(columns=list(STATUS_COLUMNS))
