"""The nadir forecast on the Patient timeline and Treatment cycles pages (AppTest over the synthetic demo
cohort): the sentence with its decision-support caption for a patient with a forecast, the reason in one line
for one without, nothing for a patient without chemotherapy. Patients are chosen by what the services say of
them, not by their identifiers, so the tests follow the demo as it changes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from db.accounts import SYSTEM
from db.store import open_store
from monitor.analysis.forecast import Forecast
from services.admin import seed_demo
from services.patients import patient_view
from services.worklist import treated_patients, worklist
from tests.test_dashboard import _app, _array, _clear_caches  # noqa: F401 (an autouse fixture)
from ui.forecast import decision_support_caption, forecast_sentence
from ui.text import plain
from ui.timeline import forecast_ahead

# The services compute a patient view with its forecast in 1-3.5 s on the 2-core machine; a page adds the
# worklist: generous, so that a loaded machine does not fail the test.
PAGE_SECONDS = 60


@dataclass(frozen=True)
class Demo:
    url: str
    forecast_key: int  # a treated patient with a forecast drawn ahead of the current cycle's last ANC
    forecast: Forecast
    reason_key: int  # a treated patient whose latest cycle is not forecast, with the reason
    reason: str
    untreated_key: int  # a patient without chemotherapy


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    url = f"sqlite:///{tmp_path_factory.mktemp('forecast') / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    now = datetime.now(UTC)
    seed_demo(store, patients=60, seed=7, now=now, timezone="UTC")
    treated = treated_patients(store, viewer=SYSTEM)
    everyone = worklist(store, viewer=SYSTEM, timezone="UTC", now=now)["patient_key"].tolist()
    untreated = next(key for key in everyone if key not in set(treated))
    with_forecast: tuple[int, Forecast] | None = None
    with_reason: tuple[int, str] | None = None
    for key in treated:
        view = patient_view(store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=now)
        found = view.cycles.forecast
        assert found is not None
        anc = view.results.loc[view.results["analyte"].eq("anc").to_numpy(dtype=bool), "collected_at"]
        ahead = found.reason is None and not found.nadir_passed and len(forecast_ahead(found, anc))
        if with_forecast is None and ahead:
            with_forecast = (key, found)
        if with_reason is None and found.reason is not None:
            with_reason = (key, found.reason)
        if with_forecast and with_reason:
            break
    assert with_forecast and with_reason, "the demo cohort has a forecast patient and one with a reason"
    return Demo(url, *with_forecast, *with_reason, untreated)


def _open(demo: Demo, monkeypatch, page: str, select: str, key: int) -> AppTest:
    monkeypatch.setenv("MONITOR_DATABASE_URL", demo.url)
    monkeypatch.setenv("MONITOR_SEED_DEMO", "0")
    at = _app(timeout=PAGE_SECONDS).run()
    at.switch_page(page).run()
    began = time.perf_counter()
    at.selectbox(key=select).set_value(key).run()
    print(f"{Path(page).stem}: patient {key} opened in {time.perf_counter() - began:.1f} s")
    assert not at.exception
    return at


def _shown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def _chart(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _forecast_traces(spec: dict) -> dict[str, dict]:
    return {
        trace["name"]: trace
        for trace in spec["data"]
        if trace.get("legendgroup") in ("forecast", "forecast band")
    }


@pytest.mark.parametrize(
    ("page", "select"),
    [("app_pages/patient.py", "patient_select"), ("app_pages/cycles.py", "cycles_patient")],
)
def test_a_forecast_is_said_in_words_with_its_decision_support_caption_and_drawn(
    demo: Demo, monkeypatch, page: str, select: str
) -> None:
    at = _open(demo, monkeypatch, page, select, demo.forecast_key)
    sentence = plain(forecast_sentence(demo.forecast))
    assert sentence.startswith("Nadir forecast ")
    said = [text for text in _shown(at) if sentence in text]
    assert len(said) == 1 and said[0].startswith(f"**Cycle {demo.forecast.cycle} (D1 ")
    assert plain(decision_support_caption()) in [c.value for c in at.caption]
    about = [e for e in at.expander if e.label == "About this forecast"]
    assert len(about) == 1
    assumptions = " ".join(m.value for m in about[0].markdown)
    for words in ("Friberg 2002", "population priors", "same kind", "No G-CSF", "ANC only", "Validation"):
        assert words in assumptions
    traces = _forecast_traces(_chart(at))
    assert {"forecast (median)", "80 % band"} <= set(traces)
    assert "forecast" in traces["forecast (median)"]["hovertemplate"]


def test_the_timelines_forecast_starts_at_the_last_anc_of_the_cycle(demo: Demo, monkeypatch) -> None:
    at = _open(demo, monkeypatch, "app_pages/patient.py", "patient_select", demo.forecast_key)
    spec = _chart(at)
    median = _forecast_traces(spec)["forecast (median)"]
    anc = next(trace for trace in spec["data"] if trace["name"] == "Neutrophils (ANC)")
    start = pd.Timestamp(demo.forecast.cycle_start).tz_localize(None)
    in_cycle = [pd.Timestamp(x) for x in anc["x"] if pd.Timestamp(x) >= start]
    first = pd.Timestamp(_array(median["x"])[0])
    assert first >= max(in_cycle, default=start)
    # The window shows the forecast to its end, past the last count.
    assert pd.Timestamp(spec["layout"]["xaxis"]["range"][1]) >= pd.Timestamp(_array(median["x"])[-1])


def test_the_cycles_chart_shades_the_forecast_nadir_window(demo: Demo, monkeypatch) -> None:
    at = _open(demo, monkeypatch, "app_pages/cycles.py", "cycles_patient", demo.forecast_key)
    first, last = demo.forecast.nadir_window or (0, 0)
    labels = [a.get("text") for a in _chart(at)["layout"]["annotations"]]
    assert f"forecast nadir D{first + 1}-D{last + 1}" in labels


@pytest.mark.parametrize(
    ("page", "select"),
    [("app_pages/patient.py", "patient_select"), ("app_pages/cycles.py", "cycles_patient")],
)
def test_a_cycle_without_a_forecast_says_why_in_one_muted_line(
    demo: Demo, monkeypatch, page: str, select: str
) -> None:
    at = _open(demo, monkeypatch, page, select, demo.reason_key)
    said = demo.reason.removeprefix("not forecast: ")
    assert plain(f"No nadir forecast: {said}") in [c.value for c in at.caption]
    assert not [
        text
        for text in _shown(at)
        if "Nadir forecast " in text or "Decision support, not a prediction" in text
    ]
    assert not _forecast_traces(_chart(at))


def test_a_patient_without_chemotherapy_shows_no_forecast_at_all(demo: Demo, monkeypatch) -> None:
    at = _open(demo, monkeypatch, "app_pages/patient.py", "patient_select", demo.untreated_key)
    assert not [text for text in _shown(at) if "forecast" in text.lower()]
    assert not [e for e in at.expander if e.label == "About this forecast"]
    assert not _forecast_traces(_chart(at))
