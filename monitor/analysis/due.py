"""CBCs due: each chemotherapy cycle's nadir window, whether a count was drawn in it, and what is due now.

A cycle's nadir window is the nadir forecast's when the latest cycle has one (``analysis.forecast``: the
days its median curve is within 25 % of its lowest value, passed in as ``forecasts``), else the regimen's
(``Regimen.nadir_window_days``) or the site default (``CycleRules.nadir_window_days``, days 7 to 14), in
the cycles' own day numbers: day 0 is the dosing day,
D1 in the dashboard's notation, so days 7 to 14 are D8 to D15. The window runs from the start of its first
day to the end of its last day, calendar days in the site's zone (a count at 23:30 on D7 is not in it),
and is cut at the start of the next dosing day when the next dose came before it closed (that day's count
is the next cycle's pre-treatment count). A CBC is a panel with a WBC or an ANC; a temperature never is.

Two steps, so that lists need not recompute cycles:

* ``nadir_status`` (at each status refresh): per patient, the latest cycle's window, when it opens and
  closes, whether a count was drawn in it and until when the cycle is current; and the previous cycle's
  window when it closed without a count. Independent of the time it is computed at, but for the forecast
  window, which is the forecast as of that time.
* ``due_items`` (when a list is read, as of its time): a window due (opening within the horizon, or open,
  with no count in it yet), missed (closed without a count while its cycle, or the next cycle's window, is
  current), and, outside chemotherapy, a CTCAE grade 3-4 finding with no CBC for more than
  ``due_severe_days`` calendar days. Each item has the time it is raised (a monitoring-gap alert:
  ``due_lead_hours`` before the window opens; when it closed; the day the severe rule is first met) and a
  sentence naming its rule.

Rules and sources: docs/clinical-basis.md, CBCs due (nadir timing from Nadir timing; the lead time and the
grade 3-4 interval are site decisions). Pure pandas; imports only from ``monitor``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import as_utc, cycles_from_events, day_start
from monitor.analysis.cycles.display import regimen_nadir_days
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.flags import LINEAGES
from monitor.analysis.triage import in_priority_order, max_grade
from monitor.timestamps import local_days, localize

__all__ = [
    "COUNTED",
    "DUE_COLUMNS",
    "ITEM_COLUMNS",
    "STATUS_COLUMNS",
    "due_flags",
    "due_items",
    "nadir_status",
    "nadir_windows",
    "with_monitoring_gaps",
]

# What samples a nadir window: a panel with a WBC or an ANC.
COUNTED = ("wbc", "anc")
WINDOW_COLUMNS = [
    "patient_key",
    "cycle",
    "window",
    "opens_at",
    "closes_at",
    "cut",
    "sampled",
    "until",
    "forecast",
]
# The columns the patient status keeps (db/status.py): the latest cycle's window, and the previous cycle's
# when it was missed.
STATUS_COLUMNS = [
    "nadir_cycle",
    "nadir_window",
    "nadir_opens_at",
    "nadir_closes_at",
    "nadir_sampled",
    "nadir_until",
    "nadir_forecast",
    "missed_cycle",
    "missed_window",
    "missed_opens_at",
    "missed_closes_at",
]
ITEM_COLUMNS = [
    "patient_key",
    "kind",
    "cycle",
    "window",
    "window_start",
    "window_end",
    "raised_at",
    "reason",
]
DUE_COLUMNS = ["cbc_due", "cbc_due_reason"]


def nadir_windows(
    events: pd.DataFrame,
    counts: pd.DataFrame,
    *,
    rules: CycleRules,
    timezone: str,
    forecasts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every chemotherapy cycle's nadir window and whether a CBC was drawn in it.

    Parameters
    ----------
    events : pd.DataFrame
        Clinical events (``patient_key``, ``kind``, ``start_at``, ``details``; chemotherapy ones start
        cycles, as ``analysis.cycles`` reads them).
    counts : pd.DataFrame
        Usable results with ``patient_key``, ``analyte`` and ``collected_at`` (UTC); only WBC and ANC count.
    rules : CycleRules
        The site's rules (the nadir window per regimen, else the site default).
    timezone : str
        The site's zone, in which the window's days are calendar days.
    forecasts : pd.DataFrame, optional
        Nadir forecasts indexed by ``patient_key`` (``forecast_cycle``, ``nadir_window_first``,
        ``nadir_window_last``: ``db.forecasts.FORECAST_STATUS``): the forecast's window, in the same
        day numbers (the forecast's whole days since the dose), replaces the regimen's or the default for
        the cycle it forecasts (``forecast`` True); a count drawn in the window it replaced samples it too
        (the forecast is made after the counts: a window is never missed in hindsight).

    Returns
    -------
    pd.DataFrame
        ``WINDOW_COLUMNS``: ``window`` as "D8-D15" (D1 = the dosing day), ``opens_at`` the start of its first
        day, ``closes_at`` the end of its last day or the start of the next dosing day when that comes
        first (``cut``), ``sampled`` whether a WBC or ANC was drawn in [opens_at, closes_at), ``until`` the
        cycle's end (the next dosing day, or the end of its overdue period). A cycle whose next dose came
        before its window opened has none (not listed).

    Examples
    --------
    >>> events = pd.DataFrame({"patient_key": 1, "kind": "chemotherapy", "details": "",
    ...     "start_at": pd.to_datetime(["2026-03-02 10:00", "2026-03-12 10:00"], utc=True)})
    >>> counts = pd.DataFrame({"patient_key": 1, "analyte": "anc",
    ...     "collected_at": pd.to_datetime(["2026-03-08 23:30"], utc=True)})
    >>> found = nadir_windows(events, counts, rules=CycleRules(), timezone="UTC")
    >>> found[["cycle", "window", "cut", "sampled"]].values.tolist()
    [[1, 'D8-D10', True, False], [2, 'D8-D15', False, False]]
    """
    if not events["kind"].eq("chemotherapy").any():
        return pd.DataFrame(columns=WINDOW_COLUMNS)
    cycles = cycles_from_events(events, rules, timezone, overdue=True)
    days = regimen_nadir_days(cycles["regimen"], rules)
    first, last = days["window_first"], days["window_last"]
    usual_opens = _local_day(cycles["day_start"], first, timezone)
    usual_closes = _local_day(cycles["day_start"], last + 1, timezone)
    forecast = pd.Series(False, index=cycles.index)
    if forecasts is not None and not forecasts.empty:
        known = forecasts.dropna(subset=["forecast_cycle", "nadir_window_first", "nadir_window_last"])
        keys = cycles["patient_key"].astype("int64")
        known = known.set_axis(known.index.astype("int64"))
        forecast = keys.map(known["forecast_cycle"]).eq(cycles["cycle"]).fillna(False).astype(bool)
        first = first.where(~forecast, keys.map(known["nadir_window_first"])).astype("int64")
        last = last.where(~forecast, keys.map(known["nadir_window_last"])).astype("int64")
    opens = _local_day(cycles["day_start"], first, timezone)
    closes = _local_day(cycles["day_start"], last + 1, timezone)
    next_day = as_utc(cycles["end"]).where(cycles["next_start"].notna())
    cut = (next_day < closes).fillna(False).astype(bool)
    closes = closes.where(~cut, next_day)
    usual_closes = usual_closes.where(~(next_day < usual_closes).fillna(False).astype(bool), next_day)
    # The last day as a cycle day (day 0 = D1): the day before the one the window closes at.
    shown_last = last.where(~cut, _day_number(cycles["day_start"], next_day, timezone) - 1)
    out = pd.DataFrame(
        {
            "patient_key": cycles["patient_key"],
            "cycle": cycles["cycle"].astype("int64"),
            "window": "D" + (first + 1).astype(str) + "-D" + (shown_last + 1).astype("Int64").astype(str),
            "opens_at": opens,
            "closes_at": closes,
            "cut": cut,
            "until": as_utc(cycles["end"]),
            "forecast": forecast,
            "_usual_opens": usual_opens,
            "_usual_closes": usual_closes,
        }
    )
    out = out[(out["closes_at"] > out["opens_at"]).to_numpy(dtype=bool)].reset_index(drop=True)
    out["sampled"] = _sampled(out, counts)
    if out["forecast"].any():
        # A count drawn in the regimen's or the default window samples a forecast window too: the forecast is
        # made as of the recompute, after the counts, and must not make a window missed in hindsight.
        usual = out.assign(opens_at=out["_usual_opens"], closes_at=out["_usual_closes"])
        out["sampled"] = out["sampled"] | (out["forecast"] & _sampled(usual, counts))
    return out[WINDOW_COLUMNS]


