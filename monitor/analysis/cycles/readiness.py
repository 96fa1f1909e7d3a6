"""Readiness for the next cycle: the last ANC and platelets before a start, against the regimen's rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import before_the_dose, calendar_days, cycles_from_events, usable_results
from monitor.analysis.cycles.display import count_text
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.grading import COMPARE_DECIMALS


def readiness_now(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """For patients in a chemotherapy cycle at ``as_of``: the cycle, its day and readiness if given now.

    Readiness is judged as at a next start at ``as_of`` under the same regimen: the last ANC and platelets
    of the ``readiness_window_days`` calendar days before it and of its own day (``treatment_cycles``).
    Returns columns ``patient_key``, ``cycle``, ``cycle_start``, ``cycle_day``, ``ready_now`` (True, False
    or NA) and ``readiness``.

    >>> start = pd.Timestamp("2026-03-02", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["chemotherapy"], "start_at": [start]})
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "plt"], "value": [1.2, 150.0],
    ...     "collected_at": start + pd.Timedelta(days=19)})
    >>> now = readiness_now(results, events, as_of=start + pd.Timedelta(days=20))
    >>> now[["cycle", "cycle_day", "ready_now"]].to_dict("records")
    [{'cycle': 1, 'cycle_day': 20, 'ready_now': False}]
    """
    columns = ["patient_key", "cycle", "cycle_start", "cycle_day", "ready_now", "readiness"]
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    cycles = cycles_from_events(events, rules, timezone)
    current = cycles[((cycles["day_start"] <= as_of) & (cycles["end"] > as_of)).to_numpy(dtype=bool)].copy()
    if current.empty:
        return pd.DataFrame(columns=columns)
    current["next_start"] = as_of
    current["next_regimen"] = current["regimen"]
    work = usable_results(results)
    judged = judge_readiness(
        work[(work["collected_at"] <= as_of).to_numpy(dtype=bool)], current, rules, timezone
    )
    judged = judged.reset_index()
    out = current[["patient_key", "cycle", "start"]].merge(judged, on=["patient_key", "cycle"])
    as_of_column = pd.Series(as_of, index=out.index).dt.as_unit("us")
    out["cycle_day"] = calendar_days(out["start"], as_of_column, timezone).astype("int64")
    window = f"in the {rules.readiness_window_days} days before the next start"
    last_days = f"in the last {rules.readiness_window_days} days (a pre-cycle CBC is needed)"
    out["readiness"] = out["readiness"].str.replace(window, last_days, regex=False)
    return out.rename(columns={"ready_at_next": "ready_now", "start": "cycle_start"})[columns]


def judge_readiness(
    work: pd.DataFrame, cycles: pd.DataFrame, rules: CycleRules, timezone: str
) -> pd.DataFrame:
    """Per cycle with a next start: the last ANC and platelets in the window before it, and the verdict.

    The window is calendar days in ``timezone``: the ``readiness_window_days`` days before the next
    start's day, and that day itself (the pre-treatment counts drawn on the morning of a dosing day).
    """
    keys = ["patient_key", "cycle"]
    index = pd.MultiIndex.from_frame(cycles[keys])
    out = pd.DataFrame(index=index, columns=["ready_anc", "ready_plt", "ready_at_next", "readiness"])
    nexts = cycles[cycles["next_start"].notna()]
    if nexts.empty:
        out["readiness"] = "no next cycle"
        return out.astype({"ready_anc": "float64", "ready_plt": "float64", "ready_at_next": "boolean"})
    counts = work[work["analyte"].isin(["anc", "plt"]).to_numpy()][
        ["patient_key", "analyte", "collected_at", "value", "comparator"]
    ]
    near = counts.merge(nexts[[*keys, "next_start"]], on="patient_key")
    days_before = calendar_days(near["collected_at"], near["next_start"], timezone)
    # Only counts drawn before the dose judge it: a count drawn after it that day says nothing of readiness.
    in_window = days_before.between(0, rules.readiness_window_days)
    pre_dose = before_the_dose(near["collected_at"], near["next_start"], timezone)
    near = near[(in_window & pre_dose).to_numpy(dtype=bool)]
    last = near.sort_values("collected_at", kind="stable").groupby([*keys, "analyte"]).tail(1)
    wide = last.pivot_table(index=keys, columns="analyte", values="value", aggfunc="first")
    comparators = last.set_index([*keys, "analyte"])["comparator"].unstack("analyte")
    rule_of = dict(rules.regimens)
    regimen = nexts.set_index(keys)["next_regimen"].fillna("").str.strip().str.lower()
    anc_min = regimen.map(lambda r: rule_of.get(r, rules.readiness).anc_min)
    plt_min = regimen.map(lambda r: rule_of.get(r, rules.readiness).plt_min)
    inclusive = regimen.map(lambda r: rule_of.get(r, rules.readiness).inclusive).astype(bool)
    describe = regimen.map(lambda r: rule_of.get(r, rules.readiness).describe())
    anc = wide["anc"].reindex(regimen.index) if "anc" in wide else pd.Series(np.nan, index=regimen.index)
    plt = wide["plt"].reindex(regimen.index) if "plt" in wide else pd.Series(np.nan, index=regimen.index)
    anc_cmp = _comparator(comparators, "anc", regimen.index)
    plt_cmp = _comparator(comparators, "plt", regimen.index)
    anc_ok = _meets(anc, anc_cmp, anc_min, inclusive)
    plt_ok = _meets(plt, plt_cmp, plt_min, inclusive)
    ready = pd.Series(pd.NA, index=regimen.index, dtype="boolean")
    ready[(anc_ok.eq(False) | plt_ok.eq(False)).fillna(False)] = False
    ready[(anc_ok.eq(True) & plt_ok.eq(True)).fillna(False)] = True
    days = f"{rules.readiness_window_days} days"
    seen = (
        "ANC "
        + anc_cmp.fillna("")
        + anc.map(count_text)
        + ", platelets "
        + plt_cmp.fillna("")
        + plt.map(count_text)
    )
    reason = pd.Series(
        np.where(
            ready.isna(),
            "unknown: no "
            + np.where(anc.isna(), "ANC", "")
            + np.where(anc.isna() & plt.isna(), " or ", "")
            + np.where(plt.isna(), "platelets", "")
            + f" in the {days} before the next start",
            np.where(ready.fillna(False), "ready: ", "not ready: ") + seen + " against " + describe,
        ),
        index=regimen.index,
        dtype=str,
    )
    reason = reason.where(~(ready.isna() & anc.notna() & plt.notna()), "unknown: censored count " + seen)
    out.loc[regimen.index, "ready_anc"] = anc
    out.loc[regimen.index, "ready_plt"] = plt
    out.loc[regimen.index, "ready_at_next"] = ready
    out.loc[regimen.index, "readiness"] = reason
    out["ready_at_next"] = out["ready_at_next"].astype("boolean")
    out["readiness"] = out["readiness"].fillna("no next cycle").astype(str)
    return out.astype({"ready_anc": "float64", "ready_plt": "float64"})


def _comparator(comparators: pd.DataFrame, analyte: str, index: pd.Index) -> pd.Series:
    if analyte not in comparators:
        return pd.Series(pd.NA, index=index, dtype="string")
    return comparators[analyte].reindex(index).astype("string")


def _meets(value: pd.Series, comparator: pd.Series, minimum: pd.Series, inclusive: pd.Series) -> pd.Series:
    """Whether a count certainly meets its minimum: True, False, or NA (missing, or censored both ways)."""
    v, m = value.round(COMPARE_DECIMALS), minimum.astype("float64").round(COMPARE_DECIMALS)
    meets = pd.Series(np.where(inclusive, v >= m, v > m), index=value.index).astype("boolean")
    below_bound = comparator.isin(["<", "<="]).fillna(False)
    above_bound = comparator.isin([">", ">="]).fillna(False)
    # "<B": certainly short when B <= minimum; unknown otherwise. ">B": certainly enough when B >= minimum.
    meets = meets.mask(below_bound & meets.fillna(False), pd.NA)
    meets = meets.mask(above_bound & ~meets.fillna(True), pd.NA)
    return meets.mask(value.isna(), pd.NA)
