"""The fevers of each cycle and whether it had febrile neutropenia, by the rule the patient's flag uses
(``analysis.febrile``: IDSA 2010 and CTCAE v5.0, an episode whose start falls in the cycle)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import in_cycles
from monitor.analysis.cycles.display import cycle_notation
from monitor.analysis.febrile import (
    DEFAULT_FEBRILE_RULES,
    FebrileRules,
    febrile_episodes,
    fever_pairs,
)


def cycle_fevers(
    events: pd.DataFrame,
    cycles: pd.DataFrame,
    results: pd.DataFrame,
    keys: list[str],
    timezone: str,
    rules: FebrileRules = DEFAULT_FEBRILE_RULES,
) -> pd.DataFrame:
    """Per cycle with a fever (a temperature >= 38.0 °C, or a fever event where none was measured): its
    hottest fever with the ANC in force, and ``febrile_neutropenia``: True when an episode of febrile
    neutropenia started in the cycle, NA when none did but a fever could not be judged (a free-text fever
    without a temperature, or no ANC in force), False otherwise.

    ``results``: the patients' ANCs and temperatures (``analyte`` ``anc`` and ``temp``), all of them: the
    ANC in force for a fever early in a cycle may be drawn before it.
    """
    empty = pd.DataFrame(
        columns=["fever", "febrile_neutropenia"], index=pd.MultiIndex.from_tuples([], names=keys)
    )
    pairs = fever_pairs(results, events, rules=rules)
    if pairs.empty:
        return empty
    placed = in_cycles(
        pairs.rename(columns={"at": "collected_at"}).assign(value=pairs["celsius"]), cycles, timezone
    ).rename(columns={"collected_at": "at"})
    if placed.empty:
        return empty
    by = [placed[k] for k in keys]
    hottest = placed.sort_values(["celsius", "at"], ascending=[False, True], na_position="last")
    hottest = hottest.groupby(keys).head(1).set_index(keys)
    readings = placed.groupby(by).size().reindex(hottest.index)
    celsius = hottest["celsius"].map(lambda c: "" if pd.isna(c) else f" {c:.1f} °C")
    anc = hottest["anc_comparator"].astype("string").fillna("") + hottest["anc"].map(
        lambda v: "" if pd.isna(v) else f"{v:g}"
    )
    described = (
        "fever"
        + celsius
        + " on "
        + hottest["day"].map(cycle_notation)
        + np.where(hottest["free_text"].astype(bool), " (free text)", "")
        + np.where(readings > 1, " (" + readings.astype(str) + " fevers)", "")
        + np.where(hottest["anc"].isna(), " (no ANC from 24 h before to 12 h after)", " with ANC " + anc)
    )
    episodes = febrile_episodes(results, events, rules=rules, timezone=timezone)
    started = in_cycles(
        episodes[["patient_key", "start", "sentence"]]
        .rename(columns={"start": "collected_at"})
        .assign(value=0.0),
        cycles,
        timezone,
    ).set_index(keys)
    started = started[~started.index.duplicated()]
    fn = pd.Series(False, index=hottest.index, dtype="boolean")
    fn = fn.mask(placed["unknown"].groupby(by).any().reindex(hottest.index).fillna(False), pd.NA)
    fn = fn.reindex(hottest.index.union(started.index))
    fn.loc[started.index] = True
    described = described.reindex(fn.index).fillna("fever")
    said = ("; febrile neutropenia: " + started["sentence"]).reindex(fn.index).fillna("")
    return pd.DataFrame({"fever": described + said, "febrile_neutropenia": fn.astype("boolean")})
