"""What the patient timeline shows of each result (analysis.timeline): marks, episodes below the limit,
and how the chart draws a preliminary one (ui.timeline)."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.grading import GradingRules
from monitor.analysis.timeline import LOW_EPISODE_COLUMNS, MARK_COLUMNS, low_episodes, marked_results
from ui.timeline import timeline_figure

START = pd.Timestamp("2026-03-02T08:00Z")


def make_results(analyte: str, values: list[float], *, lln: float, **columns: list) -> pd.DataFrame:
    """One patient's results of ``analyte``, a week apart, reported within 0-11 and final unless given."""
    count = len(values)
    frame = pd.DataFrame(
        {
            "patient_key": 1,
            "collected_at": [START + pd.Timedelta(days=7 * i) for i in range(count)],
            "analyte": analyte,
            "value": values,
            "comparator": [None] * count,
            "lln": lln,
            "ref_high": 11.0,
            "status": "final",
        }
    )
    return frame.assign(**columns)


def test_each_result_is_graded_against_its_own_limit_and_marked_low_or_high() -> None:
    results = make_results("wbc", [5.6, 3.1, 1.5, 12.0], lln=4.0)
    marked = marked_results(results)
    assert marked.columns.tolist() == [*results.columns, *MARK_COLUMNS]
    assert marked["grade"].tolist() == [0, 1, 3, 0]
    assert marked["below_limit"].tolist() == [False, True, True, False]
    assert marked["above_range"].tolist() == [False, False, False, True]


def test_a_value_censored_below_is_neither_above_the_range_nor_given_a_change() -> None:
    results = make_results("wbc", [6.0, 12.0], lln=4.0, comparator=[None, "<"])
    marked = marked_results(results)
    assert marked["above_range"].tolist() == [False, False]
    assert marked["change"].isna().all()


def test_a_fall_beyond_the_reference_change_value_is_marked_with_the_sites_rules() -> None:
    results = make_results("wbc", [5.6, 3.1, 3.0], lln=4.0)
    marked = marked_results(results)
    assert marked["significant_fall"].tolist() == [pd.NA, True, False]
    assert round(marked.loc[1, "change"], 3) == round(3.1 / 5.6 - 1, 3)
    strict = GradingRules.from_mapping({"ctcae_version": "6.0"})  # the site's version grades, not v5.0
    assert marked_results(make_results("anc", [1.3], lln=1.21), rules=strict)["grade"].tolist() == [1]
    assert marked_results(make_results("anc", [1.3], lln=1.21))["grade"].tolist() == [2]


def test_withdrawn_results_are_never_the_previous_one_and_marking_leaves_the_input_alone() -> None:
    results = make_results("wbc", [5.6, 1.0, 5.5], lln=4.0, status=["final", "entered-in-error", "final"])
    before = results.copy()
    marked = marked_results(results)
    assert marked["significant_fall"].tolist() == [pd.NA, pd.NA, False]
    pd.testing.assert_frame_equal(results, before)


def test_results_without_a_patient_key_are_one_patient() -> None:
    results = make_results("wbc", [5.6, 3.1], lln=4.0).drop(columns="patient_key")
    assert marked_results(results)["significant_fall"].tolist() == [pd.NA, True]
    assert "patient_key" not in marked_results(results)


def test_episodes_of_wbc_and_anc_are_listed_newest_first_and_named() -> None:
    results = pd.concat(
        [make_results("wbc", [3.5, 4.6, 3.0], lln=4.0), make_results("anc", [1.9, 1.2, 1.1], lln=1.8)],
        ignore_index=True,
    )
    found = low_episodes(results, timezone="UTC")
    assert found.columns.tolist() == list(LOW_EPISODE_COLUMNS)
    assert found[["count", "n_results", "nadir", "ongoing"]].values.tolist() == [
        ["WBC", 1, 3.0, True],
        ["ANC", 2, 1.1, True],
        ["WBC", 1, 3.5, False],
    ]
    assert low_episodes(results.iloc[0:0], timezone="UTC").empty


def test_a_preliminary_low_wbc_is_a_hollow_down_triangle_whose_hover_says_the_final_is_awaited() -> None:
    results = make_results("wbc", [5.6, 2.1], lln=4.0, status=["final", "preliminary"]).assign(
        ref_low=4.0, lab="CITY", accession=["A1", "A2"], panel_id=[1, 2]
    )
    figure = timeline_figure(marked_results(results))
    wbc = next(trace for trace in figure.data if trace.name.startswith("WBC (marker"))
    assert list(wbc.marker.symbol) == ["circle", "triangle-down-open"]
    assert wbc.customdata[1][3] == "preliminary result; final awaited"
    assert wbc.customdata[0][3] == "final"
