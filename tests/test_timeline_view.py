"""The patient timeline as a new user meets it: a window that fits the patient's data, rows without results
that say so, events on a track of their own, significant changes that leave each point's grade colour in
view, and an add-event form that asks for the kind and takes a time in the site's zone. The figure alone,
then the page through AppTest."""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from db import queries
from db.models import Patient
from db.store import open_store
from monitor.analysis.timeline import marked_results
from services.imports import ImportOptions, import_path
from tests.conftest import DATA
from tests.test_dashboard import ADMIN, _app, _array, _clear_caches, _open_patient  # noqa: F401 (autouse)
from ui.timeline import timeline_figure

OPTIONS = ImportOptions(imported_by="test", site_timezone="UTC")
EVENTS = pd.DataFrame(
    {
        "kind": ["chemotherapy", "gcsf", "transfusion", "note"],
        "start_at": pd.to_datetime(
            ["2026-01-02T09:00Z", "2026-01-03T09:00Z", "2026-01-20T10:00Z", "2026-01-21T10:00Z"]
        ),
        "end_at": pd.to_datetime([None, "2026-01-09T09:00Z", None, None], utc=True),
        "label": ["Docetaxel, cycle 1", "Filgrastim", "RBC 2 units", "Seen in clinic"],
    }
)


def _results(times: list[str] | pd.DatetimeIndex, values: list[float], analyte: str = "wbc") -> pd.DataFrame:
    count = len(values)
    return marked_results(
        pd.DataFrame(
            {
                "collected_at": pd.to_datetime(times, utc=True),
                "analyte": analyte,
                "value": values,
                "comparator": [None] * count,
                "ref_low": 4.0,
                "ref_high": 11.0,
                "lln": 4.0,
                "status": "final",
                "lab": "A",
                "accession": [str(n) for n in range(count)],
                "panel_id": range(count),
            }
        )
    )


def _span(figure) -> tuple[pd.Timestamp, pd.Timestamp]:
    first, last = figure.layout.xaxis.range
    return pd.Timestamp(first), pd.Timestamp(last)


def _words(figure) -> list[str]:
    return [annotation.text for annotation in figure.layout.annotations]


def test_two_results_a_week_apart_are_shown_over_days_not_a_year() -> None:
    figure = timeline_figure(_results(["2026-03-02T08:00Z", "2026-03-09T08:00Z"], [5.6, 3.1]))
    first, last = _span(figure)
    assert first < pd.Timestamp("2026-03-02T08:00") and last > pd.Timestamp("2026-03-09T08:00")
    assert last - first < pd.Timedelta(days=14)


def test_two_years_of_results_open_on_the_last_six_months_and_all_is_one_choice_away() -> None:
    weekly = pd.date_range("2024-12-02T08:00Z", "2026-11-30T08:00Z", freq="7D")
    results = _results(weekly, [5.0 + (n % 5) / 2 for n in range(len(weekly))])
    first, last = _span(timeline_figure(results))
    latest = pd.Timestamp("2026-11-30T08:00")
    assert latest < last < latest + pd.Timedelta(days=7)
    assert pd.Timedelta(days=182) <= last - first < pd.Timedelta(days=200)
    everything = _span(timeline_figure(results, window_days=None))
    assert everything[0] < pd.Timestamp("2024-12-02T08:00") < everything[1]


def test_a_row_without_results_says_so_instead_of_drawing_empty_axes() -> None:
    figure = timeline_figure(_results(["2026-03-02T08:00Z", "2026-03-09T08:00Z"], [5.6, 3.1]))
    words = _words(figure)
    assert "No haemoglobin results" in words and "No platelet results" in words
    assert "No Neutrophils (ANC) or Lymphocytes (ALC) results" in words
    assert "No WBC results" not in words
    assert figure.layout.yaxis3.visible is False and figure.layout.yaxis4.visible is False
    assert figure.layout.yaxis.visible is not False  # the WBC row has its axis
    assert "No treatment or other events recorded" in words


def test_results_all_outside_the_window_are_said_to_be_there_not_missing() -> None:
    weekly = pd.date_range("2024-12-02T08:00Z", "2026-11-30T08:00Z", freq="7D")
    results = pd.concat(
        [_results(weekly, [5.0] * len(weekly)), _results(["2025-01-06T08:00Z"], [13.1], analyte="hgb")]
    )
    words = _words(timeline_figure(results))
    earlier = "the latest on 06 Jan 2025; choose a longer window to see it"
    assert f"No haemoglobin results in this window ({earlier})" in words
    assert "No haemoglobin results" not in words  # there is one, earlier
    assert not any(w.startswith("No haemoglobin") for w in _words(timeline_figure(results, window_days=None)))


