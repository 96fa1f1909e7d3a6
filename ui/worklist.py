"""The worklist as people read it: one line per patient, counts as reported, times in the site's zone.

The clinical order, filters and counts are ``monitor.analysis.triage``; this only words and lays them out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

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


# The lineages the worklist shows a cell for: WBC, ANC and ALC always; haemoglobin and platelets only when
# low (CTCAE grade 1 or worse), with their name in the cell ("Hb G2 9.1").
ALWAYS_SHOWN = {"WBC": "wbc", "ANC": "anc", "ALC": "alc"}
WHEN_LOW = {"Hb": "hgb", "Plt": "plt"}
# On screen the two share one cell, the higher grade first ("Plt G3 40 · Hb G1 11.2").
LOW_OTHERS = "Hb · Plt"
# A count above its upper limit: the flag the status carries for it, or the lab's own high flag.
HIGH_FLAGS = {"wbc": "leukocytosis", "anc": "neutrophilia", "alc": "lymphocytosis"}
HIGH_MARK = "↑"

# Cell colours by CTCAE grade (1 pale to 4 strong red) and for a count above its upper limit; the text says
# the grade too, so the colour is never the only mark. Dark text on the pale ones, white on the strongest.
GRADE_CSS = {
    1: "background-color: #fde2dd; color: #31333f",
    2: "background-color: #f8b4a6; color: #31333f",
    3: "background-color: #ec6b56; color: #1a1a1a",
    4: "background-color: #b3261e; color: #ffffff",
}
HIGH_CSS = "background-color: #d8e6f7; color: #31333f"
# A count from a panel before the last CBC (which did not measure it): grey and italic, whatever its grade.
OLDER_CSS = "background-color: #f0f2f6; color: #808495; font-style: italic"
# The Priority cell's colour: the severity of its tier (tier 1 as a grade 4, tier 7 grey, tier 8 none).
TIER_CSS = {
    1: GRADE_CSS[4],
    2: GRADE_CSS[3],
    3: GRADE_CSS[2],
    4: GRADE_CSS[2],
    5: GRADE_CSS[1],
    6: GRADE_CSS[1],
    7: "background-color: #eeeef0; color: #31333f",
}

# The panel's pattern in a few words (monitor.analysis.patterns; "" when nothing is low).
PATTERN_WORDS = {
    "pancytopenia": "pancytopenia",
    "bicytopenia": "bicytopenia",
    "neutropenia_and_lymphopenia": "ANC + ALC low",
    "isolated_neutropenia": "ANC only",
    "isolated_lymphopenia": "ALC only",
    "leukopenia": "WBC only",
    "anaemia": "Hb only",
    "thrombocytopenia": "Plt only",
    "none": "",
}

# The columns on screen, in order; the others (and these) are in the CSV. ``Days since CBC`` shows as
# "Last CBC" and ``Cycle day`` as "Cycle" (column_config).
SCREEN_COLUMNS = (
    "Priority",
    "Why",
    "Patient ID",
    "Name",
    *ALWAYS_SHOWN,
    LOW_OTHERS,
    "Pattern",
    "Days since CBC",
    "Cycle day",
)
# Not in the CSV: the screen's compact forms (the CSV has the counts and the full cycle text instead) and the
# WBC series (the patient's page charts it; the screen leaves it out for the counts' room at 1366 px).
SCREEN_ONLY = (LOW_OTHERS, "WBC trend", "Cycle day")


def _column(shown: pd.DataFrame, name: str, dtype: str = "object") -> pd.Series:
    """A column of the status, or an empty one where the list does not carry it (yet)."""
    if name in shown:
        return shown[name]
    return pd.Series(pd.NA, index=shown.index, dtype=dtype)


def _value(shown: pd.DataFrame, analyte: str) -> pd.Series:
    """The latest count as reported, compactly: "0.32", "<0.1", "105.6" ("" when there is none), the lab's
    abnormal flag after it ("105.6 HH"), and " (prelim.)" when preliminary."""
    value = pd.to_numeric(_column(shown, f"latest_{analyte}"), errors="coerce").astype("float64")
    printed = value.round(2).map("{:g}".format, na_action="ignore").astype("string")
    comparator = _column(shown, f"latest_{analyte}_comparator").astype("string").fillna("")
    text = (comparator + printed).fillna("")
    # The lab's own abnormal flag beside the count it came with ("0.1 LL"); "N" (normal) says nothing.
    lab = _column(shown, f"latest_{analyte}_lab_flag").astype("string").str.strip().fillna("")
    flagged = lab.ne("") & lab.str.upper().ne("N") & value.notna().to_numpy(dtype=bool)
    text = text.where(~flagged.fillna(False), text + " " + lab)
    preliminary = _column(shown, f"latest_{analyte}_status").astype("string").eq("preliminary")
    return text.where(~(preliminary.fillna(False) & value.notna()), text + " (prelim.)")


def lineage_grade(shown: pd.DataFrame, analyte: str) -> pd.Series:
    """The latest CTCAE grade of ``analyte`` (NA when ungraded or not carried)."""
    return pd.to_numeric(_column(shown, f"latest_{analyte}_grade"), errors="coerce").astype("Float64")


def above_limit(shown: pd.DataFrame, analyte: str) -> pd.Series:
    """Whether the latest count is above its upper limit by the product's own judgement: the status's flag
    for it (``HIGH_FLAGS``). The lab's own flag is shown beside the count, not taken for it (a lab may flag
    against another range)."""
    flag = HIGH_FLAGS.get(analyte)
    flagged = (
        shown["flags"].map(lambda listed: flag in listed) if flag else pd.Series(False, index=shown.index)
    )
    return flagged.astype(bool)


def from_an_earlier_panel(shown: pd.DataFrame, analyte: str) -> pd.Series:
    """Whether the latest ``analyte`` was drawn before the patient's last CBC (the last panel did not
    measure it): its cell is greyed, so that an older count is not read as today's."""
    at = pd.to_datetime(_column(shown, f"latest_{analyte}_at"), utc=True, errors="coerce")
    last = pd.to_datetime(_column(shown, "last_collected_at"), utc=True, errors="coerce")
    return pd.Series((at < last).fillna(False).to_numpy(dtype=bool), index=shown.index)


