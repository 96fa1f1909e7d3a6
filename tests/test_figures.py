"""The WBC chart, built without Streamlit: the band follows each result's own range."""

from __future__ import annotations

import pandas as pd

from ui.figures import count_figure


def _results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "collected_at": pd.to_datetime(
                ["2026-01-01T08:00Z", "2026-01-15T08:00Z", "2026-02-01T08:00Z", "2026-02-03T08:00Z"]
            ),
            "analyte": ["wbc", "wbc", "wbc", "wbc"],
            "value": [5.2, 3.1, 4.8, 9.9],
            "ref_low": [4.0, 4.0, 4.5, 4.5],
            "ref_high": [11.0, 11.0, 11.0, 11.0],
            "status": ["final", "final", "final", "entered-in-error"],
            "lab": ["A", "A", "B", "B"],
            "accession": ["1", "2", "3", "4"],
        }
    )


def test_the_band_steps_where_the_labs_range_changed() -> None:
    figure = count_figure(_results(), "wbc")
    upper, lower, values = figure.data[:3]
    assert list(lower.y) == [4.0, 4.0, 4.5]
    assert lower.fill == "tonexty" and lower.line.shape == "hv"
    assert list(upper.y) == [11.0, 11.0, 11.0]
    assert list(values.y) == [5.2, 3.1, 4.8]


def test_results_below_the_lower_limit_differ_in_shape_not_only_colour() -> None:
    values = count_figure(_results(), "wbc").data[2]
    assert list(values.marker.symbol) == ["circle", "triangle-down", "circle"]


def test_entered_in_error_results_are_not_charted() -> None:
    values = count_figure(_results(), "wbc").data[2]
    assert 9.9 not in list(values.y)


def test_axes_name_the_analyte_and_its_unit() -> None:
    figure = count_figure(_results(), "wbc", timezone="Europe/Paris")
    assert figure.layout.yaxis.title.text == "WBC (10^9/L)"
    assert figure.layout.xaxis.title.text == "Collection date (Europe/Paris)"


def test_events_are_labelled_markers_one_trace_per_kind() -> None:
    events = pd.DataFrame(
        {
            "kind": ["chemotherapy", "chemotherapy", "gcsf"],
            "start_at": pd.to_datetime(["2026-01-02T09:00Z", "2026-01-23T09:00Z", "2026-01-03T09:00Z"]),
            "label": ["Docetaxel, cycle 1", "Docetaxel, cycle 2", "Pegfilgrastim"],
        }
    )
    figure = count_figure(_results(), "wbc", events=events)
    names = [trace.name for trace in figure.data[3:]]
    assert names == ["Chemotherapy", "G-CSF"]
    assert list(figure.data[3].text) == ["Docetaxel, cycle 1", "Docetaxel, cycle 2"]


def test_low_markers_follow_the_limit_that_applies_not_only_the_reported_one() -> None:
    # A Duffy-null range (reference 2.2): ANC 1.3 is below the reported 1.8 but not below 1.21.
    results = pd.DataFrame(
        {
            "collected_at": pd.to_datetime(["2026-01-01T08:00Z", "2026-01-08T08:00Z"]),
            "analyte": ["anc", "anc"],
            "value": [1.3, 1.1],
            "ref_low": [1.8, 1.8],
            "ref_high": [7.7, 7.7],
            "lln": [1.21, 1.21],
            "status": ["final", "final"],
            "lab": ["A", "A"],
            "accession": ["1", "2"],
        }
    )
    values = count_figure(results, "anc").data[2]
    assert list(values.marker.symbol) == ["circle", "triangle-down"]
