"""One row per chemotherapy cycle: nadir, time at grade 3 or worse, recovery, G-CSF, fever, readiness."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import (
    calendar_days,
    cycles_from_events,
    in_cycles,
    on_next_dosing_day,
    usable_results,
)
from monitor.analysis.cycles.display import regimen_nadir_days
from monitor.analysis.cycles.fever import cycle_fevers
from monitor.analysis.cycles.readiness import judge_readiness
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.cycles.support import SUPPORT_COLUMNS, gcsf_events, with_support
from monitor.analysis.febrile import DEFAULT_FEBRILE_RULES, FebrileRules
from monitor.analysis.grading import COMPARE_DECIMALS, ctcae_grade

# The ANC below which the paclitaxel and docetaxel labels count the days of severe neutropenia ("<500
# cells/mm3 for seven days or more"; docs/clinical-basis.md, Severe neutropenia duration).
SEVERE_ANC = 0.5

CYCLE_COLUMNS = (
    "patient_key",
    "cycle",
    "start",
    "end",
    "label",
    "regimen",
    "doses",
    "nadir_anc",
    "nadir_anc_comparator",
    "nadir_day",
    "nadir_anc_grade",
    "nadir_wbc",
    "nadir_wbc_comparator",
    "nadir_wbc_day",
    "nadir_wbc_grade",
    "days_grade3_plus_min",
    "days_grade3_plus_max",
    "days_anc_below_0_5_min",
    "days_anc_below_0_5_max",
    "recovery_day",
    "recovery_after_day",
    "anc_results",
    "nadir_sampled",
    "gcsf",
    "fever",
    "febrile_neutropenia",
    "length_days",
    "next_start",
    "ready_anc",
    "ready_plt",
    "ready_at_next",
    "readiness",
    *SUPPORT_COLUMNS,
)


def treatment_cycles(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
    febrile: FebrileRules = DEFAULT_FEBRILE_RULES,
    birth_dates: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per chemotherapy cycle of every patient: nadir, recovery, G-CSF, readiness at the next start.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key``, ``collected_at`` (tz-aware), ``analyte``, ``value``; optionally ``lln``,
        ``comparator`` and ``status`` (withdrawn results are ignored). Temperatures (``temp``, °C) are
        read for febrile neutropenia only.
    events : pd.DataFrame
        ``patient_key``, ``kind``, ``start_at`` (tz-aware); optionally ``label`` and ``details`` (the
        regimen, for per-regimen readiness rules).
    rules : CycleRules
        Site rules.
    timezone : str
        The site's time zone: days are calendar days there (a count drawn at 08:00 a week after a
        chemotherapy given at noon is on day 7, D8; a day when the clocks change is still one day).
    febrile : FebrileRules
        Site settings of febrile neutropenia (``analysis.febrile``).
    birth_dates : pd.DataFrame, optional
        ``patient_key`` and ``birth_date``: age at the dose as a risk factor for febrile neutropenia.
    as_of : pd.Timestamp, optional
        The time the table is for: a G-CSF window not yet passed then is worded as a reminder
        (``support.with_support``); None judges every window as passed.

    Returns
    -------
    pd.DataFrame
        Columns ``CYCLE_COLUMNS``, sorted by patient and cycle (1-based). Days are calendar days since the
        start's day (day 0). Counts drawn on the next start's day (the pre-treatment count drawn before the
        dose) are the cycle's last day as well as the next cycle's day 0 (docs/clinical-basis.md, Cycle
        days). The nadir is the lowest count after the dose, from day 1 to the day before the next start's
        (never a pre-treatment count; NA when none was drawn then; docs/clinical-basis.md, Nadir timing);
        ``nadir_sampled`` says whether an ANC of those days fell in ``nadir_window_days`` and
        ``anc_results`` counts the cycle's ANCs, its last day's included. Counts are samples, so durations are
        bounds in calendar days (the cycle days), counted inclusively as clinicians count them:
        ``days_grade3_plus_min`` is the days confirmed at CTCAE grade 3 or worse (from the day of the first
        to the day of the last of each run of such ANCs, both counted: D8 and D14 are 7 days; 1 for a single
        one) and ``days_grade3_plus_max`` the days strictly between the counts seen better on either side
        (D7 and D15: 7 days; the dose's day stands in when none came before, the next dose's day when none
        came after; NA when the last ANC of a cycle no dose has followed yet is still there); both 0 when
        no ANC after the dose reached grade 3, NA when there was none. ``days_anc_below_0_5_min`` and
        ``_max`` are the same bounds for ANC < 0.5 x10^9/L, the duration the paclitaxel and docetaxel
        labels act on (7 days or more; docs/clinical-basis.md, Severe neutropenia duration).
        ``recovery_day`` is the first ANC at or above ``recovery_anc`` after a nadir below it (NA when the
        nadir was not below it, or no recovery was seen) and ``recovery_after_day`` the day of the count
        before it: recovery happened in between. ``fever`` describes the cycle's hottest fever with the ANC in
        force (``fever.cycle_fevers``); ``febrile_neutropenia`` is True when an episode of febrile
        neutropenia (IDSA 2010 or CTCAE v5.0, the rule of the patient's flag: ``analysis.febrile``;
        docs/clinical-basis.md, Febrile neutropenia) started in the cycle, NA when none did but a fever
        could not be judged (a free-text fever without a temperature or between 38.0 and 38.3 °C, or no
        ANC in force).
        ``doses`` lists the cycle's doses by cycle day ("D1, D8": a dose on a later dose day the regimen
        names is given inside the cycle and starts none; ``align.in_cycle_doses``).
        ``length_days`` is the time to the next start (a postponed cycle is longer than planned).
        ``ready_at_next`` is True or False from the last ANC and platelets in the window before the next
        start, NA when a count is missing or there is no next cycle; ``readiness`` says why.
        ``gcsf_days``, ``delay_days``, ``delay``, ``support_flags`` and ``support``: G-CSF days, cycle
        delays and decision support on G-CSF prophylaxis and dose modification (``support.with_support``).

    Examples
    --------
    >>> start = pd.Timestamp("2026-03-02", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["chemotherapy", "gcsf", "chemotherapy"],
    ...     "start_at": [start, start + pd.Timedelta(days=1), start + pd.Timedelta(days=21)]})
    >>> days = [0, 7, 10, 14, 20, 20]
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc"] * 5 + ["plt"],
    ...     "value": [4.1, 0.8, 0.4, 1.6, 2.5, 180.0], "lln": 1.5,
    ...     "collected_at": [start + pd.Timedelta(days=d) for d in days]})
    >>> cycles = treatment_cycles(results, events)
    >>> cycles[["cycle", "nadir_anc", "nadir_day", "nadir_anc_grade"]].to_dict("records")
    [{'cycle': 1, 'nadir_anc': 0.4, 'nadir_day': 10, 'nadir_anc_grade': 4},
     {'cycle': 2, 'nadir_anc': nan, 'nadir_day': None, 'nadir_anc_grade': None}]
    >>> spells = ["days_grade3_plus_min", "days_grade3_plus_max", "recovery_after_day", "recovery_day"]
    >>> cycles[spells].iloc[0].tolist()
    [4, 13, 10, 14]
    >>> cycles[["days_anc_below_0_5_min", "days_anc_below_0_5_max"]].iloc[0].tolist()
    [1, 6]
    >>> cycles[["gcsf", "length_days", "ready_at_next"]].to_dict("records")
    [{'gcsf': True, 'length_days': 21, 'ready_at_next': True},
     {'gcsf': False, 'length_days': None, 'ready_at_next': None}]
    """
    cycles = cycles_from_events(events, rules, timezone, overdue=True)
    if cycles.empty:
        return pd.DataFrame(columns=list(CYCLE_COLUMNS))
    work = usable_results(results)
    # Temperatures and the ANCs, all of them (the ANC in force may precede the cycle): febrile neutropenia.
    febrile_counts = work[work["analyte"].isin(["anc", "temp"]).to_numpy(dtype=bool)]
    work = work[work["analyte"].ne("temp").to_numpy(dtype=bool)]
    placed = in_cycles(work, cycles, timezone)
    # The next dosing day's pre-treatment counts close the cycle too: its last spell, recovery, readiness.
    inside = pd.concat([placed.assign(closing=False), on_next_dosing_day(work, cycles, timezone)])
    inside = inside.sort_values(["patient_key", "cycle", "collected_at"], kind="stable")
    inside = inside.reset_index(drop=True)
    grading = rules.grading
    inside = inside.assign(grade=ctcae_grade(inside, rules=grading).astype("float64"))
    keys = ["patient_key", "cycle"]
    out = cycles.set_index(keys)
    # The nadir is a low after the dose and before the next: pre-treatment counts (day 0, and the next
    # dosing day's) are not one (docs/clinical-basis.md, Nadir timing).
    after_dose = inside[(inside["day"].ge(1) & inside["closing"].eq(False)).to_numpy(dtype=bool)]
    for analyte, prefix in (("anc", "nadir_anc"), ("wbc", "nadir_wbc")):
        nadir = _nadir(after_dose[after_dose["analyte"].eq(analyte).to_numpy()], keys)
        out[prefix] = nadir["value"]
        out[f"{prefix}_comparator"] = nadir["comparator"]
        out["nadir_day" if analyte == "anc" else "nadir_wbc_day"] = nadir["day"]
        out[f"{prefix}_grade"] = nadir["grade"]
        if analyte == "anc":
            out["nadir_at"] = nadir["collected_at"]
    anc = inside[inside["analyte"].eq("anc").to_numpy()]
    # Both durations are calendar days in the site's zone, as the cycle days are.
    ends = calendar_days(out["start"], out["next_start"], timezone)
    grade3 = anc["grade"].ge(3).fillna(False)
    severe = _spells(anc, grade3, ends, keys)
    out["days_grade3_plus_min"], out["days_grade3_plus_max"] = severe["min"], severe["max"]
    value = anc["value"].round(COMPARE_DECIMALS)
    censored_below = anc["comparator"].isin(["<", "<="]).fillna(False) & value.le(SEVERE_ANC)
    below = (value.lt(SEVERE_ANC) | censored_below).fillna(False)
    under = _spells(anc, below, ends, keys)
    out["days_anc_below_0_5_min"], out["days_anc_below_0_5_max"] = under["min"], under["max"]
    recovery = _recovery(anc, out, keys, rules.recovery_anc)
    out["recovery_day"], out["recovery_after_day"] = recovery["day"], recovery["after_day"]
    out["anc_results"] = anc.groupby(keys).size()
    # Each cycle's nadir window: its regimen's when the site set one, else the site default.
    window = regimen_nadir_days(out["regimen"], rules)
    nadir_counts = after_dose[after_dose["analyte"].eq("anc").to_numpy(dtype=bool)]
    nadir_counts = nadir_counts.join(window, on=keys)
    in_window = nadir_counts[
        nadir_counts["day"]
        .between(nadir_counts["window_first"], nadir_counts["window_last"])
        .to_numpy(dtype=bool)
    ]
    out["nadir_sampled"] = in_window.groupby(keys).size().gt(0)
    out["gcsf"] = gcsf_cycles(events, cycles).reindex(out.index).fillna(False).astype(bool)
    out = out.join(cycle_fevers(events, cycles, febrile_counts, keys, timezone, febrile))
    out["length_days"] = calendar_days(out["start"], out["next_start"], timezone)
    out = out.join(judge_readiness(work, cycles, rules, timezone))
    out = out.reset_index()
    days = ("nadir_day", "nadir_wbc_day", "recovery_day", "recovery_after_day", "length_days")
    for name in (*days, "nadir_anc_grade", "nadir_wbc_grade"):
        out[name] = out[name].astype("Float64").apply(np.floor).astype("Int64")
    # 0 for a cycle whose counts after the dose never reached grade 3; unknown (NA) for one without any
    # ANC after the dose (nothing was seen); the maximum is NA while the last count is still there.
    seen_after_dose = out["nadir_anc"].notna().to_numpy()
    for prefix, spells in (("days_grade3_plus", severe), ("days_anc_below_0_5", under)):
        had = pd.MultiIndex.from_frame(out[keys]).isin(spells.index)
        for name in (f"{prefix}_min", f"{prefix}_max"):
            counted = out[name].astype("float64").where(had, 0).where(had | seen_after_dose)
            out[name] = counted.round().astype("Int64")
    out["fever"] = out["fever"].fillna("")
    out["febrile_neutropenia"] = (
        out["febrile_neutropenia"].astype("boolean").where(out["fever"].ne(""), False)
    )
    out["anc_results"] = out["anc_results"].fillna(0).astype("int64")
    out["nadir_sampled"] = out["nadir_sampled"].astype("boolean").fillna(False).astype(bool)
    out = with_support(
        out, events, work, rules=rules, timezone=timezone, birth_dates=birth_dates, as_of=as_of
    )
    return out.reindex(columns=list(CYCLE_COLUMNS))


