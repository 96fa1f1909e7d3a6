"""The patient timeline figure, built without Streamlit: bands, grades, markers, events, time zone."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.timeline import marked_results
from ui.timeline import flowsheet, timeline_figure


def _results() -> pd.DataFrame:
    return marked_results(_unmarked())


def _unmarked() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "collected_at": pd.to_datetime(
                ["2026-01-01T08:00Z", "2026-01-15T08:00Z", "2026-02-01T08:00Z", "2026-02-03T08:00Z"]
            ),
            "analyte": ["wbc", "wbc", "wbc", "wbc"],
            "value": [5.2, 3.1, 4.8, 9.9],
            "comparator": [None] * 4,
            "ref_low": [4.0, 4.0, 4.5, 4.5],
            "ref_high": [11.0, 11.0, 11.0, 11.0],
            "lln": [4.0, 4.0, 4.5, 4.5],
            "status": ["final", "final", "final", "entered-in-error"],
            "lab": ["A", "A", "B", "B"],
            "accession": ["1", "2", "3", "4"],
            "panel_id": [1, 2, 3, 4],
        }
    )


def _trace(figure, prefix: str):
    return next(trace for trace in figure.data if trace.name.startswith(prefix))


def test_the_band_steps_where_the_labs_range_changed() -> None:
    figure = timeline_figure(_results())
    upper, lower = figure.data[:2]
    assert list(lower.y) == [4.0, 4.0, 4.5]
    assert lower.fill == "tonexty" and lower.line.shape == "hv"
    assert list(upper.y) == [11.0, 11.0, 11.0]
    assert list(_trace(figure, "WBC (marker").y) == [5.2, 3.1, 4.8]


def test_results_below_the_lower_limit_differ_in_shape_not_only_colour() -> None:
    values = _trace(timeline_figure(_results()), "WBC (marker")
    assert list(values.marker.symbol) == ["circle", "triangle-down", "circle"]


def test_entered_in_error_results_are_not_charted() -> None:
    assert 9.9 not in list(_trace(timeline_figure(_results()), "WBC (marker").y)


def test_axes_name_the_analyte_and_its_unit_and_the_time_zone() -> None:
    figure = timeline_figure(_results(), timezone="Europe/Paris")
    assert figure.layout.yaxis.title.text == "WBC (10^9/L)"
    assert figure.layout.xaxis4.title.text == "Collection date (Europe/Paris)"
    # 08:00 UTC is 09:00 in Paris in January.
    assert str(_trace(figure, "WBC (marker").x[0]).startswith("2026-01-01T09:00")


def test_events_are_labelled_markers_one_trace_per_kind() -> None:
    events = pd.DataFrame(
        {
            "kind": ["chemotherapy", "chemotherapy", "gcsf"],
            "start_at": pd.to_datetime(["2026-01-02T09:00Z", "2026-01-23T09:00Z", "2026-01-03T09:00Z"]),
            "label": ["Docetaxel, cycle 1", "Docetaxel, cycle 2", "Pegfilgrastim"],
        }
    )
    figure = timeline_figure(_results(), events=events)
    assert list(_trace(figure, "Chemotherapy").text) == ["Docetaxel, cycle 1", "Docetaxel, cycle 2"]
    assert list(_trace(figure, "G-CSF").text) == ["Pegfilgrastim"]


def test_low_markers_follow_the_limit_that_applies_not_only_the_reported_one() -> None:
    # A Duffy-null range (reference 2.2): ANC 1.3 is below the reported 1.8 but not below 1.21.
    results = pd.DataFrame(
        {
            "collected_at": pd.to_datetime(["2026-01-01T08:00Z", "2026-01-08T08:00Z"]),
            "analyte": ["anc", "anc"],
            "value": [1.3, 1.1],
            "comparator": [None, None],
            "ref_low": [1.8, 1.8],
            "ref_high": [7.7, 7.7],
            "lln": [1.21, 1.21],
            "status": ["final", "final"],
            "lab": ["A", "A"],
            "accession": ["1", "2"],
            "panel_id": [1, 2],
        }
    )
    figure = timeline_figure(marked_results(results), lineages=("anc",))
    values = next(trace for trace in figure.data if trace.name == "Neutrophils (ANC)")
    assert list(values.marker.symbol) == ["circle", "triangle-down"]


def test_the_figure_draws_the_grades_it_is_given_and_does_not_grade_again() -> None:
    results = _results()
    results.loc[1, "grade"] = 4  # as if the site's rules had graded 3.1 as grade 4
    values = _trace(timeline_figure(results), "WBC (marker")
    assert list(values.marker.color) == ["#0072B2", "#000000", "#0072B2"]


def test_the_flowsheet_marks_low_and_high_results_newest_first() -> None:
    results = _unmarked()
    results.loc[2, "value"] = 11.5  # above the reported 11.0
    values, states = flowsheet(marked_results(results), "UTC")
    assert values["WBC (10^9/L)"].tolist() == ["11.5 ↑", "3.1 ↓", "5.2"]
    assert states["WBC (10^9/L)"].tolist() == ["high", "low", ""]


def test_the_flowsheet_marks_a_preliminary_result_until_its_final_arrives() -> None:
    results = _unmarked()
    results.loc[1, "status"] = "preliminary"
    values, _ = flowsheet(marked_results(results), "UTC")
    assert values["WBC (10^9/L)"].tolist() == ["4.8", "3.1 ↓ (prelim.)", "5.2"]
