"""The pattern of a panel: which lineages are low together.

A lineage is low when its count is certainly below the lower limit that applies to it (the same rule as
``analysis.flags``). White cells count as low when the WBC or the ANC is low; pancytopenia and bicytopenia are
about the three lineages white cells, haemoglobin and platelets (the usual clinical meaning; no primary
source is cited, docs/clinical-rules.md, Panel patterns); within white cells the differential tells which
is low.
A lineage the panel did not measure is not low: the pattern says what was seen, and its detail names the
lineages that were not measured or had no limit to judge them by.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.flags import below_limit
from monitor.analysis.grading import ctcae_grade

__all__ = ["PATTERNS", "panel_pattern"]

# Most to least extensive; "none" when nothing is low.
PATTERNS: dict[str, str] = {
    "pancytopenia": "white cells, haemoglobin and platelets all low",
    "bicytopenia": "two of white cells, haemoglobin and platelets low",
    "neutropenia_and_lymphopenia": "leukopenia with both neutrophils and lymphocytes low",
    "isolated_neutropenia": "neutrophils low; lymphocytes, haemoglobin and platelets not low where measured",
    "isolated_lymphopenia": "lymphocytes low; neutrophils, haemoglobin and platelets not low where measured",
    "leukopenia": "WBC low without a low neutrophil or lymphocyte count",
    "anaemia": "haemoglobin low only",
    "thrombocytopenia": "platelets low only",
    "none": "no count below its limit",
}
_NAMES = {"wbc": "WBC", "anc": "ANC", "alc": "ALC", "hgb": "Hb", "plt": "platelets"}


def panel_pattern(panel: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the pattern of the rows given (one panel each) and a sentence naming the low counts.

    Parameters
    ----------
    panel : pd.DataFrame
        ``patient_key``, ``analyte``, ``value``, ``lln``, optionally ``comparator``: the latest panel's
        WBC, ANC, ALC, haemoglobin and platelets (other analytes are ignored).

    Returns
    -------
    pd.DataFrame
        Indexed by ``patient_key``: ``pattern`` (a key of ``PATTERNS``) and ``pattern_detail``.

    >>> panel = pd.DataFrame({"patient_key": 1, "analyte": ["wbc", "anc", "alc", "hgb", "plt"],
    ...     "value": [2.1, 0.9, 1.1, 9.8, 210.0], "lln": [4.0, 1.5, 1.0, 12.0, 150.0]})
    >>> panel_pattern(panel).loc[1].tolist()
    ['bicytopenia', 'WBC 2.1 < 4, ANC 0.9 < 1.5, Hb 9.8 < 12 (grade 2)']
    """
    rows = panel[panel["analyte"].isin(list(_NAMES)).to_numpy(dtype=bool)]
    rows = rows.assign(low=below_limit(rows).to_numpy())
    low = rows.pivot_table(index="patient_key", columns="analyte", values="low", aggfunc="any")
    low = low.reindex(columns=list(_NAMES)).astype("boolean").fillna(False).astype(bool)
    white = low["wbc"] | low["anc"]
    lineages = white.astype(int) + low["hgb"].astype(int) + low["plt"].astype(int)
    pattern = np.select(
        [
            lineages == 3,
            lineages == 2,
            low["anc"] & low["alc"],
            low["anc"],
            low["alc"] & ~low["hgb"] & ~low["plt"],
            low["wbc"],
            low["hgb"],
            low["plt"],
        ],
        list(PATTERNS)[:8],
        "none",
    )
    out = pd.DataFrame({"pattern": pattern, "pattern_detail": ""}, index=low.index)
    # Say which lineages the panel did not measure, or measured without a limit to judge them by, so that
    # "not low" is never read as "measured and normal".
    judged = rows.assign(limited=rows["lln"].notna().to_numpy())
    seen = judged.pivot_table(index="patient_key", columns="analyte", values="limited", aggfunc="any")
    seen = seen.reindex(index=low.index, columns=list(_NAMES))
    absent = _listed("not measured: ", seen.isna()).fillna("")
    unjudged = _listed("no limit to judge: ", seen.eq(False).fillna(False)).fillna("")
    between = pd.Series(np.where(absent.ne("") & unjudged.ne(""), "; ", ""), index=low.index)
    not_measured = (absent + between + unjudged).replace("", None)
    shown = rows[rows["low"].to_numpy(dtype=bool)].copy()
    if shown.empty:
        out["pattern_detail"] = not_measured.where(out["pattern"] != "none").fillna("")
        return out
    shown["order"] = shown["analyte"].map(list(_NAMES).index)
    comparator = shown["comparator"].astype("string").fillna("") if "comparator" in shown else ""
    # CTCAE grades of haemoglobin and platelets, which have no column of their own in the status.
    graded = ctcae_grade(shown[["analyte", "value", "lln"]].assign(comparator=shown.get("comparator")))
    grade = (
        (" (grade " + graded.astype("string") + ")")
        .where(shown["analyte"].isin(["hgb", "plt"]) & graded.ge(1).fillna(False), "")
        .fillna("")
    )
    shown["text"] = (
        shown["analyte"].map(_NAMES) + " " + comparator + shown["value"].map("{:g}".format)
        + " < " + shown["lln"].map("{:g}".format) + grade
    )  # fmt: skip
    detail = shown.sort_values(["patient_key", "order"]).groupby("patient_key")["text"].agg(", ".join)
    detail = detail.reindex(out.index)
    out["pattern_detail"] = (detail + ("; " + not_measured).fillna("")).fillna("")
    return out


def _listed(heading: str, which: pd.DataFrame) -> pd.Series:
    """Per patient, ``heading`` and the names of the analytes flagged in ``which`` (NA when none)."""
    flagged = which.astype(bool).rename_axis(columns="analyte").stack()
    flagged = flagged[flagged.to_numpy(dtype=bool)].reset_index()
    names = flagged.groupby("patient_key")["analyte"].agg(lambda codes: ", ".join(codes.map(_NAMES)))
    return (heading + names).reindex(which.index)
