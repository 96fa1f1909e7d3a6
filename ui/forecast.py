"""The nadir forecast in words, as the Patient timeline and Treatment cycles pages show it by their charts.

Pure functions of a ``monitor.analysis.forecast.Forecast`` (the sentences, unit-tested), and ``show``, which
puts them on a page. Days are in the product's D notation (D1 = the dosing day = day 0 of the forecast, as in
the cycle table). Decision support: every forecast is shown with what the model assumes and how it was
validated (docs/clinical-basis.md, Nadir forecast).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.analysis.forecast import Forecast
from monitor.analysis.forecast.words import (
    ASSUMPTIONS,
    decision_support_caption,
    forecast_made,
    forecast_sentence,
    recovery_words,
    validation_words,
)
from ui.text import plain

__all__ = [
    "ASSUMPTIONS",
    "CHART_CAPTION",
    "cycle_label",
    "decision_support_caption",
    "forecast_made",
    "forecast_sentence",
    "recovery_words",
    "show",
    "validation_words",
]

# What the timeline's caption adds when a forecast is drawn.
CHART_CAPTION = (
    " Dashed line and light band on the differential: the ANC nadir forecast (median and 80 % band) ahead of "
    "the cycle's last ANC, its nadir marked with its 80 % interval while still ahead (with ANC selected)."
)


def cycle_label(forecast: Forecast, timezone: str, now: pd.Timestamp) -> str:
    """Which cycle the forecast is for: "Cycle 5 (D1 2026-11-20)", and whether its planned days are over by
    ``now`` (then the curve is the model's account of a past cycle, with nothing ahead)."""
    if forecast.cycle is None or forecast.cycle_start is None:
        return "Latest cycle"
    label = f"Cycle {forecast.cycle} (D1 {forecast.cycle_start.tz_convert(timezone):%Y-%m-%d}"
    horizon = forecast.horizon_days
    if horizon is not None and forecast.cycle_start + pd.Timedelta(days=horizon) <= now:
        return f"{label}; its {horizon:g} planned days are over)"
    return label + ")"


def show(forecast: Forecast | None, timezone: str) -> None:
    """The forecast's words on the page: nothing without chemotherapy, the reason in one muted line when there
    is no forecast, else the sentence with its decision-support caption and assumptions."""
    if forecast is None:
        return
    if not forecast_made(forecast):
        st.caption(plain(forecast_sentence(forecast)))
        return
    label = cycle_label(forecast, timezone, pd.Timestamp.now(tz="UTC"))
    st.markdown(f"**{plain(label)}:** {plain(forecast_sentence(forecast))}")
    st.caption(plain(decision_support_caption()))
    with st.expander("About this forecast"):
        for assumption in ASSUMPTIONS:
            st.markdown(f"- {plain(assumption)}")
        st.markdown(f"- {plain('Validation: ' + validation_words() + '.')}")
        st.markdown(f"- {plain('Model: ' + forecast.model + f'; {forecast.n_anc_used} ANC counts used.')}")
