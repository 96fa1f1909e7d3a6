"""The nadir forecast (monitor.analysis.forecast): what it says for a patient, when it refuses, and that it
uses only what was known at the time asked."""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np
import pandas as pd
import pytest

from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.forecast import GRADE4_BELOW, MODEL, forecast_patient
from monitor.analysis.forecast.fit import DEFAULT_PRIORS
from monitor.analysis.forecast.model import simulate
from monitor.simulation.demo import simulate_cohort

START = pd.Timestamp("2026-03-02 09:00", tz="UTC")
REGIMEN = "docetaxel 75 mg/m2 every 21 days"
RULES = CycleRules()
JSON_FIELDS = [
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


def chemo(*days: float, details: str = REGIMEN) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": 1,
            "kind": "chemotherapy",
            "start_at": [START + pd.Timedelta(days=d) for d in days],
            "end_at": pd.NaT,
            "label": "cycle",
            "details": details,
        }
    )


def counts(pairs: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "collected_at": [START + pd.Timedelta(days=d) for d, _ in pairs],
            "value": [v for _, v in pairs],
        }
    )


def patient(
    slope: float, cycles: int = 4, days=(-2, 6, 9, 13)
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A patient following the model with the typical parameters and this slope in every cycle, counted
    without error on ``days`` of each cycle (day -2: before the first dose; day 0 = the dose), and its
    true curve every hour of every cycle."""
    p = DEFAULT_PRIORS
    dose_h = np.arange(cycles) * 21 * 24.0
    times = sorted({d * 24.0 + c * 21 * 24.0 for c in range(cycles) for d in days if c == 0 or d >= 0})
    hours = np.arange(0, cycles * 21 * 24.0)
    every = np.concatenate([np.array(times), hours])
    curve = simulate(
        np.array([p.circ0]),
        np.array([p.mtt_h]),
        np.array([p.gamma]),
        np.full((1, cycles), slope),
        dose_h,
        np.sort(every),
    )[0]
    values = dict(zip(np.sort(every), curve, strict=True))
    anc = counts([(t / 24.0, round(float(values[t]), 2)) for t in times])
    truth = simulate(
        np.array([p.circ0]),
        np.array([p.mtt_h]),
        np.array([p.gamma]),
        np.full((1, cycles), slope),
        dose_h,
        hours,
    )[0]
    return anc, chemo(*(np.arange(cycles) * 21.0)), truth


def test_a_patient_like_the_model_gets_the_nadir_of_its_next_cycle_inside_the_interval() -> None:
    anc, events, truth = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=63 + 4)  # day 4 of cycle 4
    found = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="UTC")
    assert found.reason is None and found.cycle == 4
    cycle = truth[63 * 24 + 1 :]
    true_nadir, true_day = cycle.min(), (np.argmin(cycle) + 1) / 24.0
    assert found.nadir_anc_low <= true_nadir <= found.nadir_anc_high
    assert abs(found.nadir_day - true_day) <= 1.5
    assert found.nadir_window[0] <= true_day <= found.nadir_window[1] + 1
    assert (true_nadir < GRADE4_BELOW) == (found.p_grade4 >= 0.5)
    assert found.recovery_day is not None and found.recovery_day > found.nadir_day
    assert found.model == MODEL and found.n_anc_used == (anc["collected_at"] < as_of).sum()


@pytest.mark.parametrize(("slope", "grade4"), [(2.0, False), (8.0, True)])
def test_a_mild_and_a_severe_patient_get_low_and_high_grade_4_probabilities(
    slope: float, grade4: bool
) -> None:
    anc, events, _ = patient(slope=slope)
    found = forecast_patient(anc, events, as_of=START + pd.Timedelta(days=67), rules=RULES, timezone="UTC")
    assert found.reason is None
    assert (found.p_grade4 > 0.9) if grade4 else (found.p_grade4 < 0.1)
    if not grade4:  # a nadir above 1.5 is never "back above 1.5"
        assert found.nadir_anc >= 1.5 or found.recovery_day is not None


def test_only_counts_collected_and_doses_given_before_the_time_asked_are_used() -> None:
    anc, events, _ = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=45)  # day 3 of cycle 3: cycle 4 and cycle 3's later counts unknown
    earlier = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="UTC")
    known = anc[anc["collected_at"] < as_of]
    assert earlier.cycle == 3 and earlier.n_anc_used == len(known)
    # Counts after the time asked change nothing, nor does a wildly different later cycle.
    noisy = pd.concat([anc, counts([(50.0, 0.01), (55.0, 30.0)])], ignore_index=True)
    same = forecast_patient(noisy, events, as_of=as_of, rules=RULES, timezone="UTC")
    assert same.as_dict() == earlier.as_dict()
    assert earlier.cycle_start == START + pd.Timedelta(days=42)


def test_the_same_counts_give_the_same_forecast_and_the_inputs_are_not_modified() -> None:
    anc, events, _ = patient(slope=4.0)
    before_anc, before_events = anc.copy(), events.copy()
    as_of = START + pd.Timedelta(days=67)
    first = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="UTC")
    second = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="UTC")
    assert first.as_dict() == second.as_dict()
    pd.testing.assert_frame_equal(anc, before_anc)
    pd.testing.assert_frame_equal(events, before_events)


def test_the_json_fields_are_the_commands_contract_with_iso_utc_start() -> None:
    anc, events, _ = patient(slope=4.0)
    found = forecast_patient(anc, events, as_of=START + pd.Timedelta(days=67), rules=RULES, timezone="UTC")
    data = found.as_dict()
    assert list(data) == JSON_FIELDS
    assert data["cycle_start"] == "2026-05-04T09:00:00Z"
    assert isinstance(data["nadir_window"], list) and len(data["nadir_window"]) == 2
    assert (
        0.0 <= data["p_grade4"] <= 1.0
        and data["nadir_anc_low"] <= data["nadir_anc"] <= data["nadir_anc_high"]
    )


def test_the_curve_has_an_80_percent_band_around_its_median_over_the_planned_cycle() -> None:
    anc, events, _ = patient(slope=4.0)
    found = forecast_patient(anc, events, as_of=START + pd.Timedelta(days=67), rules=RULES, timezone="UTC")
    curve = found.curve
    assert curve["day"].iloc[0] == 0 and curve["day"].iloc[-1] == pytest.approx(21.0)  # "every 21 days"
    assert (curve["low"] <= curve["median"]).all() and (curve["median"] <= curve["high"]).all()
    assert curve["at"].iloc[0] == found.cycle_start


@pytest.mark.parametrize(
    ("anc_days", "reason"),
    [
        ([(3.0, 2.0), (8.0, 0.9)], "no ANC in the 60 days before the first recorded dose"),
        ([(-90.0, 4.0), (8.0, 0.9)], "no ANC in the 60 days before the first recorded dose"),
        ([(-2.0, 4.0)], "no ANC yet from D5 of a cycle"),
        ([(-2.0, 4.0), (0.1, 4.1), (3.0, 2.5)], "no ANC yet from D5 of a cycle"),
    ],
)
def test_too_few_counts_say_not_enough_data_and_give_no_figures(anc_days, reason: str) -> None:
    found = forecast_patient(
        counts(anc_days), chemo(0.0), as_of=START + pd.Timedelta(days=10), rules=RULES, timezone="UTC"
    )
    data = found.as_dict()
    assert reason in data["reason"] and data["reason"].startswith("not enough data")
    assert data["cycle"] == 1 and data["cycle_start"] == "2026-03-02T09:00:00Z"
    assert all(
        data[k] is None for k in ("nadir_anc", "nadir_day", "nadir_window", "recovery_day", "p_grade4")
    )


def test_without_chemotherapy_before_the_time_asked_there_is_no_cycle_to_forecast() -> None:
    found = forecast_patient(
        counts([(-2.0, 4.0)]), chemo(5.0), as_of=START + pd.Timedelta(days=1), rules=RULES, timezone="UTC"
    )
    assert found.cycle is None and found.reason == "no chemotherapy recorded before this time"


def test_a_cycle_with_g_csf_is_not_forecast_and_g_csf_counts_of_earlier_cycles_are_left_out() -> None:
    # (G-CSF in cycle 1 only, as after a complicated first cycle: cycles 2-4 ran without it)
    anc, events, _ = patient(slope=4.0)
    gcsf = pd.DataFrame(
        {
            "patient_key": 1,
            "kind": "gcsf",
            "start_at": [START + pd.Timedelta(days=d) for d in (2.0, 65.0)],
            "end_at": [START + pd.Timedelta(days=9), pd.NaT],
            "label": "G-CSF",
            "details": "filgrastim",
        }
    )
    with_gcsf = pd.concat([events, gcsf], ignore_index=True)
    found = forecast_patient(anc, with_gcsf, as_of=START + pd.Timedelta(days=67), rules=RULES, timezone="UTC")
    assert found.reason is not None and "G-CSF" in found.reason and found.nadir_anc is None
    earlier = forecast_patient(
        anc, with_gcsf.iloc[:-1], as_of=START + pd.Timedelta(days=67), rules=RULES, timezone="UTC"
    )
    # Cycle 1's counts of days 6, 9 and 13 fall from G-CSF's start to 7 days after its end: left out.
    known = (anc["collected_at"] < START + pd.Timedelta(days=67)).sum()
    assert earlier.reason is None and earlier.n_anc_used == known - 3


def test_every_demo_chemotherapy_patient_gets_a_forecast_or_a_reason_within_seconds() -> None:
    cohort = simulate_cohort(60, seed=7, end_date=dt.date(2025, 6, 30))
    now = pd.Timestamp("2025-07-01", tz="UTC")
    results = cohort.results.rename(columns={"patient_id": "patient_key"})
    anc = results[results["analyte"].eq("anc")][["patient_key", "collected_at", "value"]]
    events = cohort.events.rename(columns={"patient_id": "patient_key", "start": "start_at", "end": "end_at"})
    treated = events.loc[events["kind"].eq("chemotherapy"), "patient_key"].unique()
    assert len(treated) >= 15
    seconds, forecast = [], 0
    for key in treated:
        started = time.perf_counter()
        found = forecast_patient(
            anc[anc["patient_key"].eq(key)],
            events[events["patient_key"].eq(key)],
            as_of=now,
            rules=RULES,
            timezone="Europe/London",
        )
        seconds.append(time.perf_counter() - started)
        assert (found.reason is None) != (found.nadir_anc is None)
        if found.reason is None:
            forecast += 1
            assert 0 <= found.nadir_anc_low <= found.nadir_anc <= found.nadir_anc_high
            assert 0 < found.nadir_day <= found.horizon_days and 0.0 <= found.p_grade4 <= 1.0
            assert not math.isnan(found.nadir_anc)
    assert forecast >= len(treated) // 3
    assert max(seconds) < 60.0  # none hangs (the timing itself: benchmarks.forecast, docs/benchmarks.md)


def test_g_csf_started_before_the_dose_but_acting_in_the_cycle_or_given_last_cycle_stops_the_forecast() -> (
    None
):
    anc, events, _ = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=67)

    def gcsf(start: float, end: float | None) -> pd.DataFrame:
        row = {"patient_key": 1, "kind": "gcsf", "label": "G-CSF", "details": "pegfilgrastim"}
        ended = pd.NaT if end is None else START + pd.Timedelta(days=end)
        return pd.DataFrame([row | {"start_at": START + pd.Timedelta(days=start), "end_at": ended}])

    # Pegfilgrastim the day before cycle 4's dose: acting through the cycle.
    before = forecast_patient(
        anc, pd.concat([events, gcsf(62.0, None)]), as_of=as_of, rules=RULES, timezone="UTC"
    )
    assert before.reason == "not forecast: G-CSF acts in this cycle (the model does not include its effect)"
    # Filgrastim in cycle 3 (days 44-50): primary or secondary prophylaxis is likely again.
    last = forecast_patient(
        anc, pd.concat([events, gcsf(44.0, 50.0)]), as_of=as_of, rules=RULES, timezone="UTC"
    )
    assert last.reason is not None and "G-CSF was given in the previous cycle" in last.reason


def test_weekly_cycles_are_not_forecast() -> None:
    anc = counts([(-2.0, 4.5), (5.0, 3.2), (12.0, 2.8), (19.0, 2.5)])
    events = chemo(0.0, 7.0, 14.0, 21.0, details="paclitaxel 80 mg/m2 weekly")
    found = forecast_patient(anc, events, as_of=START + pd.Timedelta(days=23), rules=RULES, timezone="UTC")
    assert found.reason is not None and found.reason.startswith("not forecast: cycles of 10 days or less")
    assert found.nadir_anc is None and found.cycle == 4


def test_a_grade_4_count_already_measured_in_the_cycle_makes_grade_4_certain_and_is_reported() -> None:
    anc, events, _ = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=63 + 10)
    measured = pd.concat([anc, counts([(63 + 8.0, 0.35)])], ignore_index=True)
    found = forecast_patient(measured, events, as_of=as_of, rules=RULES, timezone="UTC")
    assert found.p_grade4 == 1.0
    assert found.observed_nadir_anc == 0.35 and found.observed_nadir_day == 8.0
    late = forecast_patient(
        measured, events, as_of=START + pd.Timedelta(days=63 + 18), rules=RULES, timezone="UTC"
    )
    assert late.nadir_passed and not found.nadir_passed


def test_the_nadir_window_is_in_calendar_days_of_the_site_zone_and_recovery_follows_the_site_rule() -> None:
    anc, events, _ = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=67)
    at_nine = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="UTC")
    # The same instants seen from a zone where the 09:00 UTC dose falls at 23:00 the evening before: the
    # window's calendar days move one later; the elapsed nadir day does not.
    evening = forecast_patient(anc, events, as_of=as_of, rules=RULES, timezone="Pacific/Honolulu")
    assert evening.nadir_day == at_nine.nadir_day
    assert evening.nadir_window[1] >= at_nine.nadir_window[1]
    stricter = forecast_patient(anc, events, as_of=as_of, rules=CycleRules(recovery_anc=2.0), timezone="UTC")
    assert stricter.recovery_threshold == 2.0 and stricter.recovery_day > at_nine.recovery_day


def test_a_dose_named_in_the_regimen_text_scales_its_cycle_and_an_absurd_drug_effect_stays_finite() -> None:
    anc, events, _ = patient(slope=4.0)
    as_of = START + pd.Timedelta(days=67)
    full = forecast_patient(
        anc,
        events.assign(details="docetaxel 75 mg/m2 every 21 days"),
        as_of=as_of,
        rules=RULES,
        timezone="UTC",
    )
    reduced = events.assign(details="docetaxel 75 mg/m2 every 21 days")
    reduced.loc[reduced.index[-1], "details"] = "docetaxel 50 mg/m2 every 21 days"
    lower = forecast_patient(anc, reduced, as_of=as_of, rules=RULES, timezone="UTC")
    assert lower.nadir_anc > full.nadir_anc and lower.p_grade4 < full.p_grade4
    # A marrow wiped out after each dose (counts of 0.0): a forecast with a finite grade 4 certainty, quickly.
    wiped = anc.assign(value=np.where(anc["collected_at"] > START, 0.0, anc["value"]))
    started = time.perf_counter()
    found = forecast_patient(wiped, events, as_of=as_of, rules=RULES, timezone="UTC")
    assert time.perf_counter() - started < 60.0  # (no solver stall; timings are the benchmark's)
    assert found.reason in (None, "the model could not be fitted to these counts")
    if found.reason is None:
        assert found.p_grade4 == 1.0 or found.p_grade4 > 0.9
        assert np.isfinite(found.curve[["median", "low", "high"]].to_numpy()).all()


def test_a_time_without_a_zone_is_taken_as_utc() -> None:
    anc, events, _ = patient(slope=4.0)
    naive = forecast_patient(anc, events, as_of=pd.Timestamp("2026-05-08 09:00"), rules=RULES, timezone="UTC")
    aware = forecast_patient(
        anc, events, as_of=pd.Timestamp("2026-05-08 09:00Z"), rules=RULES, timezone="UTC"
    )
    assert naive.as_dict() == aware.as_dict()
