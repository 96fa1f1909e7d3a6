"""The nadir forecast in words, as the Patient timeline and Treatment cycles pages show it by their charts.

Pure functions of a ``monitor.analysis.forecast.Forecast`` (the sentences, unit-tested), and ``show``, which
puts them on a page. Days are in the product's D notation (D1 = the dosing day = day 0 of the forecast, as in
the cycle table). Decision support: every forecast is shown with what the model assumes and how it was
validated (docs/clinical-rules.md, Nadir forecast).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from monitor.analysis.cycles import cycle_notation
from monitor.analysis.forecast import GRADE4_BELOW, MODEL, Forecast
from monitor.analysis.forecast.validation import VALIDATION
from ui.text import plain

ASSUMPTIONS = (
    "The Friberg 2002 myelosuppression model (proliferating cells, three transit compartments, circulating "
    "neutrophils, feedback) with population priors, fitted to this patient's own ANC counts (all cycles, the "
    "current one's so far).",
    "Every chemotherapy event is taken as a dose of the same kind, scaled only when its regimen text names "
    'the dose ("docetaxel 60 mg/m2" after 75); otherwise a change of drug or dose is seen as cycle-to-cycle '
    "variability, and nadirs deepening over cycles as a trend.",
    "The typical patient's response is tuned to a docetaxel-like nadir: the patient's own counts from D5 of "
    "a cycle are needed before any forecast, and early forecasts lean on that typical response.",
    "No G-CSF: a cycle with G-CSF acting, or after a cycle with G-CSF, is not forecast, and counts drawn "
    "while G-CSF acts are left out of the fit. Cycles of 10 days or less (weekly) are not forecast.",
    "The marrow is taken as steady before the first dose (steroids, infection or recent chemotherapy break "
    "that), and ANC only is used.",
    "The nadir and its interval are the model's count, without a laboratory's own error; the band around "
    "the curve is where a count drawn that day would fall.",
)


# What the timeline's caption adds when a forecast is drawn.
CHART_CAPTION = (
    " Dashed line and light band on the differential: the ANC nadir forecast (median and 80 % band) ahead of "
    "the cycle's last ANC, its nadir marked with its 80 % interval while still ahead (with ANC selected)."
)


def forecast_made(forecast: Forecast | None) -> bool:
    """Whether there is a forecast to show (not None, not a reason)."""
    return forecast is not None and forecast.reason is None and forecast.nadir_anc is not None


def _count(value: float) -> str:
    return f"{value:.2f}"


def _percent(share: float) -> str:
    """A probability from posterior draws: never shown as certain either way."""
    percent = round(100 * share)
    return "> 99 %" if percent > 99 else "< 1 %" if percent < 1 else f"{percent} %"


def _days(window: tuple[int, int]) -> str:
    first, last = (cycle_notation(day) for day in window)
    return first if first == last else f"{first}-{last}"


def recovery_words(forecast: Forecast) -> str:
    """When the median forecast is back at the site's recovery ANC (1.5 by default), in D notation (the
    calendar day in the site's zone it happens on)."""
    level = forecast.recovery_threshold
    if forecast.recovery_calendar_day is not None:
        return f"back above {level:g} on {cycle_notation(forecast.recovery_calendar_day)}"
    if forecast.nadir_anc_low is not None and forecast.nadir_anc_low >= level:
        return f"not expected to fall below {level:g}"
    if forecast.nadir_anc is not None and forecast.nadir_anc >= level:
        return f"expected to stay above {level:g} (its 80 % interval reaches below)"
    return f"not back above {level:g} within the cycle's planned {forecast.horizon_days:g} days"


def forecast_sentence(forecast: Forecast) -> str:
    """The forecast in one sentence, or "No nadir forecast: REASON" when there is none.

    >>> forecast_sentence(Forecast(2, None, reason="not enough data: no ANC yet from D5 of a cycle"))
    'No nadir forecast: not enough data: no ANC yet from D5 of a cycle'
    """
    if not forecast_made(forecast):
        return f"No nadir forecast: {forecast.reason or 'none computed'}"
    assert forecast.nadir_anc_low is not None and forecast.nadir_anc_high is not None
    assert forecast.nadir_window is not None and forecast.p_grade4 is not None
    low, high = _count(forecast.nadir_anc_low), _count(forecast.nadir_anc_high)
    what = "Fitted nadir (its window has passed)" if forecast.nadir_passed else "Nadir forecast"
    measured, on = forecast.observed_nadir_anc, forecast.observed_nadir_calendar_day
    if measured is not None and measured < GRADE4_BELOW and on is not None:
        chance = f"grade 4 measured ({_count(measured)} on {cycle_notation(on)})"
    else:
        chance = f"{_percent(forecast.p_grade4)} chance of grade 4 (ANC < {GRADE4_BELOW:g})"
    return (
        f"{what} {_count(forecast.nadir_anc)} x10^9/L (80 % interval {low}-{high}) on "
        f"{_days(forecast.nadir_window)}; {chance}; {recovery_words(forecast)}"
    )


def _figure(validation: Mapping[str, float | int | str], key: str, kind: str) -> str:
    value = validation.get(key)
    if value is None or isinstance(value, str) or math.isnan(value):
        return "not yet measured"
    if kind == "share":
        return f"{round(100 * value)} %"
    if kind == "count":
        return f"{value:.2f} x10^9/L"
    if kind == "days":
        return f"{value:.1f} days"
    return f"{value:.2f}"


def validation_words(validation: Mapping[str, float | int | str] = VALIDATION) -> str:
    """The validation figures in one line (``monitor.analysis.forecast.validation``)."""
    if not validation.get("patients"):
        return f"no validation run recorded yet ({validation.get('run_date', '?')})"
    return (
        f"{validation.get('patients', 0)} simulated patients, run {validation.get('run_date', '?')}: "
        f"the 80 % interval held the true nadir in {_figure(validation, 'coverage_80', 'share')}; "
        f"grade 4 AUC {_figure(validation, 'auc_g4', 'ratio')}, sensitivity "
        f"{_figure(validation, 'sensitivity_g4', 'share')} and specificity "
        f"{_figure(validation, 'specificity_g4', 'share')} at a 50 % chance (90 % sensitivity at "
        f"{_figure(validation, 'specificity_at_90_sensitivity', 'share')} specificity from a "
        f"{_figure(validation, 'threshold_for_90_sensitivity', 'share')} chance); "
        f"nadir ANC median error {_figure(validation, 'nadir_anc_mae', 'count')} (previous cycle's nadir: "
        f"{_figure(validation, 'naive_nadir_anc_mae', 'count')}); nadir day median error "
        f"{_figure(validation, 'nadir_day_mae', 'days')}"
    )


def decision_support_caption(
    validation: Mapping[str, float | int | str] = VALIDATION, model: str = MODEL
) -> str:
    """What labels every forecast: decision support, its model, its assumptions in short, its validation."""
    return (
        "Decision support, not a prediction to act on alone: a model fitted to this patient's counts "
        f"({model}), assuming every chemotherapy event is a dose of the same kind and no G-CSF; "
        f"validated on simulated patients only: {validation_words(validation)}."
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
