"""PROVISIONAL, for the fc-ui branch only: the lead replaces this file with the figures of the validation run
(``python -m benchmarks.forecast``) when merging. Until then no figure is known: the numbers are NaN and the
dashboard says "not yet measured" for each.

``VALIDATION``: ``patients`` (simulated patients forecast), ``coverage_80`` (share of held-out nadirs inside
the 80 % interval, 0-1), ``sensitivity_g4``/``specificity_g4`` (of ``p_grade4`` at the worklist's
threshold, 0-1), ``auc_g4``, ``nadir_anc_mae``/``naive_nadir_anc_mae`` (median absolute error of the nadir
ANC, x10^9/L, the forecast's and the naive forecaster's), ``nadir_day_mae`` (days), ``run_date``.
"""

from __future__ import annotations

NAN = float("nan")

VALIDATION: dict[str, float | int | str] = {
    "patients": 0,
    "coverage_80": NAN,
    "sensitivity_g4": NAN,
    "specificity_g4": NAN,
    "auc_g4": NAN,
    "nadir_anc_mae": NAN,
    "naive_nadir_anc_mae": NAN,
    "nadir_day_mae": NAN,
    "run_date": "provisional: not yet run",
}
