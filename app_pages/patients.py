"""Patients: everyone in the store, with the latest WBC and ANC against their lab's lower limit."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db.config import display_timezone
from ui import data

st.title("Patients")
patients = data.patients()
timezone = display_timezone()

wbc_low = patients["latest_wbc"] < patients["latest_wbc_lln"]
anc_low = patients["latest_anc"] < patients["latest_anc_lln"]
counts = st.columns(4)
counts[0].metric("Patients", len(patients))
counts[1].metric("Latest WBC below its lower limit", int(wbc_low.sum()))
counts[2].metric("Latest ANC below its lower limit", int(anc_low.sum()))
counts[3].metric("No CBC for 30 days or more", int((patients["days_since_cbc"] >= 30).sum()))

filters = st.columns([2, 3])
teams = sorted({team for listed in patients["teams"] for team in listed.split(", ") if team})
team = filters[0].selectbox("Team", ["All teams", *teams], key="patients_team")
search = filters[1].text_input("Search identifier or name", key="patients_search")

shown = patients
if team != "All teams":
    shown = shown[("|" + shown["teams"].str.replace(", ", "|") + "|").str.contains(f"|{team}|", regex=False)]
if search:
    needle = search.strip().lower()
    shown = shown[
        shown["patient_id"].str.lower().str.contains(needle, regex=False)
        | shown["name"].fillna("").str.lower().str.contains(needle, regex=False)
    ]


def _reported(values: pd.Series, comparators: pd.Series) -> pd.Series:
    """Counts as the lab reported them: "<0.10" for a censored result, "" when there is none."""
    text = values.map("{:.2f}".format, na_action="ignore").fillna("")
    return comparators.fillna("") + text


def _below_range(frame: pd.DataFrame) -> pd.Series:
    """Which of the latest WBC and ANC are below the lower limit that applies, and whose limit it is."""
    parts = []
    for analyte, label in (("wbc", "WBC"), ("anc", "ANC")):
        low = frame[f"latest_{analyte}"] < frame[f"latest_{analyte}_lln"]
        source = frame[f"latest_{analyte}_range_source"].fillna("")
        parts.append((label + " (" + source + " limit)").where(low, ""))
    return (parts[0] + "; " + parts[1]).str.strip("; ")


def _local_date(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert(timezone).dt.tz_localize(None)


table = pd.DataFrame(
    {
        "Patient ID": shown["patient_id"],
        "Name": shown["name"],
        "Age": shown["age"],
        "Sex": shown["sex"],
        "Teams": shown["teams"],
        "WBC (10^9/L)": _reported(shown["latest_wbc"], shown["latest_wbc_comparator"]),
        "ANC (10^9/L)": _reported(shown["latest_anc"], shown["latest_anc_comparator"]),
        "WBC grade": shown["latest_wbc_grade"].astype("Int64"),
        "ANC grade": shown["latest_anc_grade"].astype("Int64"),
        "Flags": shown["flags"].map(" · ".join),
        "Below the lower limit": _below_range(shown),
        "Last CBC": _local_date(shown["last_collected_at"]),
        "Days since CBC": shown["days_since_cbc"],
    }
)
st.caption(
    f"{len(table)} of {len(patients)} patients. Grades are CTCAE v5.0 for the latest result, against the "
    "lower limit that applies (a patient-specific range first, then the lab's). Select a row to open "
    "the patient's timeline."
)
selection = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="patients_table",
    column_config={
        "Last CBC": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    },
)
st.download_button(
    "Download this list (CSV)", table.to_csv(index=False), file_name="patients.csv", mime="text/csv"
)

rows = selection.selection.rows if selection else []
if rows:
    st.session_state["patient_key"] = int(shown["patient_key"].iloc[rows[0]])
    st.switch_page("app_pages/patient.py")