def high_grade_of(shown: pd.DataFrame, analyte: str) -> pd.Series:
    """The CTCAE grade of the latest count above its upper limit (NA when CTCAE grades none)."""
    column = _column(shown, f"latest_{analyte}_high_grade")
    return pd.to_numeric(column, errors="coerce").astype("Float64")


def lineage_cells(shown: pd.DataFrame) -> pd.DataFrame:
    """One compact cell per lineage: "G4 0.32" (CTCAE grade and count) under WBC, ANC and ALC, "↑ 105.6"
    above the upper limit ("↑G3 105.6" where CTCAE grades it), the bare count when neither; "Hb G2 9.1" and
    "Plt G3 40" only when low (grade 1 or worse), "" otherwise."""
    cells = {}
    for label, analyte in {**ALWAYS_SHOWN, **WHEN_LOW}.items():
        value, grade = _value(shown, analyte), lineage_grade(shown, analyte)
        graded = "G" + grade.astype("Int64").astype("string") + " " + value
        low = (grade >= 1).fillna(False).to_numpy(dtype=bool)
        if label in WHEN_LOW:
            cells[label] = (label + " " + graded).where(low, "").fillna("")
            continue
        high = above_limit(shown, analyte).to_numpy(dtype=bool) & value.ne("").to_numpy(dtype=bool)
        # CTCAE grades some high counts (Leukocytosis, Lymphocyte count increased): "↑G3 105.6".
        high_grade = high_grade_of(shown, analyte)
        marked = (HIGH_MARK + "G" + high_grade.astype("Int64").astype("string")).where(
            (high_grade >= 1).fillna(False), HIGH_MARK
        )
        text = value.where(~high, marked + " " + value)
        cells[label] = text.where(~low, graded).fillna("")
    return pd.DataFrame(cells, index=shown.index)


def _others_first(shown: pd.DataFrame) -> pd.Series:
    """Whether platelets go first in the shared Hb · Plt cell: their grade is the higher."""
    hgb, plt = lineage_grade(shown, "hgb").fillna(0), lineage_grade(shown, "plt").fillna(0)
    return pd.Series((plt > hgb).to_numpy(dtype=bool), index=shown.index)


