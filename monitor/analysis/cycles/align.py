"""Cycles from the chemotherapy events, and results aligned to them: calendar days since each start."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.cycles.schedule import (
    IN_CYCLE_TOLERANCE_DAYS,
    planned_lengths,
    regimen_cycle_days,
    regimen_dose_days,
)
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.timestamps import DAY, local_days, localize


def cycle_days(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """``results`` inside a cycle, with ``cycle``, ``cycle_start`` and ``day`` (calendar days since the
    start's day in ``timezone``, the site's).

    For overlaying the counts of several cycles on one axis. Columns of ``results`` are kept.
    """
    cycles = cycles_from_events(events, rules, timezone, overdue=True)
    return in_cycles(usable_results(results), cycles, timezone)


def as_utc(values: pd.Series) -> pd.Series[pd.Timestamp]:
    """Times as UTC at one resolution, whatever the source's (merges and comparisons need the same)."""
    return pd.to_datetime(values, utc=True).dt.as_unit("us")


def with_utc_starts(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` with ``start_at`` as UTC at one resolution."""
    return events.assign(start_at=as_utc(events["start_at"]))


def day_start(times: pd.Series[pd.Timestamp], timezone: str) -> pd.Series[pd.Timestamp]:
    """The start of each time's calendar day in ``timezone``, as UTC (the first instant of a day that
    begins inside a clock change).

    >>> day_start(pd.Series(pd.to_datetime(["2026-07-16 11:00"], utc=True)), "Europe/London").tolist()
    [Timestamp('2026-07-15 23:00:00+0000', tz='UTC')]
    """
    starts = localize(local_days(times, timezone), timezone)  # a repeated midnight: its first occurrence
    return starts.dt.tz_convert("UTC").dt.as_unit("us")


def cycles_from_events(
    events: pd.DataFrame, rules: CycleRules, timezone: str, *, overdue: bool = False
) -> pd.DataFrame:
    """Cycles from the chemotherapy events: one per patient and calendar day of a start in ``timezone``.

    A cycle runs from the start of its dosing day (``day_start``: counts drawn that day are its D1, and
    their time before or after the dose cannot shift them) to the start of the next dosing day; the last
    one, which no dose has followed yet, for ``default_cycle_days`` or, with ``overdue`` (the cycles'
    own views: table, readiness, overlay), to the end of its overdue period: its expected next dose day
    (``schedule.planned_lengths``) and ``overdue_cycle_lengths`` planned lengths more (D22 + 42 days for
    21 days), when it is no longer current. ``start`` keeps the event's own time.

    A dose on a later dose day its cycle's regimen names (``in_cycle_doses``: gemcitabine "D1 and D8 every
    21 days") belongs to that cycle and starts none; ``doses`` lists each cycle's doses ("D1, D8").
    """
    chemo = dosing_days(events, timezone)
    doses = _dose_lists(chemo)
    chemo = chemo[chemo["dose_day"].eq(0).to_numpy(dtype=bool)]
    grouped = chemo.groupby("patient_key", sort=False)
    next_start = grouped["start_at"].shift(-1)
    next_day = grouped["day_start"].shift(-1)
    default_end = chemo["day_start"] + pd.Timedelta(days=rules.default_cycle_days)
    cycles = pd.DataFrame(
        {
            "patient_key": chemo["patient_key"],
            "cycle": grouped.cumcount() + 1,
            "start": chemo["start_at"],
            "day_start": chemo["day_start"],
            "end": next_day.where(next_day.notna(), default_end),
            "next_start": next_start,
            "label": chemo["label"],
            "regimen": chemo["regimen"].astype(str).str.strip(),
            "doses": doses.reindex(
                pd.MultiIndex.from_frame(chemo[["patient_key", "cycle_of_dose"]])
            ).to_numpy(),
        }
    ).reset_index(drop=True)
    if overdue:
        # The last cycle's end: the expected day plus the overdue period (midday first, so a clock change
        # cannot shift the day).
        planned = planned_lengths(cycles, rules, timezone)["planned_days"]
        open_days = pd.to_timedelta(planned * (1 + rules.overdue_cycle_lengths), unit="D")
        open_end = day_start(cycles["day_start"] + open_days + pd.Timedelta(hours=12), timezone)
        cycles["end"] = cycles["end"].where(cycles["next_start"].notna(), open_end)
    # The next start's regimen decides the readiness rule for it.
    cycles["next_regimen"] = cycles.groupby("patient_key")["regimen"].shift(-1)
    return cycles


def _dose_lists(chemo: pd.DataFrame) -> pd.Series:
    """Per patient and cycle (``cycle_of_dose``), its doses' days in order: "D1", "D1, D8".

    Most cycles have one dose: its day is its list; only the cycles with more are joined group by group.
    """
    keys = ["patient_key", "cycle_of_dose"]
    if chemo.empty:  # (as the groups' own join gives it: no rows, the days' dtype)
        return chemo.groupby(keys)["dose_day"].agg(lambda days: ", ".join(f"D{int(d) + 1}" for d in days))
    days = chemo["dose_day"].to_numpy()
    distinct = np.unique(days)
    each = np.array([f"D{int(d) + 1}" for d in distinct], dtype=object)[np.searchsorted(distinct, days)]
    size = chemo.groupby(keys, sort=False)["dose_day"].transform("size").to_numpy()
    single = size == 1
    lists = pd.Series(each[single], index=pd.MultiIndex.from_frame(chemo.loc[single, keys]), dtype=object)
    if not single.all():
        several = chemo[~single].assign(word=each[~single])
        joined = several.groupby(keys, sort=False)["word"].agg(", ".join)
        lists = pd.concat([lists, joined.astype(object)])
    return lists


def dosing_days(events: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The chemotherapy events as dosing days (two drugs on one calendar day are one), sorted by patient and
    time, with ``regimen``, ``day_start`` and the cycle each belongs to (``in_cycle_doses``)."""
    events = with_utc_starts(events)
    chemo = events[events["kind"].eq("chemotherapy").to_numpy(dtype=bool)]
    chemo = chemo.assign(
        label=chemo["label"] if "label" in chemo else "",
        regimen=(chemo["details"] if "details" in chemo else pd.Series("", index=chemo.index)).fillna(""),
        day_start=day_start(chemo["start_at"], timezone),
    )
    chemo = chemo.sort_values(["patient_key", "start_at"], kind="stable")
    chemo = chemo.drop_duplicates(["patient_key", "day_start"])  # two drugs on one day: one cycle
    return in_cycle_doses(chemo, timezone)


def in_cycle_doses(chemo: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """``chemo`` (one dosing day per row, sorted by patient and time) with ``cycle_of_dose`` (the cycle each
    dose belongs to, 1-based) and ``dose_day`` (its calendar day since that cycle's D1: 0 for a cycle's
    first dose).

    A dose is given inside the current cycle, and starts no new one, when the regimen text of the cycle's
    first dose (``regimen``, else ``label``) states a cycle length L (``schedule.regimen_cycle_days``) and
    names later dose days (``schedule.regimen_dose_days``: "D1 and D8"), and the dose's calendar day since
    D1 is one of them within ``IN_CYCLE_TOLERANCE_DAYS`` (D8 given on D6 to D10), before the tolerance
    around the next D1 (day L). Otherwise every dose starts a cycle (nothing is guessed). Doses are taken
    in order, the n-th dose of every patient at once (a patient has few).

    >>> start = pd.Timestamp("2026-10-01 09:00", tz="UTC")
    >>> chemo = pd.DataFrame({"patient_key": 1, "regimen": "gemcitabine D1 and D8 every 21 days",
    ...     "start_at": [start + pd.Timedelta(days=d) for d in (0, 7, 21, 29)]})
    >>> chemo = chemo.assign(day_start=day_start(chemo["start_at"], "UTC"))
    >>> in_cycle_doses(chemo, "UTC")[["cycle_of_dose", "dose_day"]].values.tolist()
    [[1, 0], [1, 7], [2, 0], [2, 8]]
    """
    chemo = chemo.reset_index(drop=True)  # (events of several sources may repeat index labels)
    text = chemo["regimen"].fillna("").astype(str)
    if "label" in chemo:
        text = text.where(text.str.strip().ne(""), chemo["label"].fillna("").astype(str))
    length = regimen_cycle_days(text)
    named = regimen_dose_days(text)
    if not named.map(len).any():  # no regimen names a later dose day: every dose starts a cycle
        first_doses = chemo.groupby("patient_key", sort=False).cumcount() + 1
        return chemo.assign(cycle_of_dose=first_doses.astype("int64"), dose_day=0)
    local = local_days(chemo["start_at"], timezone)
    day = ((local - local.min()) / DAY).round().astype("int64")  # calendar day numbers in the site's zone
    rank = chemo.groupby("patient_key", sort=False).cumcount()
    patients = chemo["patient_key"]
    dose_day = pd.Series(0, index=chemo.index, dtype="int64")
    # The current cycle's D1 per patient: its day, length and named days (from the cycle's first dose).
    first = chemo.index[rank.eq(0).to_numpy()]
    current = pd.DataFrame(
        {"d1": day[first].to_numpy(), "length": length[first].to_numpy(), "named": named[first].to_numpy()},
        index=patients[first].to_numpy(),
    )
    for n in range(1, int(rank.max()) + 1 if len(rank) else 0):
        rows = chemo.index[rank.eq(n).to_numpy()]
        state = current.loc[patients[rows].to_numpy()].set_axis(rows)
        since = (day[rows] - state["d1"].astype("int64")).astype("int64")
        options = pd.DataFrame({"since": since, "length": state["length"], "named": state["named"]})
        options = options.explode("named").dropna(subset=["named"])
        near = (options["since"] - options["named"].astype("int64")).abs().le(IN_CYCLE_TOLERANCE_DAYS)
        near &= options["since"].lt(options["length"] - IN_CYCLE_TOLERANCE_DAYS)
        inside = near.groupby(level=0).any().reindex(rows, fill_value=False).astype(bool)
        dose_day[rows] = since.where(inside, 0)
        starts = rows[~inside.to_numpy()]
        restarted = patients[starts].to_numpy()
        current.loc[restarted, "d1"] = day[starts].to_numpy()
        current.loc[restarted, "length"] = length[starts].to_numpy()
        current.loc[restarted, "named"] = named[starts].to_numpy()
    cycle = dose_day.eq(0).groupby(patients).cumsum()
    return chemo.assign(cycle_of_dose=cycle.astype("int64"), dose_day=dose_day)


def usable_results(results: pd.DataFrame) -> pd.DataFrame:
    """Results with a value and a time, not withdrawn, with ``lln`` and ``comparator`` present."""
    keep = results["value"].notna() & results["collected_at"].notna()
    if "status" in results:
        keep &= ~results["status"].isin(EXCLUDED_STATUSES)
    work = results.loc[keep.to_numpy(dtype=bool)]
    comparator = work["comparator"] if "comparator" in work else pd.Series(pd.NA, index=work.index)
    comparator = comparator.astype("string").str.strip().replace({"": pd.NA})
    lln = work["lln"] if "lln" in work else pd.Series(np.nan, index=work.index)
    return (
        work.assign(
            value=work["value"].astype("float64"),
            comparator=comparator,
            lln=lln.astype("float64"),
            collected_at=as_utc(work["collected_at"]),
        )
        .sort_values(["patient_key", "collected_at"], kind="stable")
        .reset_index(drop=True)
    )


def calendar_days(
    start: pd.Series[pd.Timestamp], later: pd.Series[pd.Timestamp], timezone: str
) -> pd.Series[float]:
    """Whole calendar days from ``start``'s day to ``later``'s day in ``timezone`` (NaN where missing).

    >>> start = pd.Series(pd.to_datetime(["2026-03-20 00:00"]).tz_localize("Europe/London"))
    >>> later = pd.Series(pd.to_datetime(["2026-04-10 00:00"]).tz_localize("Europe/London"))
    >>> calendar_days(start, later, "Europe/London").tolist()  # 21 days, one of them 23 hours long
    [21.0]
    """
    return ((local_days(later, timezone) - local_days(start, timezone)) / DAY).astype("float64")


def in_cycles(work: pd.DataFrame, cycles: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Each result inside a cycle, with the cycle number, its start and the calendar day since it."""
    if cycles.empty or work.empty:
        empty = work.iloc[0:0]
        return empty.assign(
            cycle=pd.Series(dtype="int64"),
            cycle_start=pd.Series(pd.NaT, index=empty.index, dtype="datetime64[ns]"),
            day=pd.Series(dtype="int64"),
        )
    starts = cycles[["patient_key", "cycle", "start", "day_start", "end"]].sort_values("day_start")
    placed = pd.merge_asof(
        work.sort_values("collected_at"),
        starts,
        left_on="collected_at",
        right_on="day_start",
        by="patient_key",
        direction="backward",
    )
    placed = placed[(placed["collected_at"] < placed["end"]).to_numpy(dtype=bool)]
    placed = placed.rename(columns={"start": "cycle_start"}).drop(columns=["day_start", "end"])
    placed["cycle"] = placed["cycle"].astype("int64")
    placed["day"] = calendar_days(placed["cycle_start"], placed["collected_at"], timezone).astype("int64")
    return placed.sort_values(["patient_key", "cycle", "collected_at"], kind="stable").reset_index(drop=True)


def before_the_dose(collected_at: pd.Series, dose_at: pd.Series, timezone: str) -> pd.Series:
    """Whether each count was drawn before its dose: earlier than the dose's time, or on the day of a dose
    recorded without a time of day (midnight in the site's zone: a date alone cannot be ordered against the
    day's draws, and a dosing day's counts are drawn before the dose as a rule).

    >>> dose = pd.Series(pd.to_datetime(["2026-03-23 09:00", "2026-03-23 00:00"], utc=True))
    >>> drawn = pd.Series(pd.to_datetime(["2026-03-23 15:00", "2026-03-23 15:00"], utc=True))
    >>> before_the_dose(drawn, dose, "UTC").tolist()
    [False, True]
    """
    dose = pd.to_datetime(dose_at, utc=True)  # (a merge can hand the times over as plain datetime64)
    local = dose.dt.tz_convert(timezone)
    untimed = (local.dt.hour == 0) & (local.dt.minute == 0) & (local.dt.second == 0)
    return ((pd.to_datetime(collected_at, utc=True) < dose) | untimed).astype(bool)


def on_next_dosing_day(work: pd.DataFrame, cycles: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Results drawn on the calendar day of a cycle's next start, placed in that earlier cycle too.

    The pre-treatment count of a dosing day is the next cycle's day 0 (``in_cycles``) and also the last
    count of the cycle it closes: its day there is the cycle's length. A count drawn after that dose (its
    time is later than the dose's) belongs to the new cycle only (``before_the_dose``). The columns of
    ``in_cycles`` and ``closing`` (True).

    >>> start = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": "chemotherapy",
    ...     "start_at": [start, start + pd.Timedelta(days=21)]})
    >>> cycles = cycles_from_events(events, DEFAULT_CYCLE_RULES, "UTC")
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": "anc", "value": [0.9, 2.0],
    ...     "collected_at": [start + pd.Timedelta(days=10), start + pd.Timedelta(days=20.9)]})
    >>> on_next_dosing_day(usable_results(results), cycles, "UTC")[["cycle", "day", "value"]].values.tolist()
    [[1.0, 21.0, 2.0]]
    """
    closing = cycles[cycles["next_start"].notna().to_numpy(dtype=bool)]
    # Placed as if each cycle began on its next start's day (day 0, the only day kept; a day may be 25 hours).
    shifted = closing.assign(
        start=closing["next_start"], day_start=closing["end"], end=closing["end"] + pd.Timedelta(days=2)
    )
    placed = in_cycles(work, shifted, timezone)
    placed = placed[placed["day"].eq(0).to_numpy(dtype=bool)]
    # (here ``cycle_start`` is still the next start: the dose this count was drawn for)
    placed = placed[before_the_dose(placed["collected_at"], placed["cycle_start"], timezone).to_numpy()]
    if placed.empty:
        return placed.assign(closing=pd.Series(dtype=bool))
    starts = closing.set_index(["patient_key", "cycle"])["start"]
    cycle_start = starts.reindex(pd.MultiIndex.from_frame(placed[["patient_key", "cycle"]])).to_numpy()
    placed = placed.assign(cycle_start=cycle_start, closing=True)
    placed["day"] = calendar_days(placed["cycle_start"], placed["collected_at"], timezone).astype("int64")
    return placed.reset_index(drop=True)
