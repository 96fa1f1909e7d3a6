"""The nadir forecast where people read it: its sentence (D notation, rounding, the cases without a recovery),
the decision-support caption made from the validation figures, and its curve on the timeline and the cycle
overlay, drawn only ahead of the cycle's last ANC. Pure functions; the pages are in test_forecast_pages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from monitor.analysis.forecast import MODEL, Forecast
from monitor.analysis.timeline import marked_results
from ui.forecast import (
    cycle_label,
    decision_support_caption,
    forecast_sentence,
    recovery_words,
    validation_words,
)
from ui.timeline import cycle_overlay_figure, timeline_figure

START = pd.Timestamp("2026-11-20T16:00Z")  # the cycle's first dose
VALIDATION = {
    "patients": 240,
    "coverage_80": 0.8125,
    "sensitivity_g4": 0.917,
    "specificity_g4": 0.74,
    "auc_g4": 0.9123,
    "threshold_for_90_sensitivity": 0.287,
    "specificity_at_90_sensitivity": 0.767,
    "nadir_anc_mae": 0.114,
    "naive_nadir_anc_mae": 0.262,
    "nadir_day_mae": 1.04,
    "run_date": "2026-12-03",
}
# (the recorded figures name the cycles held out: "cycle 3 or later, forecast at its day 4")


def _curve(days: np.ndarray) -> pd.DataFrame:
    median = 4.0 - 3.6 * np.exp(-(((days - 10.0) / 3.0) ** 2))  # lowest (0.4) on day 10
    return pd.DataFrame(
        {
            "day": days,
            "at": START + pd.to_timedelta(days, unit="D"),
            "median": median,
            "low": median * 0.5,
            "high": median * 1.8,
        }
    )


FORECAST = Forecast(
    5,
    START,
    nadir_anc=0.4,
    nadir_anc_low=0.2,
    nadir_anc_high=0.8,
    nadir_day=10.0,
    nadir_window=(9, 11),
    recovery_day=15.2,
    recovery_calendar_day=16,
    p_grade4=0.62,
    n_anc_used=14,
    horizon_days=21.0,
    curve=_curve(np.arange(0.0, 21.0 + 1e-9, 1 / 12)),
)


def test_the_forecast_in_one_sentence_in_d_notation() -> None:
    assert forecast_sentence(FORECAST) == (
        "Nadir forecast 0.40 x10^9/L (80 % interval 0.20-0.80) on D10-D12; 62 % chance of grade 4 "
        "(ANC < 0.5); expected back above 1.5 on D17"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"nadir_window": (8, 8)}, "on D9;"),  # a one-day window is one day
        (
            {"nadir_anc": 0.456, "nadir_anc_low": 0.3, "nadir_anc_high": 1.234},
            "0.46 x10^9/L (80 % interval 0.30-1.23)",
        ),
        ({"p_grade4": 1.0}, "> 99 % chance of grade 4"),  # 400 draws never make it certain
        ({"p_grade4": 0.998}, "> 99 % chance of grade 4"),
        ({"p_grade4": 0.0}, "< 1 % chance of grade 4"),
        ({"p_grade4": 0.004}, "< 1 % chance of grade 4"),
        ({"p_grade4": 0.125}, "12 % chance of grade 4"),
    ],
)
def test_the_sentence_rounds_counts_to_two_places_and_never_says_certain(changes, expected) -> None:
    assert expected in forecast_sentence(dataclasses.replace(FORECAST, **changes))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # 15.2 days after an evening dose is the 16th calendar day after the dosing day: D17
        ({"recovery_day": 15.2, "recovery_calendar_day": 16}, "expected back above 1.5 on D17"),
        ({"recovery_day": 14.0, "recovery_calendar_day": 14}, "expected back above 1.5 on D15"),
        (
            {"recovery_day": 15.0, "recovery_calendar_day": 15, "recovery_threshold": 1.0},
            "expected back above 1 on D16",
        ),
        (
            {
                "recovery_day": None,
                "recovery_calendar_day": None,
                "nadir_anc": 2.1,
                "nadir_anc_low": 1.6,
                "nadir_anc_high": 2.6,
            },
            "not expected to fall below 1.5",
        ),
        (
            {
                "recovery_day": None,
                "recovery_calendar_day": None,
                "nadir_anc": 1.7,
                "nadir_anc_low": 1.2,
                "nadir_anc_high": 2.2,
            },
            "expected to stay above 1.5 (its 80 % interval reaches below)",
        ),
        (
            {"recovery_day": None, "recovery_calendar_day": None, "nadir_anc": 0.2, "nadir_anc_low": 0.1},
            "not expected back above 1.5 within the cycle's planned 21 days",
        ),
    ],
)
def test_recovery_in_words(changes, expected) -> None:
    assert recovery_words(dataclasses.replace(FORECAST, **changes)) == expected


def test_a_measured_grade_4_and_a_passed_window_are_said_as_such() -> None:
    seen = dataclasses.replace(
        FORECAST, p_grade4=1.0, observed_nadir_anc=0.35, observed_nadir_day=8.2, observed_nadir_calendar_day=8
    )
    assert "; grade 4 measured (0.35 on D9);" in forecast_sentence(seen)
    passed = dataclasses.replace(seen, nadir_passed=True)
    assert forecast_sentence(passed).startswith("Fitted nadir (its window has passed) 0.40 x10^9/L")


def test_without_a_forecast_the_sentence_is_the_reason() -> None:
    missing = Forecast(2, START, reason="not enough data: no ANC after a dose yet")
    assert forecast_sentence(missing) == "No nadir forecast: not enough data: no ANC after a dose yet"


def test_the_caption_says_decision_support_with_the_model_and_the_validation_figures() -> None:
    caption = decision_support_caption(VALIDATION)
    assert caption.startswith(
        "Decision support, not a prediction to act on alone: a model fitted to this patient's counts "
        f"({MODEL}), assuming every chemotherapy event is a dose of the same kind and no G-CSF; validated on "
        "simulated patients only: "
    )
    assert validation_words(VALIDATION) == (
        "240 simulated patients, held-out cycles, run 2026-12-03: the 80 % interval held the true nadir in "
        "81 %; grade 4 AUC "
        "0.91, sensitivity 92 % and specificity 74 % at a 50 % chance (90 % sensitivity at 77 % specificity "
        "from a 29 % chance); nadir ANC median error 0.11 x10^9/L (previous "
        "cycle's nadir: 0.26 x10^9/L); nadir day median error 1.0 days"
    )
    assert caption.endswith(validation_words(VALIDATION) + ".")


def test_a_figure_the_run_could_not_measure_says_so_and_no_run_at_all_too() -> None:
    assert "AUC not yet measured" in validation_words({**VALIDATION, "auc_g4": float("nan")})
    assert validation_words({**VALIDATION, "patients": 0, "run_date": "provisional"}) == (
        "no validation run recorded yet (provisional)"
    )


def test_the_cycle_is_named_and_said_to_be_over_once_its_planned_days_are() -> None:
    assert cycle_label(FORECAST, "Europe/Paris", START + pd.Timedelta(days=12)) == "Cycle 5 (D1 2026-11-20)"
    assert cycle_label(FORECAST, "UTC", START + pd.Timedelta(days=30)) == (
        "Cycle 5 (D1 2026-11-20; its 21 planned days are over)"
    )


def _anc(times: list[str], values: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "collected_at": pd.to_datetime(times, utc=True),
            "analyte": "anc",
            "value": values,
            "ref_low": 1.8,
            "ref_high": 7.5,
        }
    )
    return marked_results(
        frame.assign(
            lln=frame["ref_low"],
            comparator=None,
            status="final",
            lab="A",
            accession=[str(n) for n in range(len(frame))],
            panel_id=range(len(frame)),
        )
    )


# Before the cycle, on D1 before the dose, then on D6 of the cycle (the last count of the cycle).
RESULTS = _anc(["2026-11-01T08:00Z", "2026-11-20T08:00Z", "2026-11-25T08:00Z"], [4.1, 4.0, 2.2])
LAST_COUNT = pd.Timestamp("2026-11-25T08:00Z")


def _traces(figure) -> dict[str, list]:
    found: dict[str, list] = {}
    for trace in figure.data:
        found.setdefault(trace.name, []).append(trace)
    return found


def test_the_timeline_draws_the_forecast_ahead_of_the_last_anc_of_the_cycle_only() -> None:
    figure = timeline_figure(RESULTS, forecast=FORECAST, timezone="Europe/Paris")
    traces = _traces(figure)
    median = traces["forecast (median)"][0]
    band = traces["80 % band"]
    assert median.line.dash == "dash" and median.yaxis == "y2"  # with the ANC, on the differential's row
    assert [t.showlegend for t in band] == [False, None] and band[1].fill == "tonexty"
    # It starts at or after the last count (08:00 UTC is 09:00 in Paris), never over past counts.
    first = pd.Timestamp(median.x[0])
    assert pd.Timestamp("2026-11-25T09:00") <= first < pd.Timestamp("2026-11-25T11:00")
    assert pd.Timestamp(band[0].x[0]) == first
    assert "forecast" in median.hovertemplate
    # The nadir (day 10) is still ahead: marked with its 80 % interval, not in the legend.
    nadir = traces["forecast nadir"][0]
    assert list(nadir.y) == [0.4] and nadir.showlegend is False
    assert (nadir.error_y.arrayminus[0], nadir.error_y.array[0]) == pytest.approx((0.2, 0.4))
    # The drawn traces are added before the ANC line: the band never covers a count.
    names = [trace.name for trace in figure.data]
    assert names.index("80 % band") < names.index("Neutrophils (ANC)")


def test_the_timeline_window_reaches_the_end_of_the_forecast() -> None:
    figure = timeline_figure(RESULTS, forecast=FORECAST, window_days=182)
    # Day 21 (11 December, 16:00) is in view, with a margin of about a day past it.
    end = pd.Timestamp(figure.layout.xaxis.range[1])
    assert pd.Timestamp("2026-12-11T16:00") < end < pd.Timestamp("2026-12-13T16:00")


def test_no_forecast_is_drawn_without_the_anc_or_once_the_cycle_is_past() -> None:
    without_anc = timeline_figure(RESULTS, forecast=FORECAST, lineages=("alc",))
    assert "forecast (median)" not in _traces(without_anc)
    later = _anc(["2026-11-01T08:00Z", "2026-12-20T08:00Z"], [4.1, 4.0])  # a count after the curve's end
    assert "forecast (median)" not in _traces(timeline_figure(later, forecast=FORECAST))
    reason = Forecast(5, START, reason="not enough data: no ANC after a dose yet")
    assert "forecast (median)" not in _traces(timeline_figure(RESULTS, forecast=reason))


def test_a_nadir_already_behind_the_last_count_is_not_marked() -> None:
    late = _anc(["2026-11-01T08:00Z", "2026-12-02T08:00Z"], [4.1, 1.1])  # D13, after the day-10 nadir
    traces = _traces(timeline_figure(late, forecast=FORECAST))
    assert "forecast (median)" in traces and "forecast nadir" not in traces


def test_the_cycle_overlay_draws_the_forecast_by_day_with_its_nadir_window() -> None:
    placed = RESULTS.assign(cycle=[None, 5, 5], day=[None, 0, 5]).dropna(subset=["cycle"])
    figure = cycle_overlay_figure(placed, "anc", forecast=FORECAST, timezone="UTC")
    median = _traces(figure)["forecast (median)"][0]
    # Days since the start of the dosing day: the last count (D6, 08:00) is at 5.33.
    assert 5 + 8 / 24 <= median.x[0] < 5 + 10 / 24
    assert median.x[-1] == pytest.approx(21 + 16 / 24)
    windows = [s for s in figure.layout.shapes if s.x0 == 9]
    assert len(windows) == 1 and windows[0].x1 == 12  # D10-D12, whole days
    labels = [a.text for a in figure.layout.annotations]
    assert "forecast nadir D10-D12" in labels
    for analyte in ("wbc", "plt"):
        other = cycle_overlay_figure(placed.assign(analyte=analyte), analyte, forecast=FORECAST)
        assert "forecast (median)" not in _traces(other)