def _nadir(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The lowest value per cycle (its first occurrence), with its day, comparator and grade."""
    if rows.empty:
        return pd.DataFrame(columns=["value", "comparator", "day", "grade", "collected_at"])
    lowest = rows.loc[rows.groupby(keys)["value"].idxmin().to_numpy()]
    return lowest.set_index(keys)[["value", "comparator", "day", "grade", "collected_at"]]


def _spells(anc: pd.DataFrame, marked: pd.Series, ends: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Per cycle with a ``marked`` ANC (e.g. grade 3 or worse): confirmed (``min``) and possible (``max``)
    calendar days in that state, from the counts' cycle days, counted inclusively as clinicians count them.

    ``min`` sums, over each run of consecutive marked counts, the days from its first to its last count,
    both counted (D8 and D14: 7 days; a single count: 1); ``max`` the days strictly between the unmarked
    counts around each run (D7 and D15 around it: D8 to D14, 7 days; D5 and D18: D6 to D17, 12). Without
    an unmarked count before, the dose stands in for it (day 0: from D2; from D1 when day 0's own count is
    marked); without one after, the next dose's day (``ends``; the run reaches it when that day's
    pre-treatment count is marked); NaN when the cycle has no end yet. Runs cannot overlap, so the sums
    are durations.
    """
    empty = pd.DataFrame(columns=["min", "max"], index=pd.MultiIndex.from_tuples([], names=keys))
    marked = marked.fillna(False).astype(bool)
    if anc.empty or not marked.any():
        return empty
    cycle = [anc[k] for k in keys]
    day = anc["day"].astype("float64")
    previous = day.groupby(cycle).shift(1)
    following = day.groupby(cycle).shift(-1)
    run = (~marked).groupby(cycle).cumsum()
    spans = pd.DataFrame(
        {
            **{k: anc[k] for k in keys},
            "run": run,
            "first": day,
            "last": day,
            # The dose stands in for a neighbour not below (day 0; day -1 when day 0's count is marked).
            "before": previous.fillna((day - 1).clip(upper=0.0)),
            "after": following,
        }
    )[marked.to_numpy()]
    groups = [*keys, "run"]
    # (head and tail, not first and last: those would skip a missing neighbour)
    opening = spans.groupby(groups).head(1).set_index(groups)
    closing = spans.groupby(groups).tail(1).set_index(groups)
    runs = pd.DataFrame(
        {
            "first": opening["first"],
            "before": opening["before"],
            "last": closing["last"],
            "after": closing["after"],
        }
    )
    end = ends.reindex(pd.MultiIndex.from_frame(runs.index.to_frame()[keys])).to_numpy()
    # The next dose's day stands in for a neighbour not below, unless its pre-treatment count is marked.
    reached = pd.Series(np.maximum(end, runs["last"].to_numpy() + 1), index=runs.index)
    runs["after"] = runs["after"].fillna(reached)
    confirmed = (runs["last"] - runs["first"] + 1).groupby(level=keys).sum()
    possible = (runs["after"] - runs["before"] - 1).groupby(level=keys).sum()
    possible = possible.where(runs["after"].notna().groupby(level=keys).all())
    return pd.DataFrame({"min": confirmed, "max": possible})


def _recovery(anc: pd.DataFrame, cycles: pd.DataFrame, keys: list[str], threshold: float) -> pd.DataFrame:
    """Per cycle, the day of the first ANC at or above ``threshold`` after a nadir below it (``day``), and
    the day of the count before it (``after_day``)."""
    empty = pd.DataFrame(columns=["day", "after_day"], dtype="float64")
    nadir = cycles[["nadir_anc", "nadir_at"]].dropna()
    nadir = nadir[nadir["nadir_anc"].round(COMPARE_DECIMALS) < threshold]
    if anc.empty or nadir.empty:
        return empty
    later = anc.assign(previous_day=anc.groupby(keys)["day"].shift()).merge(
        nadir.reset_index(), on=keys, how="inner"
    )
    above = later["value"].round(COMPARE_DECIMALS) >= threshold
    above &= ~later["comparator"].isin(["<", "<="]).fillna(False)
    found = later[(above & (later["collected_at"] > later["nadir_at"])).to_numpy(dtype=bool)]
    first = found.sort_values("collected_at", kind="stable").groupby(keys).head(1).set_index(keys)
    return pd.DataFrame({"day": first["day"], "after_day": first["previous_day"]}).astype("float64")


def gcsf_cycles(events: pd.DataFrame, cycles: pd.DataFrame) -> pd.Series:
    """True for cycles in which a G-CSF event starts (``support.gcsf_events``: kind gcsf, or a medication
    naming a G-CSF)."""
    given = gcsf_events(events)[["patient_key", "start_at"]]
    if given.empty:
        return pd.Series(dtype=bool)
    spans = given.merge(cycles[["patient_key", "cycle", "day_start", "end"]], on="patient_key")
    spans = spans[((spans["start_at"] >= spans["day_start"]) & (spans["start_at"] < spans["end"])).to_numpy()]
    return spans.groupby(["patient_key", "cycle"]).size().gt(0)
