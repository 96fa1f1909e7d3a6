"""The nadir forecast in words, the same on the pages and on the command line.

Days are in the product's D notation (D1 = the dosing day = day 0 of the forecast, as in the cycle table),
from the forecast's calendar days in the site's zone. Decision support: every forecast is shown with what
the model assumes (``ASSUMPTIONS``) and how it was validated (``validation_words``; docs/clinical-basis.md,
Nadir forecast). Pure functions of a ``Forecast``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from monitor.analysis.cycles.display import cycle_notation
from monitor.analysis.forecast import GRADE4_BELOW, MODEL, Forecast
from monitor.analysis.forecast.validation import VALIDATION

__all__ = [
    "ASSUMPTIONS",
    "decision_support_caption",
    "forecast_made",
    "forecast_sentence",
    "recovery_words",
    "validation_words",
]

ASSUMPTIONS = (
    "The Friberg 2002 myelosuppression model (proliferating cells, three transit compartments, circulating "
    "neutrophils, feedback) with population priors, fitted to this patient's own ANC counts (all cycles, the "
    "current one's so far).",
    "Every chemotherapy event is taken as a dose of the same kind, scaled only when its regimen text or "
    'label names the dose ("docetaxel 60 mg/m2" after 75); otherwise a change of drug or dose is seen as '
    "cycle-to-cycle variability, and nadirs deepening over cycles as a trend of the drug effect (a baseline "
    "falling over cycles is not modelled).",
    'Regimens given on consecutive days ("days 1-5") are not forecast: each day would be read as a cycle.',
    "The typical patient's response is tuned to a docetaxel-like nadir: the patient's own counts from D5 of "
    "a cycle are needed before any forecast, and early forecasts lean on that typical response.",
    "No G-CSF: a cycle with G-CSF acting, or after a cycle with G-CSF, is not forecast, and counts drawn "
    "while G-CSF acts are left out of the fit. Cycles of 10 days or less (weekly) are not forecast.",
    "The marrow is taken as steady before the first dose (steroids, infection or recent chemotherapy break "
    "that), and ANC only is used.",
    "The nadir and its interval are the model's count, without a laboratory's own error; the band around "
    "the curve is where a count drawn that day would fall. A grade 4 count measured in the cycle makes grade "
    '4 certain; a result reported as "<0.1" is used as 0.1; negative counts are left out.',
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
        return f"expected back above {level:g} on {cycle_notation(forecast.recovery_calendar_day)}"
    if forecast.nadir_anc_low is not None and forecast.nadir_anc_low >= level:
        return f"not expected to fall below {level:g}"
    if forecast.nadir_anc is not None and forecast.nadir_anc >= level:
        return f"expected to stay above {level:g} (its 80 % interval reaches below)"
    return f"not expected back above {level:g} within the cycle's planned {forecast.horizon_days:g} days"


def forecast_sentence(forecast: Forecast) -> str:
    """The forecast in one sentence, or "No nadir forecast: REASON" when there is none.

    >>> forecast_sentence(Forecast(2, None, reason="not enough data: no ANC yet from D5 of a cycle"))
    'No nadir forecast: not enough data: no ANC yet from D5 of a cycle'
    """
    if not forecast_made(forecast):
        return f"No nadir forecast: {(forecast.reason or 'none computed').removeprefix('not forecast: ')}"
    assert forecast.nadir_anc_low is not None and forecast.nadir_anc_high is not None
    assert forecast.nadir_window is not None and forecast.p_grade4 is not None
    assert forecast.nadir_anc is not None
    low, high = _count(forecast.nadir_anc_low), _count(forecast.nadir_anc_high)
    measured, on = forecast.observed_nadir_anc, forecast.observed_nadir_calendar_day
    seen = (
        ""
        if measured is None or on is None
        else f"lowest measured {_count(measured)} on {cycle_notation(on)}"
    )
    if measured is not None and measured < GRADE4_BELOW and seen:
        chance = f"grade 4 measured ({seen.removeprefix('lowest measured ')})"
    elif forecast.nadir_passed:
        # A past window: what was measured, and the model's chance that a lower count went unseen.
        measured_words = f"grade 4 not measured ({seen})" if seen else "no count measured from D2"
        chance = (
            f"{measured_words}; model: {_percent(forecast.p_grade4)} chance it fell below {GRADE4_BELOW:g}"
        )
    else:
        chance = f"{_percent(forecast.p_grade4)} chance of grade 4 (ANC < {GRADE4_BELOW:g})"
        if measured is not None and seen and measured < forecast.nadir_anc:
            chance += f"; {seen}"
    what = "Fitted nadir (its window has passed)" if forecast.nadir_passed else "Nadir forecast"
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
        f"{validation.get('patients', 0)} simulated patients, "
        f"{validation.get('held_out', 'held-out cycles')}, run {validation.get('run_date', '?')}: "
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
