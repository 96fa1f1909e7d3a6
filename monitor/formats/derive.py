"""Absolute differential counts derived from the WBC and a percentage of the same specimen.

ANC = WBC x (segmented % + bands %) / 100, or WBC x neutrophil % / 100; metamyelocytes and younger forms
are not counted (UpToDate, "Drug-induced neutropenia and agranulocytosis"; docs/clinical-basis.md, ANC
derived from a differential). A count is derived only from the same panel, only when the lab did not report
it, and is marked as derived; a reported count always wins (also in the store, see `db.ingest`).
Percentages are never turned into counts without the same-specimen WBC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analytes import COUNT_UNIT

PANEL = ["assigning_authority", "patient_id", "collected_at", "lab", "accession"]
FROM_PERCENT = {
    "neut_pct": "anc",
    "lymph_pct": "alc",
    "mono_pct": "amc",
    "eos_pct": "aec",
    "baso_pct": "abc",
    "bands_pct": "bands",
    "segs_pct": "segs",
}
USABLE = ("final", "corrected", "preliminary")
DECIMALS = 6


def derive_absolute_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Derived absolute counts to add to ``results`` (canonical results of one file); may be empty.

    >>> ts = pd.Timestamp("2026-01-05T08:00Z")
    >>> results = pd.DataFrame({"assigning_authority": "", "patient_id": "P1", "collected_at": ts,
    ...     "lab": "L", "accession": "A1", "analyte": ["wbc", "segs_pct", "bands_pct", "lymph_pct"],
    ...     "value": [3.5, 30.0, 1.0, 50.0], "status": "final", "location": ["l2", "l3", "l4", "l5"]})
    >>> derived = derive_absolute_counts(results).set_index("analyte")
    >>> float(derived.loc["anc", "value"]), derived.loc["anc", "value_raw"]
    (1.085, 'WBC 3.5 x 31% (segmented + bands) / 100')
    """
    # A censored value ("<0.1") is a bound, not a count to multiply.
    censored = results["comparator"].notna() if "comparator" in results else False
    usable = results[results["status"].isin(USABLE) & results["value"].notna() & ~censored]
    analytes = set(usable["analyte"].unique())
    if "wbc" not in analytes or not analytes & set(FROM_PERCENT):
        return results.iloc[0:0].copy()
    # Only panels with a percentage can yield a count.
    with_percent = usable.loc[usable["analyte"].isin(list(FROM_PERCENT)), PANEL].drop_duplicates()
    usable = usable.merge(with_percent, on=PANEL)
    panels = {
        column: usable.pivot_table(index=PANEL, columns="analyte", values=column, aggfunc="first")
        for column in ("value", "status", "location")
    }
    every = sorted({"wbc", *FROM_PERCENT, *FROM_PERCENT.values()})
    wide = {column: frame.reindex(columns=every) for column, frame in panels.items()}
    values = wide["value"]
    parts = [_derive(wide, count, values[percent], percent, "%") for percent, count in FROM_PERCENT.items()]
    # Without a neutrophil %, neutrophils are segmented + bands (UpToDate's ANC formula).
    segs_and_bands = (values["segs_pct"] + values["bands_pct"].fillna(0.0)).where(values["neut_pct"].isna())
    parts.append(_derive(wide, "anc", segs_and_bands, "segs_pct", "% (segmented + bands)"))
    frame = (
        pd.concat([part for part in parts if len(part)], ignore_index=True)
        if any(len(p) for p in parts)
        else None
    )
    if frame is None:
        return results.iloc[0:0].copy()
    return frame.drop_duplicates(PANEL + ["analyte"]).reset_index(drop=True)


def _derive(
    wide: dict[str, pd.DataFrame], count: str, percent: pd.Series, source: str, what: str
) -> pd.DataFrame:
    """``count`` = WBC x ``percent`` / 100 for panels that have both and did not report ``count``."""
    values = wide["value"]
    possible = values["wbc"].notna() & percent.notna() & values[count].isna()
    if not possible.any():
        return pd.DataFrame()
    wbc, pct = values.loc[possible, "wbc"], percent[possible]
    statuses = wide["status"].loc[possible, ["wbc", source]]
    out = pd.DataFrame(
        {
            "analyte": count,
            "value": (wbc * pct / 100.0).round(DECIMALS),
            "value_raw": "WBC " + wbc.map("{:g}".format) + " x " + pct.map("{:g}".format) + what + " / 100",
            "status": np.where((statuses == "preliminary").any(axis=1), "preliminary", "final"),
            "location": wide["location"].loc[possible, source].fillna("") + " (derived)",
        },
        index=wbc.index,
    )
    return out.reset_index().assign(
        loinc=None,
        unit_raw=COUNT_UNIT,
        unit=COUNT_UNIT,
        ref_low=np.nan,
        ref_high=np.nan,
        ref_raw=None,
        abnormal_flag=None,
        derived=True,
        raw_text="",
        reported_at=pd.NaT,  # type: ignore[arg-type]  # pandas-stubs leave NaT out of assign's values
    )
