"""The cycles for people: the D# day notation and one narrow line per cycle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.grading import COMPARE_DECIMALS


def cycle_notation(day: int | float | None) -> str:
    """``day`` since the cycle start in the D# notation, where D1 is the start day.

    >>> cycle_notation(0), cycle_notation(7), cycle_notation(None)
    ('D1', 'D8', '')
    """
    return "" if day is None or pd.isna(day) else f"D{int(day) + 1}"


def count_text(value: float) -> str:
    """A count as written in a sentence: "?" when missing."""
    return "?" if pd.isna(value) else f"{value:g}"


def cycle_table(
    frame: pd.DataFrame,
    *,
    timezone: str = "UTC",
    rules: CycleRules = DEFAULT_CYCLE_RULES,
) -> pd.DataFrame:
    """The cycles for people (terminal and dashboard): one narrow line each, days in the D# notation.

    Days are in the D# notation (D1 = the start day); a nadir from counts outside the site's nadir window
    (``rules.nadir_window_days``, days 7-14 by default: D8-D15) is marked, and a cycle without an ANC after
    the dose says its nadir was not sampled. Days at grade 3+ and days with ANC < 0.5 are "min-max" calendar
    days as sampled, counted inclusively ("7-12": D8 to D14 for certain, D6 to D17 at most; "7" when both
    agree; "7-?" while the last count is still there; "unknown" without an ANC after the dose). Recovery is
    its days, or "not recovered before the next dose"
    when the nadir was below ``rules.recovery_anc`` and no later count of the cycle reached it ("not
    recovered by the last count" in a cycle no dose has followed yet), or "not seen below" it. Start
    dates are calendar dates in ``timezone`` (the site's).
    """

    def number(prefix: str) -> pd.Series:
        values = frame[prefix].map(lambda v: "" if pd.isna(v) else f"{v:g}")
        return frame[f"{prefix}_comparator"].fillna("") + values

    def days(column: str) -> pd.Series:
        return frame[column].map(cycle_notation)

    def span(low: pd.Series, high: pd.Series) -> pd.Series:
        # "7-12": seen there for 7 days, possibly 12; "7-?" while the last count is still there; unknown
        # (not 0) when no ANC was drawn after the dose.
        text = low.astype("string") + "-" + high.astype("string").fillna("?")
        return text.where((low != high).fillna(True), low.astype("string")).fillna("unknown")

    windows = regimen_nadir_days(frame["regimen"], rules)
    window = (
        windows["window_first"].map(cycle_notation).astype("string")
        + "-"
        + windows["window_last"].map(cycle_notation).astype("string")
    )
    nadir = number("nadir_anc") + np.where(frame["nadir_sampled"], "", " (not sampled " + window + ")")
    recovery_anc = rules.recovery_anc
    below = frame["nadir_anc"].astype("float64").round(COMPARE_DECIMALS) < recovery_anc
    recovered = np.where(
        frame["recovery_day"].notna(),
        days("recovery_after_day").str.replace("D", "after D") + ", by " + days("recovery_day"),
        np.select(
            [
                below & frame["next_start"].notna(),
                below & frame["next_start"].isna(),
                frame["nadir_anc"].notna() & ~below,
            ],
            [
                "not recovered before the next dose",
                "not recovered by the last count",
                f"not seen below {recovery_anc:g}",
            ],
            "",
        ),
    )
    ready = frame["ready_at_next"].map({True: "yes", False: "NO"}, na_action="ignore").fillna("unknown")
    return pd.DataFrame(
        {
            "cycle": frame["cycle"],
            # (as times even when there are no cycles: an empty column arrives untyped)
            "start": pd.to_datetime(frame["start"], utc=True).dt.tz_convert(timezone).dt.strftime("%Y-%m-%d"),
            # The cycle's doses by day ("D1, D8" when the regimen gives doses inside the cycle).
            "doses": frame["doses"].fillna("D1") if "doses" in frame else "D1",
            "nadir ANC": nadir.where(frame["nadir_anc"].notna(), "not sampled"),
            "on": days("nadir_day"),
            "grade": frame["nadir_anc_grade"],
            "nadir WBC": number("nadir_wbc"),
            "days G3+": span(frame["days_grade3_plus_min"], frame["days_grade3_plus_max"]),
            # The duration the paclitaxel and docetaxel labels act on (docs/clinical-basis.md, Severe
            # neutropenia duration).
            "days ANC<0.5": span(frame["days_anc_below_0_5_min"], frame["days_anc_below_0_5_max"]),
            "recovered": recovered,
            "FN": frame["febrile_neutropenia"]
            .map({True: "YES", False: "no"}, na_action="ignore")
            .fillna("?")
            .where(frame["fever"].ne(""), "-"),
            "G-CSF": frame["gcsf"].map({True: "yes", False: "no"}),
            # G-CSF days, cycle delays and decision support (``support.with_support``; docs/clinical-basis.md,
            # G-CSF prophylaxis, Dose modification and Cycle delays).
            "G-CSF on": _column(frame, "gcsf_days"),
            "delay days": _column(frame, "delay_days").map(lambda d: "" if d == "" else f"{int(d)}"),
            "delay": _column(frame, "delay"),
            "support": _column(frame, "support"),
            # The last cycle's length is not known until the next one starts: left blank.
            "length": frame["length_days"]
            .astype("Float64")
            .round()
            .astype("Int64")
            .astype("string")
            .fillna(""),
            "ready at next": ready.where(frame["next_start"].notna(), "no next cycle"),
        }
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]`` as text ("" where missing), or "" on every row for a frame made without it."""
    if name in frame:
        return frame[name].astype(object).where(frame[name].notna(), "")
    return pd.Series("", index=frame.index, dtype=object)


def regimen_nadir_days(regimens: pd.Series, rules: CycleRules) -> pd.DataFrame:
    """``window_first`` and ``window_last`` (days after the dose) of each cycle's nadir window, indexed as
    ``regimens`` (each cycle's regimen text): the regimen's own window when the site set one, else
    ``rules.nadir_window_days`` (``CycleRules.nadir_window``; one look-up per distinct regimen)."""
    texts = regimens.astype("string").fillna("")
    known = {text: rules.nadir_window(text or None) for text in texts.unique()}
    return pd.DataFrame(
        {
            "window_first": texts.map({text: days[0] for text, days in known.items()}).astype("int64"),
            "window_last": texts.map({text: days[1] for text, days in known.items()}).astype("int64"),
        },
        index=regimens.index,
    )
