"""Doses inside a cycle: gemcitabine "D1 and D8 every 21 days" given on 1 and 8 October, 22 and 29 October,
12 and 19 November 2026 is 3 cycles of 21 days with two doses each, not 6 cycles of 7 and 14 days; on
28 November the patient is on C3D17 and the next dose is expected on 3 December (D22)."""

from __future__ import annotations

import pandas as pd

from monitor.analysis.cycles import cycle_days, cycle_table, readiness_now, treatment_cycles

ZONE = "Europe/London"  # the clocks change on 25 October, inside cycle 2
GEMCITABINE = "gemcitabine 1000 mg/m2 D1 and D8 every 21 days"
GEM_DOSES = ("2026-10-01", "2026-10-08", "2026-10-22", "2026-10-29", "2026-11-12", "2026-11-19")


def _at(date: str, time: str = "09:00") -> pd.Timestamp:
    return pd.Timestamp(f"{date} {time}", tz=ZONE).tz_convert("UTC")


def _chemo(dates: tuple[str, ...], regimen: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": 1,
            "kind": "chemotherapy",
            "start_at": [_at(d) for d in dates],
            "label": regimen.split()[0],
            "details": regimen,
        }
    )


def _counts(series: dict[str, float], plt: float = 180.0) -> pd.DataFrame:
    """ANC (and platelets) drawn at 07:30 on each date, before any dose of that day."""
    anc = pd.DataFrame({"collected_at": [_at(d, "07:30") for d in series], "value": list(series.values())})
    return pd.concat(
        [anc.assign(analyte="anc", lln=1.5), anc.assign(analyte="plt", value=plt, lln=150.0)]
    ).assign(patient_key=1)


# Cycle 1: baseline, D8 pre-dose, nadir 0.4 on D15, recovered by D21; cycle 2 the same shape; cycle 3 so far.
GEM_COUNTS = _counts(
    {
        "2026-10-01": 4.0,
        "2026-10-08": 2.0,
        "2026-10-12": 0.9,
        "2026-10-15": 0.4,
        "2026-10-19": 1.2,
        "2026-10-21": 2.1,
        "2026-10-22": 2.2,
        "2026-10-29": 1.8,
        "2026-11-02": 0.8,
        "2026-11-05": 0.45,
        "2026-11-11": 1.9,
        "2026-11-12": 2.0,
        "2026-11-19": 1.7,
        "2026-11-26": 0.7,
    }
)


def test_d1_d8_every_21_days_is_three_cycles_of_21_days_with_two_doses_each() -> None:
    cycles = treatment_cycles(GEM_COUNTS, _chemo(GEM_DOSES, GEMCITABINE), timezone=ZONE)
    assert cycles["cycle"].tolist() == [1, 2, 3]
    assert cycles["length_days"].tolist() == [21, 21, pd.NA]
    assert cycles["doses"].tolist() == ["D1, D8", "D1, D8", "D1, D8"]
    # The nadir, its day and the days below 0.5 are the cycle's, from D1 to the next D1.
    assert cycles["nadir_anc"].tolist()[:2] == [0.4, 0.45]
    assert cycles["nadir_day"].tolist()[:2] == [14, 14]  # D15, not D8 of a 7-day "cycle 2"
    assert cycles["recovery_day"].tolist()[:2] == [20, 20]
    assert cycles["days_anc_below_0_5_min"].tolist()[:2] == [1, 1]
    # Readiness is judged for the next D1 (22 October) on the counts before it, not for the D8 dose.
    assert cycles["ready_at_next"].tolist()[:2] == [True, True]
    table = cycle_table(cycles, timezone=ZONE)
    assert table["doses"].tolist() == ["D1, D8", "D1, D8", "D1, D8"]
    assert table["length"].tolist() == ["21", "21", ""]


def test_on_28_november_the_patient_is_on_c3d17_and_the_next_dose_is_expected_on_3_december() -> None:
    now = readiness_now(
        GEM_COUNTS, _chemo(GEM_DOSES, GEMCITABINE), as_of=_at("2026-11-28", "12:00"), timezone=ZONE
    )
    assert (now.loc[0, "cycle"], now.loc[0, "cycle_day"], now.loc[0, "next_dose_day"]) == (3, 16, 21)
    assert now.loc[0, "readiness"] == "Next dose expected on D22 (2026-12-03); readiness judged from D19"


def test_the_overlay_places_counts_on_the_day_of_their_cycle() -> None:
    placed = cycle_days(GEM_COUNTS, _chemo(GEM_DOSES, GEMCITABINE), timezone=ZONE)
    anc = placed[placed["analyte"].eq("anc")]
    dates = anc["collected_at"].dt.tz_convert(ZONE).dt.strftime("%m-%d")
    days = dict(zip(dates, zip(anc["cycle"], anc["day"], strict=True), strict=True))
    assert days["10-15"] == (1, 14) and days["11-05"] == (2, 14) and days["11-26"] == (3, 14)
    assert sorted(placed["cycle"].unique().tolist()) == [1, 2, 3]


def test_abvd_d1_d15_every_28_days_with_a_d15_given_a_day_late() -> None:
    doses = ("2026-01-05", "2026-01-19", "2026-02-02", "2026-02-17", "2026-03-02")
    counts = _counts({"2026-01-13": 0.9, "2026-01-30": 1.9, "2026-02-10": 0.6, "2026-02-27": 2.0})
    cycles = treatment_cycles(counts, _chemo(doses, "ABVD D1+D15 every 28 days"), timezone=ZONE)
    assert cycles["cycle"].tolist() == [1, 2, 3]
    assert cycles["length_days"].tolist() == [28, 28, pd.NA]
    assert cycles["doses"].tolist() == ["D1, D15", "D1, D16", "D1"]  # D15 moved by a day: within 2 days
    assert cycles["nadir_day"].tolist()[:2] == [8, 8]


def test_weekly_paclitaxel_within_a_21_day_carboplatin_cycle() -> None:
    doses = ("2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23", "2026-03-30")
    regimen = "carboplatin AUC 5 d1 + paclitaxel 80 mg/m2 days 1, 8 and 15 every 21 days"
    cycles = treatment_cycles(_counts({}), _chemo(doses, regimen), timezone=ZONE)
    assert cycles["doses"].tolist() == ["D1, D8, D15", "D1, D8"]
    assert cycles["length_days"].tolist() == [21, pd.NA]


def test_without_named_dose_days_every_dose_still_starts_a_cycle() -> None:
    """Nothing is guessed: "every 21 days" alone names no dose inside the cycle."""
    cycles = treatment_cycles(
        GEM_COUNTS, _chemo(GEM_DOSES, "gemcitabine 1000 mg/m2 every 21 days"), timezone=ZONE
    )
    assert cycles["length_days"].tolist() == [7, 14, 7, 14, 7, pd.NA]
    assert cycles["doses"].tolist() == ["D1"] * 6


def test_a_dose_off_the_named_days_starts_a_new_cycle() -> None:
    """D1 and D8 every 21 days: a dose on D12 is neither D8 (+-2 days) nor the next D1: it starts a cycle."""
    doses = ("2026-10-01", "2026-10-12")
    cycles = treatment_cycles(GEM_COUNTS, _chemo(doses, GEMCITABINE), timezone=ZONE)
    assert cycles["length_days"].tolist() == [11, pd.NA]
