"""Patient timeline: one patient's counts over time against the lab's reference range, with events."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db.config import display_timezone
from monitor.analytes import ANALYTES
from ui import data, figures

CHARTED = ("wbc", "anc", "alc", "amc", "aec", "abc", "hgb", "plt")

st.title("Patient timeline")
patients = data.patients()
if patients.empty:
    st.info("No patients yet. Import results with `python -m monitor import FILE`.")
    st.stop()

keys = patients["patient_key"].tolist()
labels = dict(zip(keys, patients["patient_id"] + " · " + patients["name"].fillna("(no name)"), strict=True))
current = st.session_state.get("patient_key")
chosen = st.selectbox(
    "Patient",
    keys,
    index=keys.index(current) if current in keys else 0,
    format_func=labels.__getitem__,
    key="patient_select",
)
st.session_state["patient_key"] = chosen
patient = patients.set_index("patient_key").loc[chosen]
timezone = display_timezone()

facts = st.columns(5)
facts[0].metric("Patient ID", patient["patient_id"])
age = "?" if pd.isna(patient["age"]) else int(patient["age"])
facts[1].metric("Age / sex", f"{age} / {patient['sex'] or '?'}")
facts[2].metric("Teams", patient["teams"] or "none")
facts[3].metric(
    "Latest WBC (10^9/L)", "-" if pd.isna(patient["latest_wbc"]) else f"{patient['latest_wbc']:.2f}"
)
facts[4].metric(
    "Days since last CBC", "-" if pd.isna(patient["days_since_cbc"]) else int(patient["days_since_cbc"])
)

if patient["flags"]:
    with st.container(border=True):
        st.markdown("**Flags** (decision support: each says why it is raised)")
        for flag, sentence in zip(patient["flags"], patient["explanations"], strict=False):
            st.markdown(f"- **{flag.replace('_', ' ')}**: {sentence}")
results = data.results(chosen)
events = data.events(chosen)
analyte = (
    st.segmented_control(
        "Count", CHARTED, default="wbc", format_func=lambda code: ANALYTES[code].label, key="patient_analyte"
    )
    or "wbc"
)
st.plotly_chart(
    figures.count_figure(results, analyte, events=events, timezone=timezone),
    key="patient_chart",
)

with st.expander(f"Results ({len(results)})"):
    shown = results[
        ["collected_at", "analyte", "value", "unit", "ref_low", "ref_high", "status", "lab", "accession"]
    ]
    st.dataframe(shown, hide_index=True, width="stretch")
with st.expander(f"Clinical events ({len(events)})"):
    st.dataframe(events, hide_index=True, width="stretch")
