"""The dashboard pages, rendered by Streamlit's AppTest against a temporary store."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from db.importer import import_path
from db.store import open_store
from tests.conftest import DATA, ROOT

APP = str(ROOT / "dashboard.py")


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def imported_store(tmp_path: Path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    import_path(open_store(url), DATA / "canonical-good.csv", imported_by="test")
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def _array(encoded) -> list:
    """A plotly figure array from its JSON spec (plotly sends numbers as typed base64 arrays)."""
    if isinstance(encoded, dict) and "bdata" in encoded:
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).tolist()
    return list(encoded)


def test_first_start_creates_the_store_seeds_the_demo_and_says_it_is_synthetic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh' / 'monitor.db'}")
    monkeypatch.delenv("MONITOR_SEED_DEMO", raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert "Synthetic demo data" in at.warning[0].value
    table = at.dataframe[0].value
    assert len(table) >= 60
    assert table["Name"].str.contains("Synthetic").all()


def test_worklist_shows_latest_counts_grade_flags_and_trend_most_urgent_first(imported_store) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert len(at.warning) == 0  # imported, not synthetic: no banner
    table = at.dataframe[0].value
    # MRN1001's ANC 0.9 is grade 3 (< 1.0, >= 0.5): first, whatever its last CBC date.
    assert table["Patient ID"].iloc[0] == "MRN1001"
    first = table.set_index("Patient ID").loc["MRN1001"]
    assert (first["Priority"], first["Grade"]) == ("grade 3 or worse", 3)
    assert (first["WBC (10^9/L)"], first["ANC (10^9/L)"]) == ("3.10", "0.90")
    assert list(first["Flags"])[:2] == ["leukopenia", "neutropenia"]
    assert list(first["WBC trend"]) == [5.6, 3.1]
    assert first["Acknowledged"] == "no"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Grade 3 or worse"] == "1" and metrics["Not acknowledged"] == metrics["Patients"] != "0"


def test_search_and_grade_filters_narrow_the_worklist(imported_store) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="worklist_search").input("2002").run()
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN2002"]
    at.text_input(key="worklist_search").input("").run()
    at.selectbox(key="worklist_grade").select(3).run()
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN1001"]


def test_patient_timeline_charts_wbc_against_the_reference_band(imported_store) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/patient.py").run()
    assert not at.exception
    at.selectbox(key="patient_select").select_index(
        at.selectbox(key="patient_select").options.index("MRN1001 · (no name)")
    ).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    band_low = spec["data"][1]
    assert band_low["fill"] == "tonexty" and _array(band_low["y"]) == [4.0, 4.0]
    assert _array(spec["data"][2]["y"]) == [5.6, 3.1]
    assert spec["layout"]["yaxis"]["title"]["text"] == "WBC (10^9/L)"


def test_import_page_lists_past_imports_and_their_refusals(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url)
    import_path(store, DATA / "canonical-good.csv", imported_by="test")
    import_path(store, DATA / "canonical-bad-row.csv", imported_by="test")
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/imports.py").run()
    assert not at.exception
    batches = at.dataframe[0].value
    assert batches["File"].tolist() == ["canonical-bad-row.csv", "canonical-good.csv"]
    assert batches["Rejected"].tolist() == [1, 0]
    refusals = at.dataframe[1].value
    assert refusals[["location", "reason"]].values.tolist() == [["line 4", "unknown unit 'furlongs' for WBC"]]


def test_a_misspelt_site_time_zone_is_named_not_a_traceback(imported_store, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_TIMEZONE", "Europe/Lndon")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "MONITOR_TIMEZONE='Europe/Lndon' is not an IANA time zone" in at.error[0].value
