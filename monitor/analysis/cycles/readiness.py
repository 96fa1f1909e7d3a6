"""Readiness for the next cycle: the last ANC and platelets before a start, against the regimen's rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import (
    before_the_dose,
    calendar_days,
    cycles_from_events,
    day_start,
    usable_results,
)
from monitor.analysis.cycles.display import count_text
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.cycles.schedule import day_date, planned_lengths
from monitor.analysis.grading import COMPARE_DECIMALS

NOW_COLUMNS = (
    "patient_key",
    "cycle",
    "cycle_start",
    "cycle_day",
    "next_dose_day",
    "readiness_from_day",
    "planned_basis",
    "planned_note",
    "ready_now",
    "readiness",
    "verdict",
)


def readiness_now(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """For patients in a chemotherapy cycle at ``as_of``: the cycle, its day, when the next dose is
    expected, and readiness for it once its window has opened.

    The next dose is expected on day ``next_dose_day`` (``schedule.planned_lengths``: the regimen's cycle
    length, else the median of the previous cycles', else the site default; a next start recorded ahead
    of ``as_of`` is the expected day itself) and readiness is judged from
    ``readiness_from_day`` (``readiness_window_days`` before). Before that day there is no verdict
    (``ready_now`` NA; "next dose expected on D22 (date); readiness judged from D19"); from it, the last ANC
    and platelets drawn since then are judged against the regimen's rule; past the expected day without a
    new dose, readiness applies now ("next dose was expected on D22 (date)"), on the last counts of the
    ``readiness_window_days`` before ``as_of``. A cycle no dose has followed stays current for
    ``overdue_cycle_lengths`` planned lengths past the expected day (its end, ``align.cycles_from_events``);
    after that the patient is no longer in a cycle. Returns ``NOW_COLUMNS``: ``verdict`` is the verdict
    alone ("" before the window), ``planned_note`` what an expected day rests on when not the regimen or a
    recorded dose (``planned_note``), ``readiness`` the sentence (``readiness_as_of``).

    >>> start = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["chemotherapy"], "start_at": [start],
    ...     "details": "every 21 days"})
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "plt"], "value": [1.2, 150.0],
    ...     "collected_at": start + pd.Timedelta(days=19)})
    >>> readiness_now(results, events, as_of=start + pd.Timedelta(days=9)).loc[0, "readiness"]
    'Next dose expected on D22 (2026-03-23); readiness judged from D19'
    >>> now = readiness_now(results, events, as_of=start + pd.Timedelta(days=20))
    >>> now[["cycle", "cycle_day", "next_dose_day", "ready_now"]].to_dict("records")
    [{'cycle': 1, 'cycle_day': 20, 'next_dose_day': 21, 'ready_now': False}]
    """
    columns = list(NOW_COLUMNS)
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    cycles = cycles_from_events(events, rules, timezone, overdue=True)
    if cycles.empty:
        return pd.DataFrame(columns=columns)
    cycles = cycles.join(planned_lengths(cycles, rules, timezone))
    # The expected day's first instant in the site's zone (midday first, so a clock change cannot shift it).
    expected_at = day_start(
        cycles["day_start"] + pd.to_timedelta(cycles["next_dose_day"], unit="D") + pd.Timedelta(hours=12),
        timezone,
    )
    last = cycles["next_start"].isna()
    stays = expected_at + pd.Timedelta(days=rules.readiness_window_days + 1)
    until = cycles["end"].where(~last, np.maximum(cycles["end"], stays))
    current = cycles[((cycles["day_start"] <= as_of) & (until > as_of)).to_numpy(dtype=bool)].copy()
    if current.empty:
        return pd.DataFrame(columns=columns)
    # A scheduled next start (recorded ahead) is the expected day.
    scheduled = current["next_start"].notna()
    current.loc[scheduled, "next_dose_day"] = calendar_days(
        current["start"], current["next_start"], timezone
    )[scheduled].astype("int64")
    current.loc[scheduled, "planned_basis"] = "scheduled"
    current["planned_note"] = planned_note(current["planned_basis"], current["next_dose_day"])
    current["readiness_from_day"] = (current["next_dose_day"] - rules.readiness_window_days).clip(lower=0)
    expected_at = expected_at[current.index].where(~scheduled, current["next_start"])
    as_of_column = pd.Series(as_of, index=current.index).dt.as_unit("us")
    current["cycle_day"] = calendar_days(current["start"], as_of_column, timezone).astype("int64")
    # Judged for the expected day on the counts of its window so far, or, once it has passed, now.
    current["next_start"] = expected_at.where(expected_at > as_of, as_of_column)
    current["next_regimen"] = current["regimen"]
    work = usable_results(results)
    judged = judge_readiness(
        work[(work["collected_at"] <= as_of).to_numpy(dtype=bool)], current, rules, timezone
    ).reset_index()
    out = current.merge(judged, on=["patient_key", "cycle"])
    opened = out["cycle_day"] >= out["readiness_from_day"]
    window = f"in the {rules.readiness_window_days} days before the next start"
    since = "since D" + (out["readiness_from_day"] + 1).astype(str) + " (a pre-cycle CBC is needed)"
    recent = f"in the last {rules.readiness_window_days} days (a pre-cycle CBC is needed)"
    due = out["cycle_day"] <= out["next_dose_day"]
    # "unknown: no ANC in the 3 days before the next start": the window named as it stands today.
    reason = out["readiness"].astype(str)
    names_window = reason.str.endswith(window)
    bare = reason.str.slice(0, -len(window))
    verdict = reason.where(~names_window, bare + np.where(due, since, recent))
    out["verdict"] = verdict.where(opened, "")
    out["ready_now"] = out["ready_at_next"].astype("boolean").mask(~opened)
    out = out.rename(columns={"start": "cycle_start"})
    out["judged_day"] = out["cycle_day"]
    shown = readiness_as_of(out, timezone=timezone)
    out["ready_now"], out["readiness"] = shown["ready_now"], shown["readiness"]
    return out[columns].reset_index(drop=True)


def planned_note(basis: pd.Series, days: pd.Series) -> pd.Series:
    """What an expected day rests on when it is not the regimen's length or a recorded dose ("" then).

    >>> basis = pd.Series(["site default", "previous cycles", "regimen"])
    >>> planned_note(basis, pd.Series([28, 21, 21])).tolist()
    ['no length in the regimen: site default 28 days', "from the previous cycles' median, 21 days", '']
    """
    length = days.astype("Float64").astype("Int64").astype("string").fillna("?")
    return pd.Series(
        np.select(
            [basis.eq("site default").to_numpy(), basis.eq("previous cycles").to_numpy()],
            [
                ("no length in the regimen: site default " + length + " days").to_numpy(),
                ("from the previous cycles' median, " + length + " days").to_numpy(),
            ],
            "",
        ),
        index=basis.index,
        dtype=object,
    ).astype(str)


_STORED = r"^\[(?P<note>[^\]]*)\] ?(?P<verdict>.*)$"


def stored_readiness(note: pd.Series, verdict: pd.Series) -> pd.Series:
    """The verdict as the materialised status keeps it, with what the expected day rests on in front
    ("[no length in the regimen: site default 28 days] not ready: ..."); ``readiness_as_of`` reads it.

    >>> note = pd.Series(["from the previous cycles' median, 21 days", ""])
    >>> stored_readiness(note, pd.Series(["", "x"])).tolist()
    ["[from the previous cycles' median, 21 days] ", 'x']
    """
    note = note.fillna("").astype(str)
    verdict = verdict.fillna("").astype(str)
    return verdict.where(note.eq(""), "[" + note + "] " + verdict)


def readiness_as_of(patients: pd.DataFrame, *, timezone: str) -> pd.DataFrame:
    """Readiness as shown on a day, from what was judged on an earlier one (the materialised status).

    ``patients`` has ``cycle_start``, ``cycle_day`` (the day shown), ``next_dose_day``,
    ``readiness_from_day``, ``judged_day`` (the cycle day the verdict was judged on, NA when never),
    ``ready_now`` and ``verdict`` (optionally with its ``planned_note`` in front, ``stored_readiness``; or
    a ``planned_note`` column). Before the readiness window: no verdict, "Next dose expected on D22
    (2026-03-23); readiness judged from D19"; in it: "Next dose expected on D22 (2026-03-23): " and the
    verdict ("readiness unknown: ..." when unknown); past the expected day: "Next dose was expected on D22
    (2026-03-23); readiness now: " and the verdict ("readiness now unknown: ..."). An expected day that
    rests on the site default or the previous cycles says so in its brackets: "D29 (2026-03-30; no length
    in the regimen: site default 28 days)". A verdict judged before the window opened does not count:
    unknown until a count is drawn. Returns ``ready_now`` (boolean) and ``readiness`` (text), index as
    ``patients``; "" and NA outside a cycle.

    >>> row = pd.DataFrame({"cycle_start": [pd.Timestamp("2026-03-02 10:00", tz="UTC")], "cycle_day": [19],
    ...     "next_dose_day": [21], "readiness_from_day": [18], "judged_day": [9], "ready_now": [pd.NA],
    ...     "verdict": [""]})
    >>> readiness_as_of(row, timezone="UTC").loc[0, "readiness"][:70]
    'Next dose expected on D22 (2026-03-23): readiness unknown: no ANC or p'
    """
    next_day = patients["next_dose_day"].astype("Float64")
    from_day = patients["readiness_from_day"].astype("Float64")
    today = patients["cycle_day"].astype("Float64")
    judged = patients["judged_day"].astype("Float64")
    in_cycle = next_day.notna() & today.notna()
    waiting = (today < from_day).fillna(False)
    overdue = (today > next_day).fillna(False)
    fresh = (judged >= from_day).fillna(False)
    stored = patients["verdict"].astype("string").fillna("").str.extract(_STORED)
    verdict = stored["verdict"].fillna(patients["verdict"].astype("string").fillna(""))
    if "planned_note" in patients:
        note = patients["planned_note"].astype("string").fillna("")
    else:
        note = stored["note"].astype("string").fillna("")
    expected = "D" + (next_day + 1).astype("Int64").astype("string")
    dated = day_date(patients["cycle_start"], next_day, timezone).astype("string")
    when = expected + " (" + dated + ("; " + note).where(note.ne(""), "") + ")"
    since = "D" + (from_day + 1).astype("Int64").astype("string")
    stale = "unknown: no ANC or platelets since " + since + " (a pre-cycle CBC is needed)"
    verdict = verdict.where(fresh, stale)
    unknown = verdict.str.startswith("unknown: ").fillna(False)
    rest = verdict.str.slice(len("unknown: "))
    in_window = verdict.where(~unknown, "readiness unknown: " + rest)
    now = ("readiness now: " + verdict).where(~unknown, "readiness now unknown: " + rest)
    text = pd.Series(
        np.select(
            [waiting.to_numpy(), overdue.to_numpy()],
            [
                ("Next dose expected on " + when + "; readiness judged from " + since).to_numpy(),
                ("Next dose was expected on " + when + "; " + now).to_numpy(),
            ],
            ("Next dose expected on " + when + ": " + in_window).to_numpy(),
        ),
        index=patients.index,
        dtype="string",
    )
    ready = patients["ready_now"].astype("boolean").mask(~(fresh & ~waiting))
    return pd.DataFrame(
        {
            "ready_now": ready.mask(~in_cycle),
            "readiness": text.where(in_cycle, "").fillna("").astype(str),
        }
    )


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
    regimen = nexts.set_index(keys)["next_regimen"].fillna("").str.strip().str.lower()
    # One look-up per distinct regimen text (``CycleRules.regimen``: a configured name in it as words).
    rule_of = {text: rules.regimen(text) or rules.readiness for text in regimen.unique()}
    anc_min = regimen.map(lambda r: rule_of[r].anc_min)
    plt_min = regimen.map(lambda r: rule_of[r].plt_min)
    inclusive = regimen.map(lambda r: rule_of[r].inclusive).astype(bool)
    describe = regimen.map(lambda r: rule_of[r].describe())
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
