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


def test_a_21_day_cycle_below_0_5_on_d8_and_d12_reports_4_to_9_days_between_its_neighbours() -> None:
    """ANC 0.6 on D6, 0.4 on D8 and D12, 0.6 on D15: below 0.5 for 4 days for certain (D8 to D12), at most
    9 (D6 to D15, the counts seen at or above 0.5 on either side)."""
    events = _chemo(START, START + pd.Timedelta(days=21))
    results = _anc({_day(0): 3.9, _day(5): 0.6, _day(7): 0.4, _day(11): 0.4, _day(14): 0.6, _day(20): 2.1})
    cycle = treatment_cycles(results, events).iloc[0]
    assert (cycle["days_anc_below_0_5_min"], cycle["days_anc_below_0_5_max"]) == (4, 9)
    assert cycle_table(treatment_cycles(results, events)).loc[0, "days ANC<0.5"] == "4-9"


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
    # Below from D10 to D13 for certain; at most from the dose (day 0) to the next dose's day (day 21).
    assert (closed.loc[0, "days_anc_below_0_5_min"], closed.loc[0, "days_anc_below_0_5_max"]) == (3, 21)
    still = treatment_cycles(_anc({_day(5): 1.1, _day(9): 0.3, _day(12): 0.2}), _chemo(START))
    assert still.loc[0, "days_anc_below_0_5_min"] == 3 and pd.isna(still.loc[0, "days_anc_below_0_5_max"])
    assert cycle_table(still).loc[0, "days ANC<0.5"] == "3-?"


def test_days_at_grade_3_are_calendar_days_not_elapsed_hours() -> None:
    """Grade 3 at 23:00 on D8 and 07:00 on D12 (3 days 8 hours apart): D9 to D12 are 4 calendar days apart,
    the convention of the cycle days; a neighbour seen better at 06:00 on D14 closes the most at D7-D14."""
    events = _chemo(START, START + pd.Timedelta(days=21))
    results = _anc({_day(6, 9): 1.6, _day(8, 23): 0.8, _day(12, 7): 0.9, _day(14, 6): 1.2, _day(20): 2.0})
    cycle = treatment_cycles(results, events).iloc[0]
    assert (cycle["days_grade3_plus_min"], cycle["days_grade3_plus_max"]) == (4, 8)


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
    assert (cycle["days_anc_below_0_5_min"], cycle["days_anc_below_0_5_max"]) == (4, 9)
