"""The pattern of a panel: which lineages are low together.

A lineage is low when its count is certainly below the lower limit that applies to it (the same rule as
``analysis.flags``). White cells count as low when the WBC or the ANC is low; pancytopenia and bicytopenia are
about the three lineages white cells, haemoglobin and platelets (the usual clinical meaning; no primary
source is cited, docs/clinical-basis.md, Panel patterns); within white cells the differential tells which
is low.
A lineage the panel did not measure is not low: the pattern says what was seen, and its detail names the
lineages that were not measured or had no limit to judge them by.

Values are printed as the lab printed them: a result reported in another unit than the canonical one
(haemoglobin in mmol/L, a count per uL) is shown with the lab's own text and unit, and its limit in that
unit ("Hb 6.2 mmol/L < 7.45 mmol/L (grade 1)"), never a converted "9.99033". A child's ANC below the
reference interval for age but not below the paediatric neutropenia cut-off (``flag_limit``) is not low,
and the detail says it is below the interval for age (docs/clinical-basis.md, Paediatric neutropenia).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.flags import below_limit
from monitor.analysis.grading import ctcae_grade
from monitor.analytes import ANALYTES
from monitor.formats.units import conversion_factors, printed

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
        ``patient_key``, ``analyte``, ``value``, ``lln``, optionally ``comparator``, ``flag_limit`` (the
        limit a count is low below, ``lln`` when absent), ``value_raw`` and ``unit_raw`` (the value and
        unit as the lab printed them): the latest panel's WBC, ANC, ALC, haemoglobin and platelets (other
        analytes are ignored).

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
    for_age = _below_interval_for_age(rows).reindex(out.index)
    if shown.empty:
        # Nothing low in any panel: the lineages not measured or not judged are named all the same (each
        # patient's detail never depends on which other patients are computed with it).
        out["pattern_detail"] = _joined_parts(for_age, not_measured)
        return out
    shown["order"] = shown["analyte"].map(list(_NAMES).index)
    value, limit = _printed(shown, shown["lln"] if "flag_limit" not in shown else shown["flag_limit"])
    # CTCAE grades of haemoglobin and platelets, which have no column of their own in the status; graded
    # in the unit the lab reported (CTCAE's mmol/L column for haemoglobin in mmol/L).
    graded = ctcae_grade(
        shown[["analyte", "value", "lln"]].assign(
            comparator=shown.get("comparator"), unit_raw=shown.get("unit_raw")
        )
    )
    grade = (
        (" (grade " + graded.astype("string") + ")")
        .where(shown["analyte"].isin(["hgb", "plt"]) & graded.ge(1).fillna(False), "")
        .fillna("")
    )
    shown["text"] = shown["analyte"].map(_NAMES) + " " + value + " < " + limit + grade
    detail = shown.sort_values(["patient_key", "order"]).groupby("patient_key")["text"].agg(", ".join)
    detail = detail.reindex(out.index)
    out["pattern_detail"] = _joined_parts(detail, for_age, not_measured)
    return out


def _joined_parts(*parts: pd.Series) -> pd.Series:
    """Per patient, the parts that are present joined by "; " ("" when none)."""
    frame = pd.concat([part.astype("string") for part in parts], axis=1)
    present = frame.apply(lambda column: ("; " + column).fillna(""))
    joined: pd.Series = present.sum(axis=1).str[2:].astype(object)
    return joined


def _below_interval_for_age(rows: pd.DataFrame) -> pd.Series:
    """Per patient, the counts below their reference interval for age but not below the lower cut-off the
    flags apply (a child's ANC above the paediatric neutropenia cut-off), as a sentence (NA when none)."""
    if "flag_limit" not in rows:
        return pd.Series(dtype="string", index=pd.Index([], name="patient_key"))
    below_interval = below_limit(rows.drop(columns=["flag_limit"]))
    mine = rows[(below_interval & ~rows["low"].astype(bool)).to_numpy(dtype=bool)]
    if mine.empty:
        return pd.Series(dtype="string", index=pd.Index([], name="patient_key"))
    value, interval = _printed(mine, mine["lln"])
    _, cutoff = _printed(mine, mine["flag_limit"])
    # The interval is the age's when it is a default; a lab's printed range is the lab's (often an adult's).
    source = mine["range_source"] if "range_source" in mine else pd.Series("", index=mine.index)
    whose = np.where(
        source.isin(("reported", "lab")).to_numpy(dtype=bool),
        " below the lab's reference range (",
        " below the reference interval for age (",
    )
    text = (
        mine["analyte"].map(_NAMES) + " " + value + whose + interval
        + "), not neutropenia (< " + cutoff + " x10^9/L for age)"
    )  # fmt: skip
    return text.groupby(mine["patient_key"]).agg(", ".join).astype("string")


def _printed(rows: pd.DataFrame, limit: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each row's value and ``limit`` as text, as the lab printed the value.

    A value reported in another unit than the canonical one (``unit_raw`` with a factor other than 1) is
    the lab's own text (``value_raw``) and unit, and the limit is converted to that unit, to one decimal
    more than the lab printed; otherwise the canonical value (with its comparator), as ``units.printed``
    rounds it.
    """
    comparator = rows["comparator"].astype("string").fillna("") if "comparator" in rows else ""
    value = comparator + printed(rows["value"], rows["analyte"])
    shown_limit = printed(limit, rows["analyte"])
    if "unit_raw" not in rows or "value_raw" not in rows:
        return value, shown_limit
    unit = rows["unit_raw"].astype("string").fillna("").str.strip()
    kinds = rows["analyte"].map({code: a.kind for code, a in ANALYTES.items()})
    factor = conversion_factors(unit.astype(object), kinds)
    raw = rows["value_raw"].astype("string").fillna("").str.strip()
    other = (factor.notna() & factor.ne(1.0) & raw.ne("") & unit.ne("")).to_numpy(dtype=bool)
    if not other.any():
        return value, shown_limit
    places = raw.str.extract(r"\.(\d+)", expand=False).str.len().fillna(0).astype(int) + 1
    in_unit = _rounded_text(limit / factor, places)
    value = value.where(~other, raw + " " + unit)
    shown_limit = shown_limit.where(~other, in_unit + " " + unit)
    return value, shown_limit


def _rounded_text(values: pd.Series, decimals: pd.Series) -> pd.Series:
    """``values`` rounded to ``decimals`` places each, printed without trailing zeros ("12", "0.05")."""
    scale = 10.0 ** decimals.to_numpy(dtype="float64")
    rounded = np.round(values.to_numpy(dtype="float64") * scale) / scale
    return pd.Series(rounded, index=values.index, dtype="float64").map("{:g}".format, na_action="ignore")


def _listed(heading: str, which: pd.DataFrame) -> pd.Series:
    """Per patient, ``heading`` and the names of the analytes flagged in ``which`` (NA when none)."""
    flagged = which.astype(bool).rename_axis(columns="analyte").stack()
    flagged = flagged[flagged.to_numpy(dtype=bool)].reset_index()
    names = flagged.groupby("patient_key")["analyte"].agg(lambda codes: ", ".join(codes.map(_NAMES)))
    return (heading + names).reindex(which.index)
