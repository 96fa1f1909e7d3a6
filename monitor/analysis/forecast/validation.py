"""The forecast's validation figures, as recorded by ``python -m benchmarks.forecast``
(docs/clinical-basis.md, Validation in simulation), for the pages' caption. Simulated patients only: no
real patient was forecast.

Re-run the benchmark after any change to the model, its priors or its fit, and copy its figures here
(``tests/test_forecast_validation.py`` checks the forecaster at a small scale on every run).
"""

from __future__ import annotations

__all__ = ["VALIDATION"]

VALIDATION: dict[str, float | int | str] = {
    "run_date": "2026-12-03, model version 2, seed 18",
    "patients": 480,
    "held_out": "cycle 3 or later forecast at its day 4",
    "coverage_80": 0.821,  # true nadir inside the 80 % interval
    "band_coverage_80": 0.832,  # held-out counts inside the 80 % band
    "sensitivity_g4": 0.793,  # at P(grade 4) >= 0.5
    "specificity_g4": 0.850,
    "auc_g4": 0.908,
    "threshold_for_90_sensitivity": 0.330,
    "specificity_at_90_sensitivity": 0.742,
    "nadir_anc_mae": 0.231,  # x10^9/L, median absolute error
    "naive_nadir_anc_mae": 0.403,
    "nadir_day_mae": 0.438,  # days
    "naive_nadir_day_mae": 1.744,
    "recovery_day_mae": 0.721,
    "naive_recovery_day_mae": 1.846,
}
