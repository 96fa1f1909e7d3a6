"""Recorded fevers of each cycle, with the ANC nearest them: febrile neutropenia (CTCAE v5.0)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import in_cycles, with_utc_starts
from monitor.analysis.cycles.display import count_text, cycle_notation
from monitor.analysis.grading import COMPARE_DECIMALS
from monitor.timestamps import DAY

# A temperature written in an event's label or details, e.g. "Fever 38.6 C (oral)" or "38.4°C".
_TEMPERATURE = r"(?P<celsius>\d{2}(?:[.,]\d)?)\s*°?\s*C\b"


def cycle_fevers(
    events: pd.DataFrame, cycles: pd.DataFrame, anc: pd.DataFrame, keys: list[str], timezone: str
) -> pd.DataFrame:
    """Per cycle with a recorded fever: a description and whether it is febrile neutropenia (CTCAE v5.0)."""
    empty = pd.DataFrame(
        columns=["fever", "febrile_neutropenia"], index=pd.MultiIndex.from_tuples([], names=keys)
    )
    events = with_utc_starts(events)
    fevers = events[events["kind"].eq("fever").to_numpy(dtype=bool)]
    if fevers.empty:
        return empty
    text = (
        fevers.get("label", pd.Series("", index=fevers.index)).fillna("").astype(str)
        + " "
        + fevers.get("details", pd.Series("", index=fevers.index)).fillna("").astype(str)
    )
    celsius = text.str.extract(_TEMPERATURE)["celsius"].str.replace(",", ".").astype("float64")
    fevers = fevers.assign(celsius=celsius.to_numpy())[["patient_key", "start_at", "celsius"]]
    as_results = fevers.rename(columns={"start_at": "collected_at"}).assign(value=0.0)
    placed = in_cycles(as_results, cycles, timezone).rename(columns={"collected_at": "at"})
    if placed.empty:
        return empty
    counts = anc[["patient_key", "collected_at", "value", "comparator"]].sort_values("collected_at")
    near = pd.merge_asof(
        placed.drop(columns="value").sort_values("at"),
        counts.rename(columns={"collected_at": "anc_at", "value": "anc"}),
        left_on="at",
        right_on="anc_at",
        by="patient_key",
        direction="nearest",
        tolerance=DAY,
    )
    anc_low = near["anc"].round(COMPARE_DECIMALS) < 1.0
    anc_low &= ~near["comparator"].isin([">", ">="]).fillna(False)
    hot = near["celsius"] > 38.3
    unsure = near["celsius"].isna() | near["celsius"].between(38.0, 38.3) | near["anc"].isna()
    fn = pd.Series(np.where(hot & anc_low, True, False), index=near.index).astype("boolean")
    fn = fn.mask(unsure & ~(hot & anc_low) & ~(near["anc"] >= 1.0), pd.NA)
    described = (
        near["celsius"].map(lambda c: "fever" if pd.isna(c) else f"fever {c:g} C")
        + " on "
        + near["day"].map(cycle_notation)
        + np.where(near["anc"].isna(), " (no ANC within a day)", " with ANC " + near["anc"].map(count_text))
    )
    by = [near[k] for k in keys]
    # A cycle is febrile neutropenia when one of its fevers is; unknown when none is and one is unknown.
    certain = fn.eq(True).fillna(False).groupby(by).any()
    unknown = fn.isna().groupby(by).any()
    return pd.DataFrame(
        {
            "fever": described.groupby(by).agg("; ".join),
            "febrile_neutropenia": certain.astype("boolean").mask(~certain & unknown, pd.NA),
        }
    )
