"""What changed in a patient's status between two computations: flags that appeared or cleared, grades
that rose. The materialised status keeps only "now"; these changes are what ``alerts`` reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CHANGE_COLUMNS", "GRADED", "status_changes"]

# The analytes whose latest value, limit and grade the status keeps (and whose grade rises are changes).
GRADED = ("wbc", "anc", "alc")
CHANGE_COLUMNS = ("patient_key", "change", "flag", "analyte", "grade_before", "grade_after", "explanation")
_NAMES = {"wbc": "WBC", "anc": "ANC", "alc": "ALC"}


def status_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Changes from ``before`` to ``after`` (a row per patient each; one missing from ``before`` is new).

    Both frames have ``patient_key``, ``flags`` and ``explanations`` (aligned sequences) and
    ``wbc_grade``/``anc_grade``/``alc_grade`` (nullable). A grade rise counts from a known grade, or from
    none to grade 1 or worse.

    >>> before = pd.DataFrame({"patient_key": [1], "flags": [("leukopenia",)], "explanations": [("a",)],
    ...     "wbc_grade": [1], "anc_grade": [0], "alc_grade": [None]})
    >>> after = pd.DataFrame({"patient_key": [1], "flags": [("leukopenia", "worsening")],
    ...     "explanations": [("b", "WBC worsening: grade 1 -> 2")], "wbc_grade": [2], "anc_grade": [0],
    ...     "alc_grade": [None]})
    >>> changes = status_changes(before, after)
    >>> changes[["change", "flag", "analyte", "grade_before", "grade_after"]].values.tolist()
    [['appeared', 'worsening', None, <NA>, <NA>], ['worsened', 'grade', 'wbc', 1, 2]]
    """
    old, new = _flags(before), _flags(after)
    pair = old.merge(new, on=["patient_key", "flag"], how="outer", suffixes=("_old", "_new"), indicator=True)
    appeared = pair[pair["_merge"].eq("right_only").to_numpy()].assign(change="appeared")
    appeared["explanation"] = appeared["explanation_new"]
    # Only patients still present can clear a flag; a patient dropped from ``after`` is not judged.
    cleared = pair[pair["_merge"].eq("left_only").to_numpy() & pair["patient_key"].isin(after["patient_key"])]
    cleared = cleared.assign(change="cleared", explanation="no longer: " + cleared["explanation_old"])
    flags = pd.concat([appeared, cleared], ignore_index=True).assign(analyte=None)
    flags = flags.assign(grade_before=None, grade_after=None)
    grades = _grades(before, after)
    out = pd.concat([flags.reindex(columns=list(CHANGE_COLUMNS)), grades], ignore_index=True)
    out["grade_before"] = out["grade_before"].astype("Int64")
    out["grade_after"] = out["grade_after"].astype("Int64")
    out["explanation"] = out["explanation"].fillna("").astype(str)
    return out.sort_values(["patient_key", "change"], kind="stable").reset_index(drop=True)


def _flags(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[["patient_key", "flags", "explanations"]].explode(["flags", "explanations"])
    rows = rows[rows["flags"].notna().to_numpy()]
    return rows.rename(columns={"flags": "flag", "explanations": "explanation"})


def _grades(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    columns = [f"{a}_grade" for a in GRADED]
    both = after[["patient_key", *columns]].merge(
        before[["patient_key", *columns]], on="patient_key", how="left", suffixes=("", "_old")
    )
    parts = []
    for analyte in GRADED:
        now = both[f"{analyte}_grade"].astype("Float64")
        was = both[f"{analyte}_grade_old"].astype("Float64")
        rose = ((now > was.fillna(0)) & (now >= 1)).fillna(False).to_numpy(dtype=bool)
        # A patient seen for the first time has no earlier grade: say so, not "none -> 2".
        text: pd.Series[str] = (
            _NAMES[analyte] + " CTCAE grade "
            + (was[rose].astype("Int64").astype("string") + " -> ").fillna("")
            + now[rose].astype("Int64").astype("string")
            + np.where(was[rose].isna(), " (first assessment)", "")
        )  # fmt: skip
        parts.append(
            pd.DataFrame(
                {
                    "patient_key": both.loc[rose, "patient_key"].to_numpy(),
                    "change": "worsened",
                    "flag": "grade",
                    "analyte": analyte,
                    "grade_before": was[rose].astype("Int64").to_numpy(),
                    "grade_after": now[rose].astype("Int64").to_numpy(),
                    "explanation": text.to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
