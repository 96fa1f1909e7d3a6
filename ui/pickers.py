"""Widgets shared by pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st


def choose_patient(patients: pd.DataFrame, label: str, key: str) -> int:
    """A patient selector in the order given, remembering the patient across pages; returns its key."""
    keys = patients["patient_key"].tolist()
    names = patients["patient_id"] + " · " + patients["name"].fillna("(no name)")
    labels = dict(zip(keys, names, strict=True))
    current = st.session_state.get("patient_key")
    chosen = st.selectbox(
        label,
        keys,
        index=keys.index(current) if current in keys else 0,
        format_func=labels.__getitem__,
        key=key,
    )
    st.session_state["patient_key"] = chosen
    return int(chosen)
