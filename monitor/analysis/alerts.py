"""Alerts: the flags that appeared, the grades that rose, the flags the lab took back, the preliminary
results made final and the new critical results from the lab since a time, that still hold, most severe
first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.changes import GRADED, LAB_CRITICAL, spoken_flag
from monitor.analysis.triage import in_priority_order, max_grade

__all__ = ["ALERT_COLUMNS", "current_alerts"]

ALERT_COLUMNS = [
    "patient_id",
    "assigning_authority",
    "name",
    "grade",
    "flags",
    "changes",
    "first_noticed_at",
    "last_noticed_at",
    "last_collected_at",
]


def _current_critical(changes: pd.DataFrame, now: pd.DataFrame) -> np.ndarray:
    """Per change, whether every critical result it names is still in the patient's ``lab_critical_detail``
    (False when the list does not carry it)."""
    if "lab_critical_detail" not in now:
        return np.zeros(len(changes), dtype=bool)
    detail = now["lab_critical_detail"].fillna("").astype(str).reindex(changes["patient_key"]).fillna("")
    said = changes["explanation"].fillna("").astype(str).str.removeprefix("critical result from the lab: ")
    return np.array(
        [
            bool(words) and all(p in d.split("; ") for p in words.split("; "))
            for words, d in zip(said, detail, strict=True)
        ],
        dtype=bool,
    )


def current_alerts(changes: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """The patients whose recorded changes still hold, one row each, most urgent first.

    Parameters
    ----------
    changes : pd.DataFrame
        Recorded status changes of kind "appeared", "worsened", "withdrawn" or "final", oldest first:
        ``patient_key``, ``recorded_at``, ``change``, ``flag`` ("grade" for a grade that rose, "result" for
        a preliminary result made final), ``analyte``, ``grade_after`` and ``explanation`` (the sentence
        of a grade change, a withdrawal or a final result).
    patients : pd.DataFrame
        The patient list as it stands now (``patient_key``, ``patient_id``, ``assigning_authority``,
        ``name``, ``flags`` and ``explanations`` as lists, ``latest_{wbc,anc,alc}_grade``,
        ``last_collected_at``).

    Returns
    -------
    pd.DataFrame
        Columns ``ALERT_COLUMNS``. A flag holds while the patient still has it; a grade change holds while
        the grade is at least what it rose to; a flag withdrawn by the lab holds while the patient does not
        have it again ("leukopenia withdrawn: WBC 2.5 corrected to 5.0 by the lab on 2026-03-02"); a final
        result holds while its analyte's grade is still the one it was made final at (always, when that
        grade was not known: "WBC 2.1 preliminary -> 2.0 final on 2026-03-02; grade unchanged").
        A critical result from the lab (flag ``lab_critical``, ``analysis.changes.critical_changes``) holds
        while the patient's ``lab_critical_detail`` still names every result it names.
        ``changes`` are sentences ("neutropenia appeared: ANC 0.9
        below 1.5 ...", "ANC CTCAE grade 2 -> 3"), each flag's as it reads now (its limit or run may have
        changed since it appeared). Order: the patient's priority on the worklist
        (``analysis.triage.in_priority_order``: tier, then ANC, WBC and ALC grade), then the most recent
        change first.
    """
    now = patients.set_index("patient_key")
    changes = changes[changes["patient_key"].isin(now.index).to_numpy(dtype=bool)].reset_index(drop=True)
    if changes.empty:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    now = now[now.index.isin(changes["patient_key"])]
    current = now.loc[changes["patient_key"]]
    grade_now = pd.Series(np.nan, index=changes.index)
    for analyte in GRADED:
        mine = changes["analyte"].eq(analyte).fillna(False).to_numpy(dtype=bool)
        grade_now[mine] = current[f"latest_{analyte}_grade"].astype("Float64").to_numpy()[mine]
    flagged = now[["flags", "explanations"]].explode(["flags", "explanations"]).dropna(subset=["flags"])
    flagged = flagged.reset_index().rename(columns={"flags": "flag", "explanations": "explained_now"})
    changes = changes.merge(flagged, on=["patient_key", "flag"], how="left")
    if "change" not in changes:  # "appeared" or "worsened" alike below
        changes = changes.assign(change="appeared")
    kind = changes["change"]
    after = changes["grade_after"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    flagged_now = changes["explained_now"].notna().to_numpy(dtype=bool)
    # A critical result from the lab holds while the patient's latest results still carry its words.
    critical = changes["flag"].eq(LAB_CRITICAL).to_numpy(dtype=bool)
    critical_now = _current_critical(changes, now)
    holds = np.select(
        [critical, kind.eq("withdrawn").to_numpy(dtype=bool), kind.eq("final").to_numpy(dtype=bool)],
        [critical_now, ~flagged_now, np.isnan(after) | (grade_now.to_numpy(dtype=float) == after)],
        np.where(changes["flag"].eq("grade"), grade_now.to_numpy(dtype=float) >= after, flagged_now),
    )
    changes = changes[holds.astype(bool)]
    if changes.empty:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    told = changes["flag"].isin(("grade", LAB_CRITICAL)).to_numpy(dtype=bool) | changes["change"].isin(
        ("withdrawn", "final")
    ).to_numpy(dtype=bool)
    sentence = np.where(
        told,
        changes["explanation"],
        spoken_flag(changes["flag"]) + " appeared: " + changes["explained_now"].astype("string"),
    )
    grouped = changes.assign(sentence=sentence).groupby("patient_key")
    out = pd.DataFrame(
        {
            "changes": grouped["sentence"].agg(list),
            "first_noticed_at": grouped["recorded_at"].min(),
            "last_noticed_at": grouped["recorded_at"].max(),
        }
    ).join(now)
    out["grade"] = max_grade(out)
    # The worklist's order (the patient's tier, then grades), then the most recent change first.
    out = in_priority_order(out, then="last_noticed_at")
    return out.reset_index()[ALERT_COLUMNS]