def low_others(shown: pd.DataFrame, cells: pd.DataFrame) -> pd.Series:
    """The Hb and Plt cells (``lineage_cells``) in one: those shown, the higher grade first."""
    first = cells["Hb"].where(~_others_first(shown), cells["Plt"])
    second = cells["Plt"].where(~_others_first(shown), cells["Hb"])
    both = first.ne("") & second.ne("")
    return (first + pd.Series(" · ", index=shown.index).where(both, "") + second).astype(object)


def pattern_words(shown: pd.DataFrame) -> pd.Series:
    """The pattern of the latest panel in a few words (``PATTERN_WORDS``; "" when none or unknown)."""
    pattern = _column(shown, "pattern").astype("string")
    known = pattern.map(PATTERN_WORDS, na_action="ignore")
    return known.fillna(pattern.str.replace("_", " ")).fillna("").astype(object)


def cycle_day(shown: pd.DataFrame) -> pd.Series:
    """ "C5D15" for a patient in a cycle (D1 = the day chemotherapy started), "" otherwise."""
    day = (pd.to_numeric(shown["cycle_day"], errors="coerce") + 1).astype("Int64").astype("string")
    text = "C" + shown["cycle"].astype("Int64").astype("string") + "D" + day
    return text.where(shown["cycle"].notna(), "").fillna("")


def why(shown: pd.DataFrame) -> pd.Series:
    """The finding that sets the priority, then the chips that are not flags and change no tier ("CBC due"
    unless the reason already says it, "forecast grade 4: 62 %"): the Flags column is in the CSV only, so
    these would otherwise not be seen on screen."""
    chipped = chips(shown)
    extra = [
        [chip for chip in listed if chip == CBC_DUE_CHIP or chip.startswith(FORECAST_CHIP)]
        for listed in chipped
    ]
    return pd.Series(
        [
            " · ".join([reason, *(chip for chip in more if chip.lower() not in str(reason).lower())])
            for reason, more in zip(shown["priority_reason"].fillna(""), extra, strict=True)
        ],
        index=shown.index,
        dtype=object,
    )


