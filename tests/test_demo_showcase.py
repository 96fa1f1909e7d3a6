"""The demo's showcase patients: after the simulated cohort, which they leave as it was, each with the history
its label promises, in the store on both databases with the regimen setting one of them needs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM
from db.models import AuditLog
from db.queries import find_patient, patient_events, patient_list, patient_results
from db.settings import site_rules
from monitor.simulation.demo import LOCAL_TZ, simulate_cohort
from monitor.simulation.demo.showcase import SHOWCASES, TAC, TAC_SETTING, with_showcase
from services.admin import remove_demo, seed_demo

END = dt.date(2025, 6, 30)
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)  # a Wednesday morning in UTC: the demo's "today"
IDS = {case.code: f"DEMO-{61 + n:04d}" for n, case in enumerate(SHOWCASES)}


@pytest.fixture(scope="module")
def both():
    return simulate_cohort(60, seed=7, end_date=END), with_showcase(
        simulate_cohort(60, seed=7, end_date=END), end_date=END
    )


def test_the_showcase_follows_the_simulated_patients_and_leaves_them_as_they_were(both) -> None:
    simulated, shown = both
    assert shown.patients["patient_id"].tolist()[60:] == list(IDS.values())
    for name in ("patients", "memberships", "events", "overrides"):
        frame = getattr(shown, name)
        mine = frame[frame["patient_id"].isin(simulated.patients["patient_id"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, getattr(simulated, name))
    results = shown.results[shown.results["patient_id"].isin(simulated.patients["patient_id"])]
    pd.testing.assert_frame_equal(results.drop(columns="loinc").reset_index(drop=True), simulated.results)


def test_the_showcase_is_the_same_for_the_same_end_date_and_marked_synthetic(both) -> None:
    _, shown = both
    again = with_showcase(simulate_cohort(60, seed=7, end_date=END), end_date=END)
    for name in ("patients", "memberships", "labs", "results", "events"):
        pd.testing.assert_frame_equal(getattr(shown, name), getattr(again, name))
    showcase = shown.patients.iloc[60:]
    assert showcase["name"].str.fullmatch(r"Synthetic Patient \d{3}").all()
    assert showcase["scenario_label"].str.startswith("Synthetic: ").all()
    assert shown.labs["name"].str.contains("(synthetic)", regex=False).all()


def test_nothing_of_the_showcase_lies_in_the_future_of_the_demos_today(both) -> None:
    _, shown = both
    mine = shown.results[shown.results["patient_id"].isin(IDS.values())]
    start_of_end_date = pd.Timestamp(END).tz_localize("UTC")  # the demo's "today" is a date in UTC
    assert mine["collected_at"].max() < start_of_end_date
    assert shown.events[shown.events["patient_id"].isin(IDS.values())]["start"].max() < start_of_end_date


@pytest.fixture
def seeded(demo_copy) -> sessionmaker[Session]:
    return demo_copy(NOW)


def _history(store: sessionmaker[Session], code: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    with store() as session:
        key = find_patient(session, IDS[code], viewer=SYSTEM).id
        results = patient_results(session, key, viewer=SYSTEM)
        events = patient_events(session, key, viewer=SYSTEM)
        listed = patient_list(session, viewer=SYSTEM, today=NOW.date(), patient_key=key).iloc[0]
    local = results.assign(at=results["collected_at"].dt.tz_convert(LOCAL_TZ).dt.strftime("%m-%d %H:%M"))
    return local[local["analyte"].isin(["anc", "temp"])], events, listed


def _readings(results: pd.DataFrame) -> list[tuple[str, str, float]]:
    return list(zip(results["at"], results["analyte"], results["value"], strict=True))


def test_febrile_neutropenia_in_a_cycle_and_agranulocytosis_with_fever_outside_one(seeded) -> None:
    results, events, listed = _history(seeded, "fn_chemotherapy")
    assert _readings(results)[-2:] == [("11-24 08:10", "anc", 0.3), ("11-24 11:30", "temp", 38.6)]
    assert results["loinc"].iloc[-1] == "8331-1"  # oral
    assert events["kind"].tolist() == ["chemotherapy"] and listed["cycle"] == 1

    results, events, listed = _history(seeded, "agranulocytosis_fever")
    assert _readings(results)[-2:] == [("11-24 08:40", "anc", 0.1), ("11-24 10:15", "temp", 38.9)]
    assert "chemotherapy" not in set(events["kind"]) and pd.isna(listed["cycle"])
    assert events.loc[events["kind"] == "medication", "label"].str.startswith("Metamizole").all()


def test_a_sustained_fever_70_minutes_apart_with_a_falling_anc(seeded) -> None:
    results, _, _ = _history(seeded, "sustained_fever_falling_anc")
    assert _readings(results)[-4:] == [
        ("11-22 08:00", "anc", 1.6),
        ("11-24 08:00", "anc", 0.8),
        ("11-24 09:30", "temp", 38.1),
        ("11-24 10:40", "temp", 38.2),
    ]


def test_nadir_windows_opening_tomorrow_and_closed_without_a_count(seeded) -> None:
    results, _, listed = _history(seeded, "nadir_window_opening")
    # cycle 2 began 6 days ago: its days 7-14 start tomorrow, and no count since its first day
    assert (listed["cycle"], listed["cycle_day"]) == (2, 6)
    assert results.loc[results["analyte"] == "anc", "at"].iloc[-1] == "11-19 08:30"
    results, _, listed = _history(seeded, "nadir_window_missed")
    assert (listed["cycle"], listed["cycle_day"]) == (1, 20)
    assert results.loc[results["analyte"] == "anc", "at"].tolist() == ["11-05 08:30"]


def test_tac_is_high_risk_in_the_settings_set_by_the_system_and_given_without_g_csf(seeded) -> None:
    _, events, _ = _history(seeded, "high_risk_without_gcsf")
    assert events["details"].tolist() == [TAC[1]] and "gcsf" not in set(events["kind"])
    with seeded() as session:
        regimen = site_rules(session).cycles.regimen(TAC[1])
        audited = session.execute(
            select(AuditLog.username, AuditLog.details).where(AuditLog.action == "settings")
        ).all()
    assert regimen is not None and (regimen.fn_risk, regimen.fn_risk_source) == tuple(TAC_SETTING.values())
    assert [username for username, _ in audited] == ["system"]
    remove_demo(seeded, now=NOW, by="admin")
    with seeded() as session:
        assert site_rules(session).cycles.regimen(TAC[1]) is None


def test_a_site_that_set_tacs_risk_itself_keeps_it(store: sessionmaker[Session]) -> None:
    from services.rules import set_setting

    set_setting(
        store, f"cycles.regimens.{TAC[1]}.fn_risk", "intermediate", viewer=SYSTEM, now=NOW, timezone="UTC"
    )
    seed_demo(store, patients=3, seed=7, now=NOW, timezone="UTC")
    with store() as session:
        regimen = site_rules(session).cycles.regimen(TAC[1])
    assert regimen is not None and regimen.fn_risk == "intermediate"


def test_dose_limiting_neutropenia_then_the_next_cycle_and_a_cycle_given_late(seeded) -> None:
    results, events, _ = _history(seeded, "dose_limiting_neutropenia")
    anc = results[results["analyte"] == "anc"]
    assert anc["value"].tolist() == [4.0, 0.4, 0.3, 0.45, 2.1]
    assert anc["at"].tolist() == ["10-26 09:00", "11-02 09:00", "11-08 09:00", "11-09 09:00", "11-16 08:30"]
    assert events["kind"].tolist() == ["chemotherapy", "chemotherapy"]  # no G-CSF

    results, events, _ = _history(seeded, "cycle_delayed")
    doses = events.loc[events["kind"] == "chemotherapy", "start_at"]
    assert (doses.iloc[1] - doses.iloc[0]).days == 28  # 7 days after the planned day 22
    planned = doses.iloc[0] + pd.Timedelta(days=21)
    on_the_day = results[(results["analyte"] == "anc") & (results["collected_at"].dt.date == planned.date())]
    assert on_the_day["value"].tolist() == [1.1]


def test_temperatures_are_in_celsius_from_the_ward_and_never_a_cbc(seeded) -> None:
    results, _, listed = _history(seeded, "afebrile_with_gcsf")
    temps = results[results["analyte"] == "temp"]
    assert temps["value"].between(36.0, 37.5).all() and len(temps) == 5
    assert set(temps["unit"]) == {"Cel"} and set(temps["lab"]) == {"DEMO-WARD"}
    assert listed["n_panels"] == 5  # five CBCs; the five temperatures are not panels
