"""Triage of the worklist: which patients need attention first, and the filters and counts over the list.

Priority: CTCAE grade 3 or worse first, then new or worsening, then persistent, then any other flag, then
the rest; within a tier the higher grade, then the most recent CBC first. Pure functions of the patient
list (one row per patient with ``latest_{wbc,anc,alc}_grade``, ``flags`` as lists, ``acknowledged``,
``days_since_cbc``, ``teams``, ``patient_id``, ``name`` and ``last_collected_at``).
"""

from __future__ import annotations

import pandas as pd

from monitor.analysis.changes import GRADED

__all__ = ["TIERS", "filtered", "headline", "max_grade", "prioritised", "priority"]

TIERS = {
    1: "grade 3 or worse",
    2: "new or worsening",
    3: "persistent",
    4: "other flags",
    5: "no flag",
}


def max_grade(patients: pd.DataFrame) -> pd.Series:
    """The highest current CTCAE grade of WBC, ANC and ALC (NA when none is graded).

    >>> patients = pd.DataFrame({"latest_wbc_grade": [1, None], "latest_anc_grade": [3, None],
    ...     "latest_alc_grade": [None, None]})
    >>> max_grade(patients).tolist()
    [3, <NA>]
    """
    grades = patients[[f"latest_{a}_grade" for a in GRADED]].astype("Float64")
    return grades.max(axis=1).astype("Int64")


def _has(patients: pd.DataFrame, flag: str) -> pd.Series:
    """Whether each patient's flags include ``flag`` (booleans even for an empty list, whose map would
    otherwise keep the flags column's text dtype)."""
    return patients["flags"].map(lambda listed: flag in listed).astype(bool)


def priority(patients: pd.DataFrame) -> pd.Series:
    """The tier of each patient (1 = first), a key of ``TIERS``.

    >>> patients = pd.DataFrame({"latest_wbc_grade": [1, 1, 3], "latest_anc_grade": [None] * 3,
    ...     "latest_alc_grade": [None] * 3, "flags": [["leukopenia"], ["persistent"], []]})
    >>> priority(patients).tolist()
    [4, 3, 1]
    """
    flags = patients["flags"]
    has = {name: _has(patients, name) for name in ("new_onset", "worsening", "persistent")}
    grade = max_grade(patients).fillna(0)
    tier = pd.Series(5, index=patients.index, dtype="int64")
    tier = tier.mask(flags.map(len).astype("int64") > 0, 4)
    tier = tier.mask(has["persistent"], 3)
    tier = tier.mask(has["new_onset"] | has["worsening"], 2)
    return tier.mask(grade >= 3, 1)


def prioritised(patients: pd.DataFrame) -> pd.DataFrame:
    """The list with ``tier`` and ``grade`` columns, in worklist order (a new frame)."""
    out = patients.assign(tier=priority(patients), grade=max_grade(patients))
    return out.sort_values(
        ["tier", "grade", "last_collected_at"],
        ascending=[True, False, False],
        na_position="last",
        kind="stable",
    )


def filtered(
    patients: pd.DataFrame,
    *,
    team: str | None = None,
    flags: list[str] | None = None,
    min_grade: int = 0,
    text: str = "",
    unacknowledged_only: bool = False,
) -> pd.DataFrame:
    """The rows matching every filter given (flags: any of them)."""
    keep = pd.Series(True, index=patients.index)
    if team:
        keep &= patients["teams"].fillna("").map(lambda teams: team in teams.split(", "))
    if flags:
        wanted = set(flags)
        keep &= patients["flags"].map(lambda listed: bool(wanted & set(listed)))
    if min_grade > 0:
        keep &= max_grade(patients).fillna(0) >= min_grade
    needle = text.strip().lower()
    if needle:
        keep &= patients["patient_id"].str.lower().str.contains(needle, regex=False) | patients[
            "name"
        ].fillna("").str.lower().str.contains(needle, regex=False)
    if unacknowledged_only:
        keep &= patients["acknowledged"].eq(False).fillna(False)
    return patients[keep.to_numpy(dtype=bool)]


def headline(patients: pd.DataFrame) -> dict[str, int]:
    """The counts above the worklist, of a ``prioritised`` list (its ``tier`` is not computed again)."""
    return {
        "Patients": len(patients),
        "Grade 3 or worse": int((patients["tier"] == 1).sum()),
        "New or worsening": int((_has(patients, "new_onset") | _has(patients, "worsening")).sum()),
        "Persistent": int(_has(patients, "persistent").sum()),
        "Not acknowledged": int(patients["acknowledged"].eq(False).fillna(False).sum()),
        "No CBC for 30 days": int((patients["days_since_cbc"] >= 30).fillna(False).sum()),
    }