def test_events_sit_on_their_own_track_above_the_wbc_a_lane_per_treatment() -> None:
    results = _results(["2026-01-01T08:00Z", "2026-01-15T08:00Z", "2026-02-01T08:00Z"], [5.2, 3.1, 4.8])
    figure = timeline_figure(results, events=EVENTS)
    kinds = {"Chemotherapy", "G-CSF", "Transfusion", "Note"}
    events = [trace for trace in figure.data if trace.name in kinds]
    assert {trace.name for trace in events} == kinds
    wbc = next(trace for trace in figure.data if trace.name.startswith("WBC (marker"))
    assert all(trace.yaxis != wbc.yaxis for trace in events)  # not at some height of the WBC axis
    track = figure.layout[events[0].yaxis.replace("y", "yaxis")]
    assert track.domain[0] > figure.layout.yaxis.domain[1]  # above the WBC row
    assert events[0].xaxis != wbc.xaxis and figure.layout[events[0].xaxis.replace("x", "xaxis")].matches
    lanes = {trace.name: set(trace.y) for trace in events if trace.mode == "markers"}
    assert lanes == {
        "Chemotherapy": {"Chemotherapy"},
        "G-CSF": {"G-CSF"},
        "Transfusion": {"Transfusion"},
        "Note": {"Other"},
    }
    assert list(track.categoryarray) == ["Chemotherapy", "G-CSF", "Transfusion", "Other"]
    gcsf = next(trace for trace in events if trace.name == "G-CSF" and trace.mode == "markers")
    assert list(gcsf.text) == ["Filgrastim"] and "until 09 Jan 2026" in gcsf.customdata[0]
    # The G-CSF course runs to its end as a bar in its lane.
    bar = next(trace for trace in events if trace.name == "G-CSF" and trace.mode == "lines")
    assert [str(x)[:10] if x else x for x in bar.x] == ["2026-01-03", "2026-01-09", None]
    assert "Treatment and other events" in _words(figure)


def test_a_significant_change_rings_its_point_under_it_and_leaves_its_grade_colour_in_view() -> None:
    results = _results(["2026-01-01T08:00Z", "2026-01-15T08:00Z", "2026-02-01T08:00Z"], [5.6, 1.5, 5.0])
    figure = timeline_figure(results)
    names = [trace.name for trace in figure.data]
    fall = figure.data[names.index("Significant fall (beyond the RCV)")]
    rise = figure.data[names.index("Significant rise (beyond the RCV)")]
    points = figure.data[names.index(next(n for n in names if n.startswith("WBC (marker")))]
    for mark in (fall, rise):
        assert mark.marker.symbol.endswith("-open")  # a ring: nothing filled over the point
        assert names.index(mark.name) < names.index(points.name)  # drawn first: under the point
        assert mark.marker.size > max(points.marker.size)  # wider than the point: a ring around it
    assert list(points.marker.color) == ["#0072B2", "#D55E00", "#0072B2"]  # grade 3 in vermillion


# --- the page ---


