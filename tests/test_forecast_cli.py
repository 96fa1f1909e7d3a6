"""The `forecast` command: its JSON contract, --as-of, the words for people, the refusal of an unknown
patient, the exit status without a forecast; and `patients --format json` carrying the forecast; on both
stores, through the real importer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.forecast_data import CYCLE_1, CYCLE_2, FC1_COUNTS, day, import_cohort
from tests.test_cli import monitor

NOT_YET = (
    "not enough data: no ANC yet from D5 of a cycle (before then a forecast would be the population's alone, "
    "whatever this patient's marrow does)"
)

FIELDS = [
    "patient_id",
    "cycle",
    "cycle_start",
    "nadir_anc",
    "nadir_anc_low",
    "nadir_anc_high",
    "nadir_day",
    "nadir_window",
    "recovery_day",
    "p_grade4",
    "n_anc_used",
    "model",
    "reason",
    "observed_nadir_anc",
    "observed_nadir_day",
    "nadir_passed",
]
FIGURES = [
    "nadir_anc",
    "nadir_anc_low",
    "nadir_anc_high",
    "nadir_day",
    "nadir_window",
    "recovery_day",
    "p_grade4",
]


@pytest.fixture
def cohort(store, db_url: str, tmp_path: Path) -> str:
    import_cohort(store, tmp_path)
    return db_url


def _forecast(url: str, *args: str) -> dict[str, object]:
    done = monitor("forecast", *args, "--format", "json", url=url)
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_the_forecast_of_the_cycle_now_as_json(cohort: str) -> None:
    found = _forecast(cohort, "FC-1")
    assert list(found) == FIELDS
    assert (found["patient_id"], found["cycle"]) == ("FC-1", 2)
    assert found["cycle_start"] == day(CYCLE_2, "10:00")
    assert found["reason"] is None and found["n_anc_used"] == len(FC1_COUNTS)
    low, mid, high = found["nadir_anc_low"], found["nadir_anc"], found["nadir_anc_high"]
    assert isinstance(mid, float) and low <= mid <= high  # type: ignore[operator]
    window = found["nadir_window"]
    assert isinstance(window, list) and len(window) == 2 and 0 < window[0] <= window[1] < 21
    assert window[0] <= found["nadir_day"] < window[1] + 1  # type: ignore[operator]
    assert 0.0 <= found["p_grade4"] <= 1.0  # type: ignore[operator]
    assert "Friberg" in str(found["model"])


def test_as_of_in_the_past_forecasts_the_cycle_then_from_the_counts_before_it(cohort: str) -> None:
    # Six days into cycle 1: two counts were drawn by then (the pre-dose one and D6), none of the later ones.
    found = _forecast(cohort, "FC-1", "--as-of", day(CYCLE_1 + 6, "12:00"))
    assert (found["cycle"], found["cycle_start"]) == (1, day(CYCLE_1, "10:00"))
    assert found["n_anc_used"] == 2 and found["reason"] is None
    # The same moment given with an offset is the same time.
    offset = day(CYCLE_1 + 6, "14:00").replace("Z", "+02:00")
    assert _forecast(cohort, "FC-1", "--as-of", offset) == found
    # Before the first dose there is nothing to forecast.
    before = _forecast(cohort, "FC-1", "--as-of", day(CYCLE_1 - 1))
    assert before["reason"] == "no chemotherapy recorded before this time"
    assert all(before[name] is None for name in FIGURES)


def test_without_a_forecast_the_figures_are_null_with_the_reason_and_the_exit_status_is_0(
    cohort: str,
) -> None:
    found = _forecast(cohort, "FC-2")
    assert found["cycle"] == 1 and found["reason"] == NOT_YET
    assert all(found[name] is None for name in FIGURES)
    untreated = _forecast(cohort, "OK-1")
    assert (untreated["cycle"], untreated["cycle_start"]) == (None, None)
    assert untreated["reason"] == "no chemotherapy recorded before this time"
    table = monitor("forecast", "FC-2", url=cohort)
    assert table.returncode == 0
    assert "No nadir forecast: " + NOT_YET in table.stdout


def test_the_table_says_the_forecast_in_words_with_the_model_and_decision_support(cohort: str) -> None:
    found = _forecast(cohort, "FC-1")
    table = monitor("forecast", "FC-1", url=cohort)
    assert table.returncode == 0, table.stderr
    first, last = found["nadir_window"]  # type: ignore[misc]
    window = f"D{first + 1}" if first == last else f"D{first + 1}-D{last + 1}"
    said = (
        f"Nadir forecast {found['nadir_anc']:.2f} x10^9/L (80 % interval {found['nadir_anc_low']:.2f}-"
        f"{found['nadir_anc_high']:.2f}) on {window}; "
        f"{round(100 * found['p_grade4']):d} % chance of grade 4 (ANC < 0.5)"  # type: ignore[operator]
    )
    assert said in table.stdout, table.stdout
    assert "Model: Friberg" in table.stdout
    assert "Decision support, not a prediction to act on alone" in table.stdout
    assert "validated on simulated patients only" in table.stdout


def test_an_unknown_patient_is_refused_as_cycles_refuses_it(cohort: str) -> None:
    refused = monitor("forecast", "NOPE", url=cohort)
    cycles = monitor("cycles", "NOPE", url=cohort)
    assert (refused.returncode, refused.stderr) == (cycles.returncode, cycles.stderr) == (2, cycles.stderr)
    assert "no patient with identifier 'NOPE'" in refused.stderr and refused.stdout == ""
    bad = monitor("forecast", "FC-1", "--as-of", "yesterday-ish", url=cohort)
    assert bad.returncode == 2 and "--as-of" in bad.stderr


def test_patients_json_carries_the_forecast_of_the_cycle_now(cohort: str) -> None:
    listed = {
        p["patient_id"]: p for p in json.loads(monitor("patients", "--format", "json", url=cohort).stdout)
    }
    found = _forecast(cohort, "FC-1")
    mine = listed["FC-1"]
    assert (mine["p_grade4"], mine["nadir_anc"], mine["nadir_window"]) == (
        found["p_grade4"],
        found["nadir_anc"],
        found["nadir_window"],
    )
    for other in ("FC-2", "OK-1"):
        assert (listed[other]["p_grade4"], listed[other]["nadir_anc"], listed[other]["nadir_window"]) == (
            None,
            None,
            None,
        )
