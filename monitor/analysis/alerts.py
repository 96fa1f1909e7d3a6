"""Alerts: the flags that appeared and the grades that rose since a time and still hold, most severe first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.changes import GRADED

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


def current_alerts(changes: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """The patients whose recorded changes still hold, one row each, most severe first.

    Parameters
    ----------
    changes : pd.DataFrame
        Recorded status changes of kind "appeared" or "worsened", oldest first: ``patient_key``,
        ``recorded_at``, ``flag`` ("grade" for a grade that rose), ``analyte``, ``grade_after`` and
        ``explanation`` (the grade change's sentence).
    patients : pd.DataFrame
        The patient list as it stands now (``patient_key``, ``patient_id``, ``assigning_authority``,
        ``name``, ``flags`` and ``explanations`` as lists, ``latest_{wbc,anc,alc}_grade``,
        ``last_collected_at``).

    Returns
    -------
    pd.DataFrame
        Columns ``ALERT_COLUMNS``. A flag holds while the patient still has it; a grade change holds while
        the grade is at least what it rose to. ``changes`` are sentences ("neutropenia appeared: ANC 0.9
        below 1.5 ...", "ANC CTCAE grade 2 -> 3"), each flag's as it reads now (its limit or run may have
        changed since it appeared). Severity: the highest current CTCAE grade of WBC, ANC and ALC, then a
        current ``worsening`` flag, then ``new_onset``, then the number of changes; the most recent change
        first among equals.
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
    holds = np.where(
        changes["flag"].eq("grade"),
        grade_now.to_numpy() >= changes["grade_after"],
        changes["explained_now"].notna(),
    )
    changes = changes[holds.astype(bool)]
    if changes.empty:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    sentence = np.where(
        changes["flag"].eq("grade"),
        changes["explanation"],
        changes["flag"] + " appeared: " + changes["explained_now"].astype("string"),
    )
    grouped = changes.assign(sentence=sentence).groupby("patient_key")
    out = pd.DataFrame(
        {
            "changes": grouped["sentence"].agg(list),
            "first_noticed_at": grouped["recorded_at"].min(),
            "last_noticed_at": grouped["recorded_at"].max(),
        }
    ).join(now)
    grades = out[[f"latest_{a}_grade" for a in GRADED]].astype("Float64")
    out["grade"] = grades.max(axis=1).astype("Int64")
    out["worsening"] = out["flags"].map(lambda flags: "worsening" in flags)
    out["new_onset"] = out["flags"].map(lambda flags: "new_onset" in flags)
    out["n_changes"] = out["changes"].map(len)
    out = out.sort_values(
        ["grade", "worsening", "new_onset", "n_changes", "last_noticed_at"],
        ascending=False,
        na_position="last",
        kind="stable",
    )
    return out.reset_index()[ALERT_COLUMNS]