@pytest.fixture
def long_store(tmp_path: Path, monkeypatch) -> str:
    """MRN1001 (two panels two weeks apart, canonical-good.csv) and LONG1, a WBC and ANC every week for two
    years and no haemoglobin or platelets."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    import_path(store, DATA / "canonical-good.csv", options=OPTIONS)
    weekly = pd.date_range("2024-12-02T08:00Z", "2026-11-30T08:00Z", freq="7D")
    rows = [
        f"LONG1,{when:%Y-%m-%dT%H:%M:%SZ},{analyte},{value},10^9/L,{low},{high},CENTRAL,L-{n},final"
        for n, when in enumerate(weekly)
        for analyte, value, low, high in (("wbc", 5.0 + n % 3, 4.0, 11.0), ("anc", 3.0, 1.8, 7.7))
    ]
    data = tmp_path / "long.csv"
    data.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n" + "\n".join(rows)
    )
    assert import_path(store, data, options=OPTIONS).error is None
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def _chart(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _days(spec: dict) -> float:
    first, last = (pd.Timestamp(t) for t in spec["layout"]["xaxis"]["range"])
    return (last - first) / pd.Timedelta(days=1)


def test_the_page_opens_on_the_patients_own_span_and_says_which_rows_are_empty(long_store) -> None:
    at = _open_patient(_app().run())  # MRN1001: 2 and 16 March
    assert not at.exception
    assert at.segmented_control(key="patient_window").value == "6 months"
    assert _days(_chart(at)) < 21  # two weeks of results, not a year of empty axis
    at = _open_patient(at, "LONG1 · (no name)")
    spec = _chart(at)
    assert 182 <= _days(spec) < 200
    words = [annotation["text"] for annotation in spec["layout"]["annotations"]]
    assert "No haemoglobin results" in words and "No platelet results" in words
    at.segmented_control(key="patient_window").set_value("All").run()
    assert 2 * 365 - 10 < _days(_chart(at)) < 2 * 365 + 60


def test_events_added_on_the_page_are_drawn_on_the_track_not_on_the_wbc_axis(long_store) -> None:
    at = _open_patient(_app().run())
    at.selectbox(key="event_kind").select("gcsf")
    at.date_input(key="event_date").set_value(date(2026, 3, 9))
    at.text_input(key="event_label").input("Filgrastim 5 mcg/kg")
    at.button(key="FormSubmitter:event_form-Add").click().run()
    assert not at.exception
    spec = _chart(at)
    marker = next(t for t in spec["data"] if t["name"] == "G-CSF")
    assert marker["yaxis"] != "y" and _array(marker["y"]) == ["G-CSF"]
    assert spec["layout"]["yaxis9"]["domain"][0] > spec["layout"]["yaxis"]["domain"][1]


def _stored_events(url: str, mrn: str = "MRN1001") -> pd.DataFrame:
    with open_store(url, timezone="UTC")() as session:
        key = session.scalar(select(Patient.id).where(Patient.mrn == mrn))
        return queries.patient_events(session, key, viewer=ADMIN)


def test_the_add_event_form_has_no_kind_until_one_is_chosen_and_saves_nothing_without_it(
    long_store,
) -> None:
    at = _open_patient(_app().run())
    kind = at.selectbox(key="event_kind")
    assert kind.value is None and kind.placeholder == "Choose a kind"
    at.text_input(key="event_label").input("Filgrastim 5 mcg/kg")
    at.button(key="FormSubmitter:event_form-Add").click().run()
    assert not at.exception
    # The kinds in words, as the form offers them, not their codes.
    assert [error.value for error in at.error] == [
        "Choose the event's kind (Chemotherapy, G-CSF, Medication, Infection, Fever (free text, from an "
        "event), Supplement, Transfusion, Note): nothing was saved."
    ]
    assert _stored_events(long_store).empty
    assert at.text_input(key="event_label").value == "Filgrastim 5 mcg/kg"  # kept, to choose the kind
    at.selectbox(key="event_kind").select("gcsf")
    at.button(key="FormSubmitter:event_form-Add").click().run()
    assert not at.exception and not at.error
    assert _stored_events(long_store)["kind"].tolist() == ["gcsf"]
    assert at.selectbox(key="event_kind").value is None  # the form is empty again for the next one


def test_the_time_is_read_in_the_sites_zone_named_beside_it_and_stored_as_its_utc_instant(
    long_store, monkeypatch
) -> None:
    monkeypatch.setenv("MONITOR_TIMEZONE", "America/New_York")
    at = _open_patient(_app().run())
    clock = at.time_input(key="event_time")
    assert clock.label == "Time (America/New_York)"
    at.selectbox(key="event_kind").select("chemotherapy")
    at.date_input(key="event_date").set_value(date(2026, 3, 9))  # the day after the clocks went forward
    clock.set_value(time(8, 45))
    at.text_input(key="event_label").input("Docetaxel cycle 1")
    at.button(key="FormSubmitter:event_form-Add").click().run()
    assert not at.exception
    stored = _stored_events(long_store)
    assert stored["start_at"].tolist() == [pd.Timestamp("2026-03-09T12:45Z")]  # EDT, UTC-4
    listed = next(frame.value for frame in at.dataframe if "Kind" in frame.value.columns)
    assert listed["Start"].tolist() == ["2026-03-09 08:45"]
