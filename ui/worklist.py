"""The worklist as people read it: one line per patient, counts as reported, times in the site's zone.

The clinical order, filters and counts are ``monitor.analysis.triage``; this only words and lays them out.
"""

from __future__ import annotations

import pandas as pd

from monitor.analysis.cycles.schedule import day_date
from monitor.analysis.flags import flag_label
from monitor.analysis.triage import TIERS

# The Priority column's help: every tier in order (docs/clinical-basis.md, Worklist priority).
PRIORITY_HELP = "1 = most urgent. " + "; ".join(f"{tier}: {label}" for tier, label in TIERS.items())


def cycle_text(patients: pd.DataFrame, timezone: str = "UTC") -> pd.Series:
    """ "C5D15 · next dose D22 (2026-03-23)" style text for patients in a cycle ("" otherwise); D1 is the
    cycle's start day. Readiness ("ready", "NOT ready", "readiness unknown") only from its window before the
    expected next dose; past that day without a new dose, "dose was due D22" is added."""
    in_cycle = patients["cycle"].notna()
    day = patients["cycle_day"].astype("Float64")
    next_day = patients["next_dose_day"].astype("Float64")
    waiting = (day < patients["readiness_from_day"].astype("Float64")).fillna(False)
    overdue = (day > next_day).fillna(False)
    expected = "D" + (next_day + 1).astype("Int64").astype("string")
    ready = (
        patients["ready_now"]
        .map({True: "ready", False: "NOT ready"}, na_action="ignore")
        .fillna("readiness unknown")
        .astype("string")
    )
    when = ready.where(
        ~waiting, "next dose " + expected + " (" + day_date(patients["cycle_start"], next_day, timezone) + ")"
    )
    when = when.where(~overdue, "dose was due " + expected + " · " + ready)
    text = "C" + patients["cycle"].astype("string") + "D" + (patients["cycle_day"] + 1).astype("string")
    return (text + " · " + when).where(in_cycle, "").fillna("")


def _reported(
    values: pd.Series,
    comparators: pd.Series,
    statuses: pd.Series | None = None,
    lab_flags: pd.Series | None = None,
) -> pd.Series:
    """Counts as the lab reported them: "<0.10" for a censored result, "" when there is none, with the
    lab's own abnormal flag ("105.60 HH": docs/clinical-basis.md, The lab's abnormal flags), and
    "2.10 (preliminary)" for a preliminary one (docs/clinical-basis.md, Preliminary results)."""
    printed = values.map("{:.2f}".format, na_action="ignore").astype(object).where(values.notna(), "")
    text = comparators.fillna("") + printed
    if lab_flags is not None:
        flag = lab_flags.astype("string").str.strip()
        shown = (flag.notna() & flag.ne("")).fillna(False).astype(bool) & values.notna()
        text = text.where(~shown, text + " " + flag.astype(object))
    if statuses is None:
        return text
    preliminary = statuses.eq("preliminary").fillna(False).astype(bool) & values.notna()
    return text.where(~preliminary, text + " (preliminary)")


# A chip after the flags: a finding the status carries that is not a flag of monitor.analysis.flags.
CBC_DUE_CHIP = "CBC due"


# A chip where the nadir forecast's chance of a grade 4 nadir reaches the site's threshold, with the figure.
FORECAST_CHIP = "forecast grade 4"


def forecast_chip(chance: float) -> str:
    """ "forecast grade 4: 62 %" for a probability of 0.62."""
    return f"{FORECAST_CHIP}: {round(100 * chance):d} %"


def chips(shown: pd.DataFrame) -> pd.Series:
    """Each patient's flag labels (febrile neutropenia, a flag, first), then a "CBC due" chip where one is
    due (``cbc_due``: analysis.due), then a "forecast grade 4: 62 %" chip where the nadir forecast's chance
    of a grade 4 nadir reaches the site's threshold (``forecast_grade4``)."""
    due = shown.get("cbc_due", pd.Series(False, index=shown.index)).astype("boolean").fillna(False)
    low = shown.get("forecast_grade4", pd.Series(False, index=shown.index)).astype("boolean").fillna(False)
    chance = shown.get("p_grade4", pd.Series(None, index=shown.index, dtype=object))
    return pd.Series(
        [
            [
                *map(flag_label, listed),
                *([CBC_DUE_CHIP] if late else []),
                *([forecast_chip(float(p))] if grade4 else []),
            ]
            for late, grade4, p, listed in zip(
                due.astype(bool), low.astype(bool), chance, shown["flags"], strict=True
            )
        ],
        index=shown.index,
        dtype=object,
    )


def what_changed(alerts: pd.DataFrame) -> pd.Series:
    """Each alert's sentences in one line: its changes, then its monitoring gaps (CBCs due, missed)."""
    gaps = alerts.get("monitoring_gap", pd.Series([[]] * len(alerts), index=alerts.index, dtype=object))
    return pd.Series(
        ["; ".join([*found, *gap]) for found, gap in zip(alerts["changes"], gaps, strict=True)],
        index=alerts.index,
        dtype=object,
    )


def worklist_table(shown: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The worklist's columns for people, of a prioritised list (``triage.prioritised``)."""
    acknowledged = shown["acknowledged"].map({True: "yes", False: "no"}, na_action="ignore").fillna("—")
    return pd.DataFrame(
        {
            "Priority": shown["tier"],
            "Why": shown["priority_reason"],
            "Patient ID": shown["patient_id"],
            "Name": shown["name"].fillna(""),  # blank, not "None"
            "Grade": shown["grade"],
            "Flags": chips(shown),
            "WBC trend": shown["wbc_recent"],
            "WBC (10^9/L)": _reported(
                shown["latest_wbc"],
                shown["latest_wbc_comparator"],
                shown.get("latest_wbc_status"),
                shown.get("latest_wbc_lab_flag"),
            ),
            "ANC (10^9/L)": _reported(
                shown["latest_anc"],
                shown["latest_anc_comparator"],
                shown.get("latest_anc_status"),
                shown.get("latest_anc_lab_flag"),
            ),
            "Last CBC": shown["last_collected_at"].dt.tz_convert(timezone).dt.tz_localize(None),
            "Days since CBC": shown["days_since_cbc"],
            "Cycle": cycle_text(shown, timezone),
            "CBC due": shown.get("cbc_due_reason", pd.Series("", index=shown.index)).fillna(""),
            "Acknowledged": acknowledged,
            "Age": shown["age"],
            "Sex": shown["sex"].fillna(""),
            "Teams": shown["teams"].fillna(""),
        }
    )


def selected_patient(shown: pd.DataFrame, rows: object) -> int | None:
    """The key of the patient in the row the table reports selected, or None: the selection comes from the
    browser as JSON, so anything but one row number of the table shown (a number past its end, negative, not
    a number) selects nobody rather than failing the page or picking another row."""
    if not isinstance(rows, list) or len(rows) != 1:
        return None
    row = rows[0]
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(shown):
        return None
    return int(shown["patient_key"].iloc[row])
