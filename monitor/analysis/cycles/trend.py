"""Across cycles: whether the nadir ANC deepens and recovery slows, said in words."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.cycles.display import cycle_notation
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.grading import rcv_bounds


def cycle_trend(cycles: pd.DataFrame, *, rules: CycleRules = DEFAULT_CYCLE_RULES) -> pd.DataFrame:
    """Per patient, whether the nadir ANC deepens and recovery slows across cycles, said in words.

    Returns columns ``patient_key``, ``deepening_nadir``, ``slower_recovery`` (booleans) and ``trend``
    (a sentence, "" when there is nothing to say).

    Recovery is compared by its bounds: slower only when the last cycle's recovery came after its earliest
    possible day by ``recovery_delay_days`` or more than the first cycle's latest possible day. Days are
    written in the D# notation (D1 = the start day).

    >>> cycles = pd.DataFrame({"patient_key": 1, "cycle": [1, 2, 3], "nadir_anc": [1.2, 0.8, 0.4],
    ...     "nadir_sampled": True, "recovery_after_day": [10, 13, 17], "recovery_day": [14, 16, 19]})
    >>> print(cycle_trend(cycles).loc[0, "trend"])
    Nadir ANC deepening over 3 cycles (1.2 -> 0.4). Recovery slower (by D15 in cycle 1; after D18 in cycle 3).
    """
    columns = ["patient_key", "deepening_nadir", "slower_recovery", "trend"]
    if cycles.empty:
        return pd.DataFrame(columns=columns)
    anc_rcv = {i.analyte: i for i in rules.grading.rcv_inputs}.get("anc")
    fall_limit = (
        rcv_bounds(anc_rcv.cv_analytical, anc_rcv.cv_within, z=rules.grading.rcv_z)[0] if anc_rcv else 0.0
    )
    ordered = cycles.sort_values(["patient_key", "cycle"])
    sampled = ordered["nadir_sampled"] if "nadir_sampled" in ordered else True
    nadirs = ordered[ordered["nadir_anc"].notna() & sampled]
    stats = nadirs.groupby("patient_key").agg(
        n=("nadir_anc", "size"),
        first=("nadir_anc", "first"),
        last=("nadir_anc", "last"),
        median_step=("nadir_anc", lambda s: s.diff().median()),
    )
    deepening = (stats["n"] >= rules.trend_min_cycles) & (stats["last"] / stats["first"] - 1 <= fall_limit)
    deepening &= stats["median_step"] < 0
    seen = ordered[ordered["recovery_day"].notna()]
    first_seen, last_seen = seen.groupby("patient_key").head(1), seen.groupby("patient_key").tail(1)
    recovery = pd.DataFrame(
        {
            "first_day": first_seen.set_index("patient_key")["recovery_day"],
            "first_cycle": first_seen.set_index("patient_key")["cycle"],
            "last_after": last_seen.set_index("patient_key")[
                "recovery_after_day" if "recovery_after_day" in last_seen else "recovery_day"
            ],
            "last_cycle": last_seen.set_index("patient_key")["cycle"],
        }
    ).reindex(pd.Index(ordered["patient_key"].unique(), name="patient_key"))
    recovery = recovery.astype({"first_day": "float64", "last_after": "float64"})
    several = recovery["last_cycle"] > recovery["first_cycle"]
    # The earliest the last recovery can have been is the day after the count before it.
    later = (recovery["last_after"] + 1) - recovery["first_day"] >= rules.recovery_delay_days
    slower = (several & later).fillna(False)
    out = pd.DataFrame(index=recovery.index.rename("patient_key"))
    out["deepening_nadir"] = deepening.reindex(out.index).fillna(False).astype(bool)
    out["slower_recovery"] = slower.astype(bool)
    deep_text = (
        "Nadir ANC deepening over "
        + stats["n"].astype(str)
        + " cycles ("
        + stats["first"].map("{:g}".format).astype("string")
        + " -> "
        + stats["last"].map("{:g}".format).astype("string")
        + ")."
    ).reindex(out.index)

    def day(values: pd.Series) -> pd.Series:
        return values.map(cycle_notation).astype("string")

    def cycle(values: pd.Series) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else f"{int(v)}").astype("string")

    slow_text = (
        "Recovery slower (by " + day(recovery["first_day"]) + " in cycle " + cycle(recovery["first_cycle"])
        + "; after " + day(recovery["last_after"]) + " in cycle " + cycle(recovery["last_cycle"]) + ")."
    )  # fmt: skip
    parts = pd.DataFrame(
        {
            "deep": deep_text.where(out["deepening_nadir"], ""),
            "slow": slow_text.where(out["slower_recovery"], ""),
        }
    )
    out["trend"] = (parts["deep"] + " " + parts["slow"]).str.strip()
    return out.reset_index()[columns]