def worklist_table(shown: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The worklist's columns for people, of a prioritised list (``triage.prioritised``): the screen's
    (``SCREEN_COLUMNS``) and the CSV's (every column but ``SCREEN_ONLY``)."""
    acknowledged = shown["acknowledged"].map({True: "yes", False: "no"}, na_action="ignore").fillna("—")
    cells = lineage_cells(shown)
    table = pd.DataFrame(
        {
            "Priority": shown["tier"],
            "Why": why(shown),
            "Patient ID": shown["patient_id"],
            "Name": shown["name"].fillna(""),  # blank, not "None"
            **cells,
            LOW_OTHERS: low_others(shown, cells),
            "Pattern": pattern_words(shown),
            "WBC trend": shown["wbc_recent"],
            "Last CBC": shown["last_collected_at"].dt.tz_convert(timezone).dt.tz_localize(None),
            "Days since CBC": shown["days_since_cbc"],
            "Cycle day": cycle_day(shown),
            "Cycle": cycle_text(shown, timezone),
            "Flags": chips(shown),
            "Grade": shown["grade"],
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
            "CBC due": shown.get("cbc_due_reason", pd.Series("", index=shown.index)).fillna(""),
            "Acknowledged": acknowledged,
            "Age": shown["age"],
            "Sex": shown["sex"].fillna(""),
            "Teams": shown["teams"].fillna(""),
        }
    )
    return table.reset_index(drop=True)


def worklist_colours(shown: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The CSS of each cell of ``table`` (``worklist_table(shown)``): the Priority cell by its tier, each
    lineage cell by its grade (``GRADE_CSS``) or as above the upper limit (``HIGH_CSS``); "" elsewhere."""
    css = pd.DataFrame("", index=table.index, columns=table.columns)
    tiers = pd.to_numeric(shown["tier"], errors="coerce").to_numpy()
    css["Priority"] = [TIER_CSS.get(int(tier), "") if tier == tier else "" for tier in tiers]
    for label, analyte in {**ALWAYS_SHOWN, **WHEN_LOW}.items():
        grade = lineage_grade(shown, analyte).fillna(0).clip(upper=4).astype(int).to_numpy()
        colour = pd.Series([GRADE_CSS.get(int(g), "") for g in grade], index=table.index, dtype=object)
        if label in ALWAYS_SHOWN:
            high = above_limit(shown, analyte).to_numpy(dtype=bool) & (grade == 0)
            high_grade = high_grade_of(shown, analyte).fillna(0).clip(upper=4).astype(int).to_numpy()
            high_css = pd.Series([GRADE_CSS.get(int(g), HIGH_CSS) for g in high_grade], index=table.index)
            colour = colour.mask(high & table[label].ne("").to_numpy(dtype=bool), high_css)
        css[label] = colour.where(table[label].ne(""), "")
        older = from_an_earlier_panel(shown, analyte).to_numpy(dtype=bool) & table[label].ne("").to_numpy(
            dtype=bool
        )
        css.loc[older, label] = OLDER_CSS
    worst = pd.concat([lineage_grade(shown, a).fillna(0) for a in WHEN_LOW.values()], axis=1).max(axis=1)
    worst_css = [GRADE_CSS.get(int(g), "") for g in worst.clip(upper=4).astype(int).to_numpy()]
    css[LOW_OTHERS] = pd.Series(worst_css, index=table.index, dtype=object).where(
        table[LOW_OTHERS].ne(""), ""
    )
    return css


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


# Rows the worklist's table shows before it scrolls (Streamlit's own default is 10).
TABLE_ROWS = 15
_ROW_PX, _HEADER_PX = 35, 38


def table_height(rows: int) -> int:
    """The table's height in pixels: every row up to ``TABLE_ROWS``, then it scrolls."""
    return _HEADER_PX + _ROW_PX * max(1, min(rows, TABLE_ROWS))


# Above this many cells (1,000 patients) the table is shown without colours: pandas' Styler works cell by
# cell, about 0.65 s per 1,000 patients on a small server, and a worklist rerun should stay under a second
# (docs/benchmarks.md). The cells still say each grade.
MAX_STYLED_CELLS = 25_000


def coloured(table: pd.DataFrame) -> bool:
    """Whether ``table`` is small enough to be shown with its colours (``MAX_STYLED_CELLS``)."""
    return table.size <= MAX_STYLED_CELLS


def styled(shown: pd.DataFrame, table: pd.DataFrame) -> Styler | pd.DataFrame:
    """``table`` with its colours (``worklist_colours``), or as it is when too large to colour."""
    if not coloured(table):
        return table
    colours = worklist_colours(shown, table)
    return table.style.apply(lambda _: colours, axis=None)


def column_config() -> dict[str, Any]:
    """The on-screen columns' labels, help and widths: together they fit a 1366-pixel screen with the
    sidebar open, without scrolling sideways."""
    counts = {
        label: st.column_config.TextColumn(
            label,
            help=f"The latest {label}: its CTCAE grade and count (x10^9/L), e.g. G4 0.32, then the lab's own "
            f"flag (L, H, LL, HH, A, AA); {HIGH_MARK} above the upper limit ({HIGH_MARK}G3 105.6 where CTCAE "
            "grades it); grey and italic: from a panel before the last CBC, which did not measure it",
            width=86,
        )
        for label in ALWAYS_SHOWN
    }
    return {
        "Priority": st.column_config.NumberColumn("Priority", help=PRIORITY_HELP, width=56, pinned=True),
        "Why": st.column_config.TextColumn(
            help="The finding that sets the priority, then a CBC due and the nadir forecast's grade 4 chance "
            "where they apply; every flag is in the CSV and on the patient's page",
            width=112,
        ),
        "Patient ID": st.column_config.TextColumn(width=80),
        "Name": st.column_config.TextColumn(width=72),
        **counts,
        LOW_OTHERS: st.column_config.TextColumn(
            LOW_OTHERS,
            help="Haemoglobin (g/dL) and platelets (x10^9/L) when low: CTCAE grade and value, the higher "
            "grade first (each has its own column in the CSV)",
            width=74,
        ),
        "Pattern": st.column_config.TextColumn(
            help="Which lineages the latest panel shows low together "
            "(docs/clinical-basis.md, Panel patterns)",
            width=80,
        ),
        "Days since CBC": st.column_config.NumberColumn(
            "Last CBC",
            help="Calendar days since the last CBC (its date and time are in the CSV)",
            format="%d d ago",
            width=74,
        ),
        "Cycle day": st.column_config.TextColumn(
            "Cycle",
            help="C#D#: the cycle and its day (D1 = the day chemotherapy started); the next dose and "
            "readiness for it are in the CSV and on the patient's page",
            width=52,
        ),
    }
