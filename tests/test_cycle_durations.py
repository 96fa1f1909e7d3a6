"""Durations in a cycle that clinicians act on: ANC < 0.5 (the taxane labels' "7 days or more") and days at
grade 3+, as sampled, in calendar days of the site's zone."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.cycles import cycle_table, treatment_cycles


def _at(text: str, zone: str = "UTC") -> pd.Timestamp:
    return pd.Timestamp(text, tz=zone).tz_convert("UTC")


def _chemo(*starts: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame({"patient_key": 1, "kind": "chemotherapy", "start_at": list(starts), "label": "x"})


def _anc(drawn: dict[pd.Timestamp, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": 1,
            "analyte": "anc",
            "collected_at": list(drawn),
            "value": list(drawn.values()),
            "lln": 1.5,
        }
    )


START = _at("2026-03-02 10:00")


def _day(n: int, hour: int = 8) -> pd.Timestamp:
    """Cycle day ``n`` (D1 = day 0) at ``hour``:00 UTC."""
    return START.normalize() + pd.Timedelta(days=n, hours=hour)


def test_a_21_day_cycle_below_0_5_on_d8_and_d12_reports_5_to_8_days_between_its_neighbours() -> None:
    """ANC 0.6 on D6, 0.4 on D8 and D12, 0.6 on D15: below 0.5 for 5 days for certain (D8 to D12, both
    counted), at most 8 (D7 to D14, strictly between the counts seen at or above 0.5 on either side)."""
    events = _chemo(START, START + pd.Timedelta(days=21))
    results = _anc({_day(0): 3.9, _day(5): 0.6, _day(7): 0.4, _day(11): 0.4, _day(14): 0.6, _day(20): 2.1})
    cycle = treatment_cycles(results, events).iloc[0]
    assert (cycle["days_anc_below_0_5_min"], cycle["days_anc_below_0_5_max"]) == (5, 8)
    assert cycle_table(treatment_cycles(results, events)).loc[0, "days ANC<0.5"] == "5-8"


def test_counts_not_below_0_5_give_0_days_and_no_count_after_the_dose_gives_unknown() -> None:
    events = _chemo(START, START + pd.Timedelta(days=21))
    mild = treatment_cycles(_anc({_day(0): 3.9, _day(9): 0.7, _day(20): 2.0}), events).iloc[0]
    assert (mild["days_anc_below_0_5_min"], mild["days_anc_below_0_5_max"]) == (0, 0)
    unseen = treatment_cycles(_anc({_day(0): 3.9, _day(21, hour=7): 2.0}), events)
    assert unseen.loc[0, ["days_anc_below_0_5_min", "days_anc_below_0_5_max"]].isna().all()
    assert cycle_table(unseen).loc[0, "days ANC<0.5"] == "unknown"


def test_still_below_0_5_at_the_next_dose_extends_to_the_cycle_end_and_open_in_the_last_cycle() -> None:
    closed = treatment_cycles(
        _anc({_day(9): 0.3, _day(12): 0.2}), _chemo(START, START + pd.Timedelta(days=21))
    )
    # Below on D10 to D13 for certain; at most on D2 to D21, strictly between the doses (days 0 and 21).
    assert (closed.loc[0, "days_anc_below_0_5_min"], closed.loc[0, "days_anc_below_0_5_max"]) == (4, 20)
    still = treatment_cycles(_anc({_day(5): 1.1, _day(9): 0.3, _day(12): 0.2}), _chemo(START))
    assert still.loc[0, "days_anc_below_0_5_min"] == 4 and pd.isna(still.loc[0, "days_anc_below_0_5_max"])
    assert cycle_table(still).loc[0, "days ANC<0.5"] == "4-?"


def test_days_at_grade_3_are_calendar_days_not_elapsed_hours() -> None:
    """Grade 3 at 23:00 on D9 and 07:00 on D13 (3 days 8 hours apart): D9 to D13 are 5 calendar days, the
    convention of the cycle days; neighbours seen better on D7 and at 06:00 on D15 close the most at
    D8-D14."""
    events = _chemo(START, START + pd.Timedelta(days=21))
    results = _anc({_day(6, 9): 1.6, _day(8, 23): 0.8, _day(12, 7): 0.9, _day(14, 6): 1.2, _day(20): 2.0})
    cycle = treatment_cycles(results, events).iloc[0]
    assert (cycle["days_grade3_plus_min"], cycle["days_grade3_plus_max"]) == (5, 7)


def test_calendar_days_of_a_duration_are_counted_in_the_site_zone() -> None:
    """In New York a count at 21:00 local (01:00 UTC the next day) stays on its local day."""
    zone = "America/New_York"
    start = _at("2026-06-01 10:00", zone)
    events = _chemo(start, start + pd.Timedelta(days=21))
    results = _anc(
        {
            _at("2026-06-06 21:00", zone): 0.7,  # D6
            _at("2026-06-08 21:00", zone): 0.3,  # D8
            _at("2026-06-12 08:00", zone): 0.4,  # D12
            _at("2026-06-15 08:00", zone): 0.9,  # D15
        }
    )
    cycle = treatment_cycles(results, events, timezone=zone).iloc[0]
    assert (cycle["days_anc_below_0_5_min"], cycle["days_anc_below_0_5_max"]) == (5, 8)


def test_days_below_0_5_are_counted_inclusively_as_a_clinician_counts_them() -> None:
    """ANC < 0.5 on D8 and D14, >= 0.5 on D7 and D15: 7 days (D8 to D14), the label's "7 days or more";
    with the neighbours on D5 and D18 it may have lasted D6 to D17, 12 days. Days at grade 3+ agree."""
    events = _chemo(START, START + pd.Timedelta(days=21))
    tight = treatment_cycles(_anc({_day(6): 1.1, _day(7): 0.4, _day(13): 0.3, _day(14): 1.2}), events)
    assert tight.loc[0, ["days_anc_below_0_5_min", "days_anc_below_0_5_max"]].tolist() == [7, 7]
    assert tight.loc[0, ["days_grade3_plus_min", "days_grade3_plus_max"]].tolist() == [7, 7]
    assert cycle_table(tight).loc[0, "days ANC<0.5"] == "7"
    loose = treatment_cycles(_anc({_day(4): 1.6, _day(7): 0.4, _day(13): 0.3, _day(17): 1.6}), events)
    assert loose.loc[0, ["days_anc_below_0_5_min", "days_anc_below_0_5_max"]].tolist() == [7, 12]
    assert loose.loc[0, ["days_grade3_plus_min", "days_grade3_plus_max"]].tolist() == [7, 12]


def test_a_single_count_below_0_5_is_one_day_never_0() -> None:
    events = _chemo(START, START + pd.Timedelta(days=21))
    once = treatment_cycles(_anc({_day(0): 3.9, _day(8): 0.7, _day(9): 0.4, _day(11): 0.8}), events)
    assert once.loc[0, ["days_anc_below_0_5_min", "days_anc_below_0_5_max"]].tolist() == [1, 2]
    assert cycle_table(once).loc[0, "days ANC<0.5"] == "1-2"
