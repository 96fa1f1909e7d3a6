"""The nadir forecast in the materialised status: filled for the patients in a cycle now after an import,
copied rather than refitted when its inputs did not change, refitted for the patient a new count touched;
the CBC-due window it moves; the worklist's "forecast grade 4" chip at the site's threshold, and that
threshold's validation; on both stores, through the real importer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import select

import db.forecasts
from db.accounts import SYSTEM, Viewer
from db.models import Patient, PatientStatus
from monitor.analysis.cycles import CycleRules
from monitor.analysis.due import due_items, nadir_status
from monitor.analysis.rules import SiteRules, setting_rows
from services.admin import recompute_all
from services.rules import set_setting
from tests.forecast_data import CYCLE_2, import_cohort
from tests.test_cli import monitor

NOT_YET = (
    "not enough data: no ANC yet from D5 of a cycle (before then a forecast would be the population's alone, "
    "whatever this patient's marrow does)"
)

COLUMNS = [
    "forecast_cycle",
    "nadir_anc",
    "nadir_anc_low",
    "nadir_anc_high",
    "nadir_day",
    "nadir_window_first",
    "nadir_window_last",
    "recovery_day",
    "p_grade4",
    "forecast_reason",
    "forecast_key",
]


def _status(store) -> dict[str, dict[str, object]]:
    with store() as session:
        rows = session.execute(
            select(
                Patient.mrn, *(getattr(PatientStatus, c) for c in COLUMNS), PatientStatus.nadir_forecast
            ).join(PatientStatus, PatientStatus.patient_id == Patient.id)
        ).all()
    return {row[0]: dict(zip([*COLUMNS, "nadir_forecast"], row[1:], strict=True)) for row in rows}


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """The patient keys fitted (``forecast_patient`` called by the status), in order."""
    called: list[int] = []
    real = db.forecasts.forecast_patient

    def counted(anc, events, **kwargs):
        called.append(int(events["patient_key"].iloc[0]))
        return real(anc, events, **kwargs)

    monkeypatch.setattr(db.forecasts, "forecast_patient", counted)
    return called


def _key(store, mrn: str) -> int:
    with store() as session:
        return int(session.scalar(select(Patient.id).where(Patient.mrn == mrn)))


def test_an_import_fills_the_forecast_of_the_patients_in_a_cycle_now(store, tmp_path: Path) -> None:
    import_cohort(store, tmp_path)
    status = _status(store)
    treated = status["FC-1"]
    assert treated["forecast_cycle"] == 2 and treated["forecast_reason"] is None
    assert treated["nadir_anc_low"] <= treated["nadir_anc"] <= treated["nadir_anc_high"]  # type: ignore[operator]
    assert 0 <= treated["p_grade4"] <= 1 and len(str(treated["forecast_key"])) == 64  # type: ignore[operator]
    assert treated["nadir_forecast"] is True
    waiting = status["FC-2"]
    assert (waiting["forecast_cycle"], waiting["forecast_reason"]) == (
        1,
        NOT_YET,
    )
    assert waiting["p_grade4"] is None and waiting["nadir_window_first"] is None
    assert waiting["nadir_forecast"] is False  # the default window stands
    assert all(value is None for value in status["OK-1"].values())


def test_a_cycle_with_g_csf_is_not_forecast_in_the_status_as_on_the_command_line(
    store, db_url: str, tmp_path: Path
) -> None:
    import_cohort(store, tmp_path, gcsf=True)
    reason = "not forecast: G-CSF acts in this cycle (the model does not include its effect)"
    status = _status(store)["FC-1"]
    assert (status["forecast_cycle"], status["forecast_reason"], status["p_grade4"]) == (2, reason, None)
    assert status["nadir_forecast"] is False
    found = json.loads(monitor("forecast", "FC-1", "--format", "json", url=db_url).stdout)
    assert (found["cycle"], found["reason"]) == (2, reason)


def test_a_recompute_with_unchanged_inputs_copies_the_forecasts_and_a_new_count_refits_only_its_patient(
    store, tmp_path: Path, fits: list[int]
) -> None:
    import_cohort(store, tmp_path)
    before = _status(store)
    assert sorted(fits) == sorted({_key(store, "FC-1"), _key(store, "FC-2")})  # each fitted once
    fits.clear()
    assert recompute_all(store, now=datetime.now(UTC), timezone="UTC") == 3
    assert fits == [] and _status(store) == before
    # A threshold of the worklist is not an input of the forecast: no refit either.
    set_setting(
        store, "cycles.forecast_grade4_threshold", 0.2, viewer=SYSTEM, now=datetime.now(UTC), timezone="UTC"
    )
    assert fits == [] and _status(store) == before
    # A new count of FC-1 (D4 of cycle 2) refits FC-1 alone, from one more count.
    import_cohort(store, tmp_path, extra=(("FC-1", CYCLE_2 + 3, 3.1),))
    assert fits == [_key(store, "FC-1")]
    after = _status(store)
    assert after["FC-1"]["forecast_key"] != before["FC-1"]["forecast_key"]
    assert after["FC-2"] == before["FC-2"]


def test_db_upgrade_fills_the_forecasts_of_a_store_from_before_them(
    store, engine, db_url: str, tmp_path: Path
) -> None:
    from db.migrate import downgrade

    import_cohort(store, tmp_path)
    downgrade(engine, "0019")  # as if the store came from before the forecast
    upgraded = monitor("db", "upgrade", url=db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(was 0019_febrile_until)" in upgraded.stdout  # upgraded through the forecast's revision
    status = _status(store)
    assert status["FC-1"]["forecast_cycle"] == 2 and status["FC-1"]["p_grade4"] is not None
    assert status["FC-2"]["forecast_reason"] == NOT_YET


def _chemo(*starts: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": 1,
            "kind": "chemotherapy",
            "details": "docetaxel",
            "start_at": pd.to_datetime(list(starts), utc=True),
        }
    )


def _patients(status: pd.DataFrame) -> pd.DataFrame:
    return status.reset_index().assign(
        patient_id="P-1",
        cycle=2,
        last_collected_at=pd.Timestamp("2026-03-01 08:00", tz="UTC"),
        **{f"latest_{a}_grade": pd.NA for a in ("wbc", "anc", "alc")},
    )


def test_a_forecast_window_is_the_window_a_cbc_is_due_in_and_the_sentence_says_so() -> None:
    events = _chemo("2026-03-02 10:00")
    counts = pd.DataFrame(columns=["patient_key", "analyte", "collected_at"])
    forecast = pd.DataFrame(
        {"forecast_cycle": [1], "nadir_window_first": [9], "nadir_window_last": [11]},
        index=pd.Index([1], name="patient_key"),
    )
    rules = CycleRules()
    default = nadir_status(events, counts, rules=rules, timezone="UTC").loc[1]
    moved = nadir_status(events, counts, rules=rules, timezone="UTC", forecasts=forecast).loc[1]
    assert (default["nadir_window"], default["nadir_forecast"]) == ("D8-D15", False)
    assert (moved["nadir_window"], moved["nadir_forecast"]) == ("D10-D12", True)
    assert moved["nadir_opens_at"] == pd.Timestamp("2026-03-11", tz="UTC")
    assert moved["nadir_closes_at"] == pd.Timestamp("2026-03-14", tz="UTC")
    # Two days before the forecast window opens the CBC is due by the lead time; the default would already
    # have been open (D8 is 9 March).
    as_of = pd.Timestamp("2026-03-09 12:00", tz="UTC")
    due = due_items(
        _patients(pd.DataFrame([moved]).rename_axis("patient_key")), as_of=as_of, rules=rules, timezone="UTC"
    )
    assert due["reason"].tolist() == [
        "CBC due: C1 nadir forecast D10-D12 opens 2026-03-11; no count since 2026-03-01"
    ]
    old = due_items(
        _patients(pd.DataFrame([default]).rename_axis("patient_key")),
        as_of=as_of,
        rules=rules,
        timezone="UTC",
    )
    assert old["reason"].tolist() == [
        "CBC due: C1 nadir window D8-D15 open until 2026-03-16; no count since 2026-03-01"
    ]
    # A forecast of another cycle (an earlier one) leaves the latest cycle's default window.
    stale = forecast.assign(forecast_cycle=0)
    assert (
        nadir_status(events, counts, rules=rules, timezone="UTC", forecasts=stale).loc[1, "nadir_window"]
        == "D8-D15"
    )


@pytest.mark.parametrize(("drawn", "sampled"), [("2026-03-09 08:00", True), ("2026-03-17 08:00", False)])
def test_a_count_in_the_window_the_forecast_replaced_samples_it_so_it_is_never_missed_in_hindsight(
    drawn: str, sampled: bool
) -> None:
    events = _chemo("2026-03-02 10:00")
    # D8 is in the default window D8-D15 (not in the forecast's D10-D12); D16 is in neither.
    counts = pd.DataFrame(
        {"patient_key": [1], "analyte": ["anc"], "collected_at": pd.to_datetime([drawn], utc=True)}
    )
    forecast = pd.DataFrame(
        {"forecast_cycle": [1], "nadir_window_first": [9], "nadir_window_last": [11]},
        index=pd.Index([1], name="patient_key"),
    )
    found = nadir_status(events, counts, rules=CycleRules(), timezone="UTC", forecasts=forecast).loc[1]
    assert (found["nadir_window"], found["nadir_sampled"]) == ("D10-D12", sampled)
    missed = due_items(
        _patients(pd.DataFrame([found]).rename_axis("patient_key")),
        as_of=pd.Timestamp("2026-03-18 12:00", tz="UTC"),
        rules=CycleRules(),
        timezone="UTC",
    )
    assert missed["kind"].tolist() == ([] if sampled else ["missed"])


@pytest.mark.parametrize("value", [0, -0.1, 1.01, float("nan"), True, "often"])
def test_the_grade_4_threshold_is_a_probability_above_0_and_at_most_1(value: object) -> None:
    with pytest.raises(ValueError, match="forecast_grade4_threshold"):
        SiteRules.from_mapping({"cycles": {"forecast_grade4_threshold": value}})


def test_the_grade_4_threshold_is_a_setting_with_its_default_and_source() -> None:
    assert (
        SiteRules.from_mapping({"cycles": {"forecast_grade4_threshold": 1}}).cycles.forecast_grade4_threshold
        == 1
    )
    row = next(r for r in setting_rows(SiteRules()) if r["key"] == "cycles.forecast_grade4_threshold")
    assert (row["value"], row["default"]) == (0.5, 0.5)
    assert row["source"].startswith("no source: site decision") and row["source"].endswith("Nadir forecast")


@pytest.fixture
def app_store(store, db_url: str, tmp_path: Path, monkeypatch) -> str:
    import_cohort(store, tmp_path)
    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_TIMEZONE", "UTC")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield db_url
    st.cache_data.clear()
    st.cache_resource.clear()


def _flags(at) -> dict[str, list[str]]:
    table = at.dataframe[0].value.set_index("Patient ID")
    return {patient: list(table.loc[patient, "Flags"]) for patient in table.index}


def test_the_worklist_shows_the_forecast_grade_4_chip_with_its_figure_from_the_threshold(
    app_store: str, store
) -> None:
    from tests.test_dashboard import _app

    chance = _status(store)["FC-1"]["p_grade4"]
    assert isinstance(chance, float) and 0 < chance < 1  # this cohort's forecast is neither sure nor nil
    chip = f"forecast grade 4: {round(100 * chance)} %"
    now = datetime.now(UTC)
    for threshold, shown in ((chance, True), (min(1.0, chance + 0.001), False)):
        set_setting(
            store, "cycles.forecast_grade4_threshold", threshold, viewer=SYSTEM, now=now, timezone="UTC"
        )
        st.cache_data.clear()
        at = _app(Viewer("admin", "admin", None)).run()
        assert not at.exception
        flags = _flags(at)
        assert (chip in flags["FC-1"]) is shown, (threshold, flags["FC-1"])
        assert not any(f.startswith("forecast grade 4") for f in flags["FC-2"] + flags["OK-1"])
    assert any("Forecast grade 4" in caption.value for caption in at.caption)
    listed = json.loads(monitor("patients", "--format", "json", url=app_store).stdout)
    assert {p["patient_id"]: p["p_grade4"] for p in listed}["FC-1"] == chance