def _local_day(day_starts: pd.Series, days: pd.Series, timezone: str) -> pd.Series:
    """The start (UTC) of the calendar day ``days`` after each cycle's dosing day, in ``timezone`` (from
    midday, so that a clock change cannot move the day)."""
    shifted = as_utc(day_starts) + pd.to_timedelta(days.astype("int64"), unit="D") + pd.Timedelta(hours=12)
    return day_start(shifted, timezone)


def _day_number(day_starts: pd.Series, times: pd.Series, timezone: str) -> pd.Series:
    """Calendar days from each dosing day to ``times``' day in ``timezone`` (NA where ``times`` is)."""
    later = local_days(times, timezone)
    return ((later - local_days(as_utc(day_starts), timezone)).dt.days).astype("Int64")


def _sampled(windows: pd.DataFrame, counts: pd.DataFrame) -> pd.Series:
    """Whether a WBC or ANC was drawn in each window: the first count at or after it opens, before it
    closes."""
    if windows.empty:
        return pd.Series(False, index=windows.index, dtype=bool)
    drawn = counts[counts["analyte"].isin(COUNTED).to_numpy(dtype=bool)]
    drawn = pd.DataFrame(
        {"patient_key": drawn["patient_key"].astype("int64"), "drawn_at": as_utc(drawn["collected_at"])}
    ).dropna()
    ordered = windows.assign(
        patient_key=windows["patient_key"].astype("int64"), _row=np.arange(len(windows))
    ).sort_values("opens_at", kind="stable")
    found = pd.merge_asof(
        ordered,
        drawn.sort_values("drawn_at", kind="stable"),
        left_on="opens_at",
        right_on="drawn_at",
        by="patient_key",
        direction="forward",
    ).sort_values("_row")
    inside = found["drawn_at"].notna() & (found["drawn_at"] < found["closes_at"])
    return pd.Series(inside.to_numpy(dtype=bool), index=windows.index)


