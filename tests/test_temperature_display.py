"""Temperatures where people read them: the timeline's own row with the fever lines, the flowsheet's column,
and a fever written in an event labelled as free text. The figure alone, then the page through AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from db.store import open_store
from monitor.analysis.timeline import marked_results
from services.imports import ImportOptions, import_path
from tests.conftest import DATA
from tests.test_dashboard import _app, _array, _clear_caches  # noqa: F401 (an autouse fixture)
from ui.timeline import flowsheet, timeline_figure

OPTIONS = ImportOptions(imported_by="test", site_timezone="UTC")


def _results() -> pd.DataFrame:
    rows = [
        ("2026-01-01T08:00Z", "wbc", 3.0, "3.0", "10^9/L", "6690-2", 4.0, 11.0),
        ("2026-01-01T10:00Z", "temp", 38.6, "38.6", "Cel", "8310-5", None, None),
        ("2026-01-01T14:00Z", "temp", 38.0, "100.4", "[degF]", "8331-1", None, None),
        ("2026-01-01T16:00Z", "temp", 37.2, "37.2", "Cel", None, None, None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=["collected_at", "analyte", "value", "value_raw", "unit_raw", "loinc", "ref_low", "ref_high"],
    )
    return marked_results(
        frame.assign(
            collected_at=pd.to_datetime(frame["collected_at"]),
            lln=frame["ref_low"],
            comparator=None,
            status="final",
            lab="A",
            accession=[str(n) for n in range(len(frame))],
            panel_id=range(len(frame)),
        )
    )


def test_temperatures_get_a_row_of_their_own_with_the_fever_lines_labelled() -> None:
    figure = timeline_figure(_results(), timezone="Europe/Paris")
    readings = next(trace for trace in figure.data if trace.name.startswith("Temperature"))
    assert (readings.xaxis, readings.yaxis) == ("x5", "y5")
    assert list(readings.y) == [38.6, 38.0, 37.2]
    # 10:00 UTC is 11:00 in Paris in January; the hover names the zone
    assert str(readings.x[0]).startswith("2026-01-01T11:00") and "(Europe/Paris)" in readings.hovertemplate
    # at or above 38.0 is told by shape as well as colour
    assert list(readings.marker.symbol) == ["triangle-up", "triangle-up", "circle"]
    # the site from the LOINC code, and the value as sent when it was converted
    assert readings.customdata[1].tolist() == [" (oral)", "<br>sent as 100.4 [degF]"]
    assert readings.customdata[0].tolist() == ["", ""]
    lines = {shape.y0: shape.yref for shape in figure.layout.shapes if shape.yref == "y5"}
    assert lines == {38.0: "y5", 38.3: "y5"}
    labels = [a.text for a in figure.layout.annotations]
    assert "38.0 °C sustained over 1 h (IDSA 2010, CTCAE v5.0)" in labels
    assert "38.3 °C single reading (IDSA ≥, CTCAE >)" in labels
    assert figure.layout.yaxis5.title.text == "Temp (°C)"
    assert figure.layout.xaxis5.title.text == "Collection date (Europe/Paris)"


def test_without_temperatures_the_timeline_keeps_its_four_rows() -> None:
    results = _results()
    figure = timeline_figure(results[results["analyte"] != "temp"])
    assert "yaxis5" not in figure.layout.to_plotly_json()
    assert not any(trace.name.startswith("Temperature") for trace in figure.data)


def test_a_withdrawn_temperature_is_not_drawn() -> None:
    results = _results()
    results.loc[results["value"] == 38.6, "status"] = "entered-in-error"
    readings = next(t for t in timeline_figure(results).data if t.name.startswith("Temperature"))
    assert list(readings.y) == [38.0, 37.2]


def test_the_flowsheet_has_a_temp_column_in_celsius_with_its_tenths() -> None:
    values, states = flowsheet(_results(), "UTC")
    assert values["Temp °C"].tolist() == ["37.2", "38.0", "38.6", ""]
    assert states["Temp °C"].tolist() == ["", "", "", ""]


def test_a_fever_event_is_labelled_free_text_on_the_timeline() -> None:
    events = pd.DataFrame(
        {"kind": ["fever"], "start_at": pd.to_datetime(["2026-01-01T12:00Z"]), "label": ["Fever 38.9 C"]}
    )
    figure = timeline_figure(_results(), events=events)
    names = [trace.name for trace in figure.data]
    assert "Fever (free text, from an event)" in names


@pytest.fixture
def temperature_store(tmp_path: Path, monkeypatch) -> str:
    """T-5001 with a CBC and temperatures from an HL7 feed, and a fever written in an event; MRN1001 with
    counts only."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    import_path(store, DATA / "temperatures" / "oru-cbc-and-temperatures.hl7", options=OPTIONS)
    import_path(store, DATA / "canonical-good.csv", options=OPTIONS)
    events = tmp_path / "events.csv"
    events.write_text(
        "patient_id,assigning_authority,kind,start,end,label,details\n"
        "T-5001,CITYHOSP,fever,2026-03-09T20:00:00Z,,Fever 38.4 C at home,\n"
    )
    import_path(store, events, options=OPTIONS)
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def _open(at: AppTest, patient_id: str) -> AppTest:
    at.switch_page("app_pages/patient.py").run()
    box = at.selectbox(key="patient_select")
    label = next(option for option in box.options if option.startswith(patient_id))
    return box.select_index(box.options.index(label)).run()


def test_the_patient_page_shows_temperatures_in_their_row_and_the_flowsheet(temperature_store) -> None:
    at = _open(_app().run(), "T-5001")
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    readings = next(t for t in spec["data"] if t["name"].startswith("Temperature"))
    assert _array(readings["y"]) == [38.6, 38.0, 37.2, 37.0]
    assert readings["yaxis"] == "y5" and spec["layout"]["yaxis5"]["title"]["text"] == "Temp (°C)"
    assert sorted(s["y0"] for s in spec["layout"]["shapes"] if s.get("yref") == "y5") == [38.0, 38.3]
    assert any(t["name"] == "Fever (free text, from an event)" for t in spec["data"])
    assert any("Temperature row" in caption.value for caption in at.caption)
    sheet = next(frame.value for frame in at.dataframe if "Temp °C" in frame.value.columns)
    assert sheet.loc["2026-03-10 14:00", "Temp °C"] == "38.0"
    assert (
        sheet.loc["2026-03-10 07:30", "Neutrophils (ANC) (10^9/L)"] == "0.4 LL ↓"
    )  # the lab's own flag beside the count
    events = next(frame.value for frame in at.dataframe if "Kind" in frame.value.columns)
    assert events["Kind"].tolist() == ["fever (free text, from an event)"]


def test_a_patient_without_temperatures_has_no_temperature_row(temperature_store) -> None:
    at = _open(_app().run(), "MRN1001")
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "yaxis5" not in spec["layout"]
    assert not any("Temperature row" in caption.value for caption in at.caption)
    assert not any("Temp °C" in frame.value.columns for frame in at.dataframe)