def nadir_status(
    events: pd.DataFrame,
    counts: pd.DataFrame,
    *,
    rules: CycleRules,
    timezone: str,
    forecasts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per patient with a nadir window (index ``patient_key``): ``STATUS_COLUMNS``, the latest cycle's window
    (``nadir_*``; ``nadir_forecast`` when it is the nadir forecast's, ``forecasts`` as ``nadir_windows``
    takes them) and the previous cycle's when it closed without a count (``missed_*``, else empty).

    >>> events = pd.DataFrame({"patient_key": 7, "kind": "chemotherapy", "details": "",
    ...     "start_at": pd.to_datetime(["2026-03-02 10:00", "2026-03-12 10:00"], utc=True)})
    >>> counts = pd.DataFrame(columns=["patient_key", "analyte", "collected_at"])
    >>> row = nadir_status(events, counts, rules=CycleRules(), timezone="UTC").loc[7]
    >>> row[["nadir_cycle", "nadir_window", "missed_cycle", "missed_window"]].astype(str).tolist()
    ['2', 'D8-D15', '1', 'D8-D10']
    """
    windows = nadir_windows(events, counts, rules=rules, timezone=timezone, forecasts=forecasts)
    empty = pd.DataFrame(columns=STATUS_COLUMNS, index=pd.Index([], name="patient_key"))
    if windows.empty:
        return empty
    windows = windows.sort_values(["patient_key", "cycle"], kind="stable")
    latest = windows.groupby("patient_key").tail(1).set_index("patient_key")
    # The cycle just before the latest, when its window closed without a count.
    previous = windows.assign(latest=windows["patient_key"].map(latest["cycle"]).astype("int64"))
    previous = previous[
        (previous["cycle"].eq(previous["latest"] - 1) & ~previous["sampled"]).to_numpy(dtype=bool)
    ].set_index("patient_key")
    out = pd.DataFrame(
        {
            "nadir_cycle": latest["cycle"],
            "nadir_window": latest["window"],
            "nadir_opens_at": latest["opens_at"],
            "nadir_closes_at": latest["closes_at"],
            "nadir_sampled": latest["sampled"].astype(bool),
            "nadir_until": latest["until"],
            "nadir_forecast": latest["forecast"].astype(bool),
        },
        index=latest.index,
    )
    out["missed_cycle"] = previous["cycle"].reindex(out.index).astype("Int64")
    out["missed_window"] = previous["window"].reindex(out.index)
    out["missed_opens_at"] = previous["opens_at"].reindex(out.index)
    out["missed_closes_at"] = previous["closes_at"].reindex(out.index)
    return out.rename_axis("patient_key")[STATUS_COLUMNS]


def _date(times: pd.Series, timezone: str) -> pd.Series:
    """Each time's calendar date in ``timezone`` as YYYY-MM-DD ("" where unknown)."""
    return local_days(as_utc(times), timezone).dt.strftime("%Y-%m-%d").fillna("")


def _last_day(closes: pd.Series, timezone: str) -> pd.Series:
    """A window's last day as a date: the day before the one it closes at."""
    return (local_days(as_utc(closes), timezone) - pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d").fillna("")


def _since(patients: pd.DataFrame, timezone: str) -> pd.Series:
    """ "no count since 2026-11-20" (the last CBC's date in the site's zone), or "no count on record"."""
    last = _date(patients["last_collected_at"], timezone)
    return ("no count since " + last).where(last.ne(""), "no count on record")


def _window_items(
    patients: pd.DataFrame,
    prefix: str,
    *,
    as_of: pd.Timestamp,
    horizon: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
) -> pd.DataFrame:
    """The due and missed items of one stored window (``nadir`` or ``missed``)."""
    opens = as_utc(patients[f"{prefix}_opens_at"])
    closes = as_utc(patients[f"{prefix}_closes_at"])
    cycle = patients[f"{prefix}_cycle"].astype("Int64")
    window = patients[f"{prefix}_window"].astype("string")
    if prefix == "nadir":
        sampled = patients["nadir_sampled"].astype("boolean").fillna(True).to_numpy(dtype=bool)
        current = (as_utc(patients["nadir_until"]) > as_of).fillna(False).to_numpy(dtype=bool)
    else:
        # The previous cycle's missed window is listed until the latest cycle's window closes.
        sampled = cycle.isna().to_numpy(dtype=bool)
        current = (as_utc(patients["nadir_closes_at"]) > as_of).fillna(False).to_numpy(dtype=bool)
    known = opens.notna().to_numpy(dtype=bool) & ~sampled & current
    still_open = (closes > as_of).fillna(False).to_numpy(dtype=bool)
    due = known & still_open & (opens <= horizon).fillna(False).to_numpy(dtype=bool)
    missed = known & ~still_open
    start, end = _date(opens, timezone), _last_day(closes, timezone)
    # The latest cycle's window is the nadir forecast's when it has one, and the sentence says so.
    forecast = (
        patients["nadir_forecast"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if prefix == "nadir" and "nadir_forecast" in patients
        else np.zeros(len(patients), dtype=bool)
    )
    named = (
        pd.Series(np.where(forecast, "nadir forecast ", ""), index=patients.index, dtype="string") + window
    )
    label = (
        "C"
        + cycle.astype("string")
        + pd.Series(np.where(forecast, " ", " nadir window "), index=patients.index, dtype="string")
        + named
    )
    opened = (opens <= as_of).fillna(False).to_numpy(dtype=bool)
    when = (" opens " + start).where(~opened, " open until " + end)
    lead = pd.Timedelta(hours=rules.due_lead_hours)
    items = pd.DataFrame(
        {
            "patient_key": patients["patient_key"],
            "kind": np.where(due, "due", "missed"),
            "cycle": cycle,
            "window": window,
            "window_start": start,
            "window_end": end,
            "raised_at": (opens - lead).where(due, closes),
            "reason": np.where(
                due,
                "CBC due: " + label + when + "; " + _since(patients, timezone),
                "nadir window missed: C"
                + cycle.astype("string")
                + " "
                + named
                + " ("
                + start
                + " to "
                + end
                + ") closed without a count; "
                + _since(patients, timezone),
            ),
        },
        index=patients.index,
    )
    return items[due | missed]


def _severe_items(
    patients: pd.DataFrame, *, as_of: pd.Timestamp, rules: CycleRules, timezone: str
) -> pd.DataFrame:
    """Outside chemotherapy: a latest WBC, ANC or ALC of CTCAE grade 3-4 and no CBC for more than
    ``due_severe_days`` calendar days (the worst grade named, the ANC first among equals)."""
    grades = pd.DataFrame({lineage: patients[f"latest_{a}_grade"].astype("Float64") for a, lineage in _ORDER})
    worst = grades.max(axis=1)
    finding = grades.fillna(-1).idxmax(axis=1).where(worst.notna(), "")
    last = local_days(as_utc(patients["last_collected_at"]), timezone)
    today = pd.Timestamp(as_of).tz_convert(timezone).tz_localize(None).normalize()
    ago = (today - last).dt.days.astype("Int64")
    outside = patients["cycle"].isna().to_numpy(dtype=bool) if "cycle" in patients else True
    met = (worst.ge(3) & ago.gt(rules.due_severe_days)).fillna(False).to_numpy(dtype=bool) & outside
    first_day = last + pd.Timedelta(days=rules.due_severe_days + 1)
    items = pd.DataFrame(
        {
            "patient_key": patients["patient_key"],
            "kind": "severe",
            "cycle": pd.array([pd.NA] * len(patients), dtype="Int64"),
            "window": pd.Series(pd.NA, index=patients.index, dtype="string"),
            "window_start": "",
            "window_end": "",
            "raised_at": _naive_day_start(first_day, timezone),
            "reason": "grade "
            + worst.astype("Int64").astype("string")
            + " "
            + finding.astype("string")
            + ", last count "
            + ago.astype("string")
            + " days ago",
        },
        index=patients.index,
    )
    return items[met]


# The findings the grade 3-4 rule names, the ANC first (it is what predicts infection; analysis.triage).
_ORDER = tuple((analyte, LINEAGES[analyte]) for analyte in ("anc", "wbc", "alc"))


def _naive_day_start(days: pd.Series, timezone: str) -> pd.Series:
    """The start (UTC) of each naive local calendar day in ``timezone`` (NaT stays NaT)."""
    midday = localize(days + pd.Timedelta(hours=12), timezone).dt.tz_convert("UTC")
    return day_start(midday, timezone)


def due_items(
    patients: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
    days: int | None = None,
) -> pd.DataFrame:
    """What is due as of ``as_of``: one row per item (``ITEM_COLUMNS``), in the patient list's order.

    Parameters
    ----------
    patients : pd.DataFrame
        The patient list: ``patient_key``, ``STATUS_COLUMNS``, ``cycle`` (the cycle now, NA outside one),
        ``latest_{wbc,anc,alc}_grade`` and ``last_collected_at``.
    as_of : pd.Timestamp
        The time of the list (UTC).
    rules : CycleRules
        ``due_lead_hours`` and ``due_severe_days``.
    timezone : str
        The site's zone: window dates and the days since the last count are calendar days there.
    days : int, optional
        A window is due when its first day is at most this many calendar days after ``as_of``'s day (the
        ``due`` command's horizon); by default, when it opens within ``due_lead_hours``.

    Returns
    -------
    pd.DataFrame
        ``kind`` "due" (a window opening within the horizon or open, with no count in it yet), "missed"
        (closed without a count) or "severe" (outside chemotherapy: grade 3-4 and no CBC for more than
        ``due_severe_days`` days); ``window_start`` and ``window_end`` its first and last days (YYYY-MM-DD
        in ``timezone``); ``raised_at`` when it became an alert (``due_lead_hours`` before the window
        opens, when it closed, the start of the first day the severe rule is met); ``reason`` its sentence.
    """
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    if patients.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    if days is None:
        horizon = as_of + pd.Timedelta(hours=rules.due_lead_hours)
    else:
        today = pd.Series([as_of]).dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
        horizon = _naive_day_start(today + pd.Timedelta(days=days + 1), timezone).iloc[0] - pd.Timedelta(
            microseconds=1
        )
    patients = patients.reset_index(drop=True)
    parts = [
        _window_items(patients, prefix, as_of=as_of, horizon=horizon, rules=rules, timezone=timezone)
        for prefix in ("missed", "nadir")
    ] + [_severe_items(patients, as_of=as_of, rules=rules, timezone=timezone)]
    found = pd.concat([p for p in parts if not p.empty] or [parts[0]])
    order = {"missed": 0, "due": 1, "severe": 2}
    found = found.assign(_row=found.index, _kind=found["kind"].map(order))
    found = found.sort_values(["_row", "_kind", "raised_at"], kind="stable")
    found["raised_at"] = as_utc(found["raised_at"])
    return found[ITEM_COLUMNS].reset_index(drop=True)


def due_flags(
    patients: pd.DataFrame, *, as_of: pd.Timestamp, rules: CycleRules, timezone: str
) -> pd.DataFrame:
    """``cbc_due`` and ``cbc_due_reason`` per row of ``patients`` (index kept): due by ``due_lead_hours``,
    missed, or the grade 3-4 rule, with the sentences joined by "; " ("" when nothing is due)."""
    items = due_items(patients, as_of=as_of, rules=rules, timezone=timezone)
    reasons = items.groupby("patient_key")["reason"].agg("; ".join)
    mapped = patients["patient_key"].map(reasons)
    reason = mapped.astype(object).where(mapped.notna(), "").astype(str)
    return pd.DataFrame({"cbc_due": reason.ne(""), "cbc_due_reason": reason}, index=patients.index)


def with_monitoring_gaps(
    alerts: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    since: pd.Timestamp,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
) -> pd.DataFrame:
    """``alerts`` (``analysis.alerts.current_alerts``: one row per patient, ``patient_id`` and
    ``assigning_authority`` identifying them) with a ``monitoring_gap`` list per patient: the due items
    (``due_items``, by ``due_lead_hours``) raised after ``since`` and by ``as_of`` that still hold ("CBC
    due: C3 nadir window D8-D15 opens 2026-12-05; no count since 2026-11-20", "nadir window missed: ...").
    A patient with gaps and no other alert gets a row of their own (no flags' changes, noticed when the gap
    was raised); the order is the worklist's, then the most recent first
    (``analysis.triage.in_priority_order``). Other columns of ``alerts`` are kept."""
    columns = [*alerts.columns, "monitoring_gap"]
    items = due_items(patients, as_of=as_of, rules=rules, timezone=timezone)
    raised = items["raised_at"]
    items = items[((raised > pd.Timestamp(since)) & (raised <= pd.Timestamp(as_of))).to_numpy(dtype=bool)]
    identity = ["patient_id", "assigning_authority"]
    keyed = patients.set_index("patient_key")
    gaps = items.groupby("patient_key").agg(
        monitoring_gap=("reason", list), first_gap=("raised_at", "min"), last_gap=("raised_at", "max")
    )
    gaps = gaps.join(keyed[identity])
    known = alerts.merge(keyed[identity].reset_index(), on=identity, how="left")
    out = known.set_index("patient_key")
    new = gaps.index.difference(out.index)
    if not len(new) and out.empty:
        return pd.DataFrame(columns=columns)
    extra = keyed.loc[new].assign(
        changes=pd.Series([[] for _ in new], index=new, dtype=object),
        first_noticed_at=gaps.loc[new, "first_gap"],
        last_noticed_at=gaps.loc[new, "last_gap"],
    )
    merged = pd.concat([out, extra[[c for c in out.columns if c in extra.columns]]])
    merged["monitoring_gap"] = pd.Series(
        [
            list(found) if isinstance(found, list) else []
            for found in gaps["monitoring_gap"].reindex(merged.index)
        ],
        index=merged.index,
        dtype=object,
    )
    if "grade" in merged:
        merged["grade"] = merged["grade"].astype("Int64").fillna(max_grade(keyed.loc[merged.index]))
    noticed = pd.concat(
        [as_utc(merged["last_noticed_at"]), gaps["last_gap"].reindex(merged.index)], axis=1
    ).max(axis=1)
    ordered = in_priority_order(keyed.loc[merged.index].assign(_noticed=noticed), then="_noticed")
    return merged.loc[ordered.index].reset_index(drop=True)[columns]
