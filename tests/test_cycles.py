"""Treatment cycles, before/after comparison and the panel pattern, as an oncology unit reads them."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.analysis.cycles import (
    CycleRules,
    before_after,
    cycle_days,
    cycle_notation,
    cycle_table,
    cycle_trend,
    treatment_cycles,
)
from monitor.analysis.patterns import panel_pattern
from monitor.analysis.rules import SiteRules, set_value, setting_rows

START = pd.Timestamp("2026-03-02 09:00", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=n)


def chemo(patient: int, *days: float, regimen: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": patient,
            "kind": "chemotherapy",
            "start_at": [day(d) for d in days],
            "label": [f"cycle {i + 1}" for i in range(len(days))],
            "details": regimen,
        }
    )


def counts(patient: int, analyte: str, series: dict[float, float], lln: float = 1.5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": patient,
            "analyte": analyte,
            "collected_at": [day(d) for d in series],
            "value": list(series.values()),
            "lln": lln,
        }
    )


def test_a_cycle_runs_to_the_next_start_and_results_count_in_calendar_days_from_day_0() -> None:
    events = chemo(1, 0, 21)  # at 09:00 UTC
    # 19.9 days later (06:36 on the day before the next start) is day 20 of cycle 1; 20.9 days (06:36 on the
    # next dosing day, before the dose) is already that cycle's D1: its pre-treatment count.
    results = counts(1, "anc", {0: 4.0, 10: 0.9, 19.9: 1.9, 20.9: 2.0, 21: 3.0, 30: 0.7})
    placed = cycle_days(results, events)
    assert placed[["cycle", "day"]].values.tolist() == [[1, 0], [1, 10], [1, 20], [2, 0], [2, 0], [2, 9]]
    assert cycle_notation(9) == "D10"


def test_days_are_calendar_days_in_the_site_zone_across_a_clock_change() -> None:
    """A chemotherapy given at noon in London on 20 March; the clocks go forward on 29 March."""
    london = [pd.Timestamp(t, tz="Europe/London") for t in ("2026-03-20 12:00", "2026-04-10 12:00")]
    events = pd.DataFrame({"patient_key": 1, "kind": "chemotherapy", "start_at": london}).assign(
        start_at=lambda e: e["start_at"].dt.tz_convert("UTC")
    )
    drawn = pd.Series(
        pd.to_datetime(["2026-03-27 08:00", "2026-03-30 00:30", "2026-04-10 08:00"]).tz_localize(
            "Europe/London"
        )
    )
    results = pd.DataFrame(
        {"patient_key": 1, "analyte": "anc", "value": [0.9, 1.2, 2.0], "lln": 1.5, "collected_at": drawn}
    ).assign(collected_at=lambda r: r["collected_at"].dt.tz_convert("UTC"))
    placed = cycle_days(results, events, timezone="Europe/London")
    # 27 March 08:00 is D8 though less than 7 x 24 hours after noon on 20 March; 00:30 BST on 30 March is
    # D11; the morning of 10 April, before that day's noon dose, is C2D1.
    assert placed[["cycle", "day"]].values.tolist() == [[1, 7], [1, 10], [2, 0]]
    table = treatment_cycles(results, events, timezone="Europe/London")
    assert table.loc[0, "length_days"] == 21 and table.loc[0, "nadir_day"] == 7
    # The C2D1 morning count (ANC 2.0) is the pre-treatment count that decides readiness for cycle 2.
    assert table.loc[0, "ready_anc"] == 2.0
    # Counted in UTC, 00:30 BST on 30 March is still 29 March: day 9.
    assert cycle_days(results, events)["day"].tolist() == [7, 9, 0]


def test_the_last_cycle_ends_with_its_overdue_period_unless_configured() -> None:
    """No length in the regimen: the next dose is expected on day 28 (the site default) and the cycle
    stays open two cycle lengths more, to day 84."""
    events = chemo(1, 0)
    results = counts(1, "anc", {10: 0.9, 83.9: 1.0, 84: 0.2})
    cycles = treatment_cycles(results, events)
    assert cycles.loc[0, "nadir_anc"] == 0.9  # the 0.2 on day 84 is after the cycle
    longer = treatment_cycles(results, events, rules=CycleRules(default_cycle_days=35))
    assert longer.loc[0, "nadir_anc"] == 0.2
    later = treatment_cycles(results, events, rules=CycleRules(overdue_cycle_lengths=3))
    assert later.loc[0, "nadir_anc"] == 0.2


def test_nadir_grade_days_at_grade_3_recovery_and_gcsf_per_cycle() -> None:
    events = pd.concat(
        [
            chemo(1, 0, 21),
            pd.DataFrame({"patient_key": [1], "kind": ["gcsf"], "start_at": [day(22)]}),
        ]
    )
    anc = counts(1, "anc", {0: 4.2, 7: 0.9, 10: 0.45, 12: 0.8, 14: 1.2, 17: 1.5, 21: 2.2, 29: 1.1, 35: 2.0})
    wbc = counts(1, "wbc", {0: 6.0, 7: 2.5, 10: 1.6, 14: 2.9}, lln=4.0)
    cycles = treatment_cycles(pd.concat([anc, wbc]), events)
    first, second = cycles.iloc[0], cycles.iloc[1]
    assert (first["nadir_anc"], first["nadir_day"], first["nadir_anc_grade"]) == (0.45, 10, 4)
    assert (first["nadir_wbc"], first["nadir_wbc_day"], first["nadir_wbc_grade"]) == (1.6, 10, 3)
    # ANC 4.2 (day 0) -> 0.9 (day 7, grade 3) -> 0.45 (day 10, grade 4) -> 0.8 (day 12, grade 3) -> 1.2
    # (day 14, grade 2): at grade 3+ for certain on days 7 to 12 (6 days, both counted), at most on days 1
    # to 13 (strictly between the counts seen better on either side).
    assert (first["days_grade3_plus_min"], first["days_grade3_plus_max"]) == (6, 13)
    # 1.5 on day 17 is the first count at or above 1.5 after the nadir; 1.2 on day 14 was not yet.
    assert (first["recovery_after_day"], first["recovery_day"]) == (14, 17)
    assert not first["gcsf"] and second["gcsf"]
    assert first["length_days"] == 21 and pd.isna(second["length_days"])
    assert second["nadir_anc_grade"] == 2 and second["days_grade3_plus_max"] == 0
    assert second["recovery_day"] == 14  # 2.0 on day 35 = day 14 of cycle 2


def test_an_unfinished_severe_spell_and_an_unsampled_nadir_are_not_reported_as_known() -> None:
    events = chemo(1, 0)
    cycles = treatment_cycles(counts(1, "anc", {2: 3.0, 10: 0.4}), events)
    # Still grade 4 at the last count: a single count confirms 1 day, the most is unknown.
    assert cycles.loc[0, "days_grade3_plus_min"] == 1 and pd.isna(cycles.loc[0, "days_grade3_plus_max"])
    assert pd.isna(cycles.loc[0, "recovery_day"])
    assert cycles.loc[0, "nadir_sampled"]
    only_late = treatment_cycles(counts(1, "anc", {20: 3.5}), events)
    assert not only_late.loc[0, "nadir_sampled"] and only_late.loc[0, "anc_results"] == 1


@pytest.mark.parametrize("drawn", [20 - 2 / 24, 21 - 2 / 24])  # 07:00 the day before, or that morning
def test_the_pre_dose_count_closes_the_cycle_it_ends_and_is_the_next_one_s_baseline(drawn: float) -> None:
    """Doses at 09:00; the count before cycle 2 is drawn at 07:00, the day before or that morning."""
    events = chemo(1, 0, 21)
    anc = counts(1, "anc", {0: 4.0, 7: 0.9, 10: 0.4, drawn: 2.0, 29: 1.1})
    results = pd.concat([anc, counts(1, "plt", {drawn: 180.0}, lln=150)])
    cycles = treatment_cycles(results, events)
    first, second = cycles.iloc[0], cycles.iloc[1]
    last_day = round(drawn)  # day 20 (D21) the day before, day 21 (D22) on the morning of cycle 2
    assert (first["nadir_anc"], first["nadir_day"]) == (0.4, 10)
    assert (first["recovery_after_day"], first["recovery_day"]) == (10, last_day)
    # At grade 3+ on days 7 to 10 for certain (4 days), at most on the days strictly between the dose's
    # day-0 count and the count before the next dose.
    assert (first["days_grade3_plus_min"], first["days_grade3_plus_max"]) == (4, last_day - 1)
    assert (first["ready_anc"], first["ready_at_next"]) == (2.0, True)
    # Cycle 2's nadir is a low after its dose (day 8), never the pre-treatment count.
    assert (second["nadir_anc"], second["nadir_day"]) == (1.1, 8)
    shown = cycle_table(cycles).iloc[0]
    assert shown["recovered"] == f"after D11, by D{last_day + 1}"
    assert shown["days G3+"] == f"4-{last_day - 1}"


def test_a_cycle_still_low_before_the_next_dose_says_so() -> None:
    events = chemo(1, 0, 21)
    cycles = treatment_cycles(counts(1, "anc", {10: 0.4, 21 - 2 / 24: 1.2}), events)
    # No count before day 10's: at grade 3+ at most on the days strictly between the dose (day 0) and the
    # pre-dose count on day 21 (days 1 to 20).
    assert pd.isna(cycles.loc[0, "recovery_day"]) and cycles.loc[0, "days_grade3_plus_max"] == 20
    assert cycle_table(cycles).loc[0, "recovered"] == "not recovered before the next dose"


def test_the_nadir_is_a_low_after_the_dose_never_the_pre_treatment_count() -> None:
    """With G-CSF the counts after the dose stay above the day-1 (pre-dose) count."""
    events = pd.concat(
        [chemo(1, 0, 21), pd.DataFrame({"patient_key": [1], "kind": ["gcsf"], "start_at": [day(1)]})]
    )
    anc = counts(1, "anc", {-2 / 24: 2.0, 8: 3.5, 12: 5.0, 21 - 2 / 24: 2.2})
    wbc = counts(1, "wbc", {-2 / 24: 4.1, 8: 6.0, 21 - 2 / 24: 4.3}, lln=4.0)
    first = treatment_cycles(pd.concat([anc, wbc]), events).iloc[0]
    assert (first["nadir_anc"], first["nadir_day"], first["nadir_wbc"], first["nadir_wbc_day"]) == (
        3.5,
        8,
        6.0,
        8,
    )
    assert first["nadir_sampled"]
    # No count between the dose and the next one: the nadir was not sampled, and no other count stands in.
    baseline_only = treatment_cycles(counts(1, "anc", {-2 / 24: 2.0, 21 - 2 / 24: 2.2}), events)
    assert pd.isna(baseline_only.loc[0, "nadir_anc"]) and not baseline_only.loc[0, "nadir_sampled"]
    assert pd.isna(baseline_only.loc[0, "nadir_day"])
    # Nothing was seen after the dose: the days at grade 3+ are unknown, not 0.
    assert baseline_only.loc[0, ["days_grade3_plus_min", "days_grade3_plus_max"]].isna().all()
    shown = cycle_table(baseline_only).iloc[0]
    assert (shown["nadir ANC"], shown["on"], shown["recovered"], shown["days G3+"]) == (
        "not sampled",
        "",
        "",
        "unknown",
    )
    # A window a site starts on day 0 still needs a count after the dose.
    early = CycleRules(nadir_window_days=(0, 14))
    assert not treatment_cycles(counts(1, "anc", {0: 2.0}), chemo(1, 0), rules=early).loc[0, "nadir_sampled"]


def test_a_regimen_s_own_nadir_window_decides_whether_its_nadir_was_sampled() -> None:
    # A count on day 8 (D9) samples the site's days 7-14 but not a regimen's days 10-14 (D11-D15).
    events = pd.concat([chemo(1, 0, regimen="Nitro late nadir"), chemo(2, 0)])
    results = pd.concat([counts(1, "anc", {8: 1.0}), counts(2, "anc", {8: 1.0})])
    rules = CycleRules.from_mapping({"regimens": {"nitro late nadir": {"nadir_window_days": [10, 14]}}})
    cycles = treatment_cycles(results, events, rules=rules).set_index("patient_key")
    assert cycles["nadir_sampled"].to_dict() == {1: False, 2: True}
    shown = cycle_table(cycles.reset_index(), rules=rules)
    assert shown["nadir ANC"].tolist() == ["1 (not sampled D11-D15)", "1"]


@pytest.mark.parametrize(
    ("anc", "plt", "ready"),
    [
        (1.5, 100.0, True),  # at the thresholds: ready (>=, the default of docs/clinical-basis.md)
        (1.49, 250.0, False),
        (3.0, 99.0, False),
        (None, 250.0, None),  # no ANC in the window: unknown
    ],
)
def test_readiness_at_the_next_start_uses_the_last_counts_of_the_3_days_before_it(
    anc: float | None, plt: float, ready: bool | None
) -> None:
    events = chemo(1, 0, 21)
    series = [counts(1, "plt", {19: plt}, lln=150)]
    if anc is not None:
        series.append(counts(1, "anc", {17.5: 0.3, 19: anc}))  # 17.5 is outside the 3-day window
    cycles = treatment_cycles(pd.concat(series), events)
    verdict = cycles.loc[0, "ready_at_next"]
    assert pd.isna(verdict) if ready is None else verdict == ready
    assert cycles.loc[0, "readiness"].startswith({True: "ready", False: "not ready", None: "unknown"}[ready])
    assert pd.isna(cycles.loc[1, "ready_at_next"]) and cycles.loc[1, "readiness"] == "no next cycle"


@pytest.mark.parametrize(
    ("label", "anc", "fn"),
    [
        ("Fever 38.6 C (oral)", 0.4, True),  # CTCAE v5.0: ANC < 1.0 and a single temperature > 38.3
        ("Fever 38.6 C", 1.2, False),
        ("Fever 38.3 C", 0.4, True),  # IDSA 2010: a single temperature >= 38.3 with ANC < 0.5
        ("Fever 38.2 C", 0.4, None),  # whether >= 38.0 lasted an hour is not written
        ("Fever", 0.4, None),  # no temperature written
        ("Fever 39.0 C", None, None),  # no ANC from 24 h before to 12 h after
    ],
)
def test_febrile_neutropenia_needs_a_temperature_and_an_anc_within_a_day(
    label: str, anc: float | None, fn: bool | None
) -> None:
    fever = pd.DataFrame({"patient_key": [1], "kind": ["fever"], "start_at": [day(9.4)], "label": [label]})
    results = counts(1, "anc", {3: 3.0} | ({9: anc} if anc is not None else {}))
    cycles = treatment_cycles(results, pd.concat([chemo(1, 0), fever]))
    found = cycles.loc[0, "febrile_neutropenia"]
    assert pd.isna(found) if fn is None else found == fn
    assert cycles.loc[0, "fever"].startswith("fever") and "on D10" in cycles.loc[0, "fever"]
    none = treatment_cycles(results, chemo(1, 0))
    assert none.loc[0, "febrile_neutropenia"] == False and none.loc[0, "fever"] == ""  # noqa: E712


def test_readiness_thresholds_per_regimen_and_strict_comparison() -> None:
    events = chemo(1, 0, 21, regimen="Trial protocol X")
    results = pd.concat([counts(1, "anc", {20: 1.2}), counts(1, "plt", {20: 80.0}, lln=150)])
    assert treatment_cycles(results, events).loc[0, "ready_at_next"] == False  # noqa: E712
    rules = CycleRules.from_mapping({"regimens": {"trial protocol x": {"anc_min": 1.0, "plt_min": 75}}})
    cycles = treatment_cycles(results, events, rules=rules)
    assert cycles.loc[0, "ready_at_next"] == True  # noqa: E712
    assert "ANC >= 1 and platelets >= 75" in cycles.loc[0, "readiness"]
    strict = CycleRules.from_mapping({"readiness": {"inclusive": False}})
    exact = pd.concat([counts(1, "anc", {20: 1.5}), counts(1, "plt", {20: 100.0}, lln=150)])
    assert treatment_cycles(exact, chemo(1, 0, 21), rules=strict).loc[0, "ready_at_next"] == False  # noqa: E712


def test_a_censored_anc_is_judged_only_when_the_bound_decides() -> None:
    events = chemo(1, 0, 21)
    plt = counts(1, "plt", {20: 200.0}, lln=150)
    below = counts(1, "anc", {20: 0.5}).assign(comparator="<")
    assert treatment_cycles(pd.concat([below, plt]), events).loc[0, "ready_at_next"] == False  # noqa: E712
    vague = counts(1, "anc", {20: 5.0}).assign(comparator="<")
    assert pd.isna(treatment_cycles(pd.concat([vague, plt]), events).loc[0, "ready_at_next"])


def test_withdrawn_results_and_duplicate_chemotherapy_events_do_not_make_cycles_or_nadirs() -> None:
    events = pd.concat([chemo(1, 0, 21), chemo(1, 0)])
    results = counts(1, "anc", {8: 0.2, 9: 1.1}).assign(status=["entered-in-error", "final"])
    cycles = treatment_cycles(results, events)
    assert cycles["cycle"].tolist() == [1, 2]
    assert cycles.loc[0, "nadir_anc"] == 1.1


def test_the_whole_cohort_at_once_keeps_patients_apart() -> None:
    events = pd.concat([chemo(1, 0, 21), chemo(2, 5)])
    results = pd.concat([counts(1, "anc", {10: 0.4, 25: 0.9}), counts(2, "anc", {10: 1.0, 12: 0.7})])
    cycles = treatment_cycles(results, events)
    assert cycles[["patient_key", "cycle", "nadir_anc", "nadir_day"]].values.tolist() == [
        [1, 1, 0.4, 10],
        [1, 2, 0.9, 4],
        [2, 1, 0.7, 7],
    ]


def test_no_chemotherapy_means_no_cycles() -> None:
    events = pd.DataFrame({"patient_key": [1], "kind": ["gcsf"], "start_at": [day(0)]})
    assert treatment_cycles(counts(1, "anc", {1: 0.3}), events).empty


def test_cross_cycle_trend_deepening_nadir_and_slower_recovery_in_words() -> None:
    cycles = pd.DataFrame(
        {
            "patient_key": [1, 1, 1, 2, 2],
            "cycle": [1, 2, 3, 1, 2],
            "nadir_anc": [1.2, 0.8, 0.4, 1.0, 0.95],
            "nadir_sampled": True,
            "recovery_after_day": [10, 12, 16, 10, 10],
            "recovery_day": [14, 15, 18, 14, 14],
        }
    )
    trend = cycle_trend(cycles).set_index("patient_key")
    assert trend.loc[1, "deepening_nadir"] and trend.loc[1, "slower_recovery"]
    assert trend.loc[1, "trend"].startswith("Nadir ANC deepening over 3 cycles (1.2 -> 0.4)")
    # A 5 % fall is within the ANC reference change value: not a trend.
    assert not trend.loc[2, "deepening_nadir"] and trend.loc[2, "trend"] == ""


def test_a_late_recovery_seen_only_at_a_late_count_is_not_called_slower() -> None:
    # Cycle 3 recovered somewhere after D11 (count before) and by D21: not certainly later than by D15.
    cycles = pd.DataFrame(
        {
            "patient_key": 1,
            "cycle": [1, 2, 3],
            "nadir_anc": [0.9, 0.9, 0.9],
            "nadir_sampled": True,
            "recovery_after_day": [10, 10, 10],
            "recovery_day": [14, 14, 20],
        }
    )
    assert not cycle_trend(cycles).loc[0, "slower_recovery"]


def test_before_after_an_event_median_and_range_in_each_window() -> None:
    results = counts(1, "anc", {-40: 0.1, -20: 0.9, -5: 1.1, 0: 1.6, 10: 2.0, 40: 9.0})
    events = pd.DataFrame({"event_key": [5], "patient_key": [1], "start_at": [day(0)]})
    row = before_after(results, events).iloc[0]
    assert (row["n_before"], row["median_before"], row["min_before"], row["max_before"]) == (2, 1.0, 0.9, 1.1)
    assert (row["n_after"], row["median_after"], row["min_after"], row["max_after"]) == (2, 1.8, 1.6, 2.0)


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"wbc": 2.0, "anc": 0.9, "alc": 0.6, "hgb": 9.0, "plt": 80.0}, "pancytopenia"),
        ({"wbc": 2.0, "anc": 0.9, "alc": 1.2, "hgb": 13.0, "plt": 80.0}, "bicytopenia"),
        ({"wbc": 2.0, "anc": 0.9, "alc": 0.6, "hgb": 13.0, "plt": 200.0}, "neutropenia_and_lymphopenia"),
        ({"wbc": 3.5, "anc": 1.2, "alc": 1.5, "hgb": 13.0, "plt": 200.0}, "isolated_neutropenia"),
        ({"wbc": 4.5, "anc": 2.5, "alc": 0.6, "hgb": 13.0, "plt": 200.0}, "isolated_lymphopenia"),
        ({"wbc": 3.9, "anc": 1.5, "alc": 1.0}, "leukopenia"),  # at the limits is not below them
        ({"wbc": 6.0, "anc": 3.0, "alc": 2.0, "hgb": 13.0, "plt": 200.0}, "none"),
    ],
)
def test_the_pattern_of_the_latest_panel(values: dict[str, float], pattern: str) -> None:
    lln = {"wbc": 4.0, "anc": 1.5, "alc": 1.0, "hgb": 12.0, "plt": 150.0}
    panel = pd.DataFrame({"patient_key": 7, "analyte": list(values), "value": list(values.values())})
    found = panel_pattern(panel.assign(lln=panel["analyte"].map(lln))).loc[7]
    assert found["pattern"] == pattern
    assert ("WBC 2 < 4" in found["pattern_detail"]) == (values["wbc"] == 2.0)


def test_a_pattern_names_the_lineages_its_panel_did_not_measure() -> None:
    """An ANC-only low panel without ALC or Hb is 'isolated neutropenia' only as far as it was measured."""
    panel = pd.DataFrame(
        {
            "patient_key": [1, 1, 1, 2, 2, 2, 2, 2],
            "analyte": ["wbc", "anc", "plt", "wbc", "anc", "alc", "hgb", "plt"],
            "value": [3.0, 0.9, 200.0, 3.0, 0.9, 1.5, 13.0, 200.0],
            "lln": [4.0, 1.5, 150.0, 4.0, 1.5, 1.0, 12.0, 150.0],
        }
    )
    unjudged = pd.DataFrame(  # haemoglobin of a patient of unknown sex: measured, but no limit applies
        {
            "patient_key": 3,
            "analyte": ["wbc", "anc", "hgb"],
            "value": [3.0, 0.9, 9.0],
            "lln": [4.0, 1.5, None],
        }
    )
    found = panel_pattern(pd.concat([panel, unjudged], ignore_index=True))
    assert found["pattern"].tolist() == ["isolated_neutropenia"] * 3
    assert found.loc[1, "pattern_detail"] == "WBC 3 < 4, ANC 0.9 < 1.5; not measured: ALC, Hb"
    assert found.loc[2, "pattern_detail"] == "WBC 3 < 4, ANC 0.9 < 1.5"
    assert found.loc[3, "pattern_detail"] == (
        "WBC 3 < 4, ANC 0.9 < 1.5; not measured: ALC, platelets; no limit to judge: Hb"
    )


def test_site_rules_validate_and_list_every_setting_with_its_default_and_source() -> None:
    overrides = set_value({}, "cycles.readiness.anc_min", 1.0)
    rules = SiteRules.from_mapping(set_value(overrides, "flags.persistent_min_days", 21))
    assert rules.cycles.readiness.anc_min == 1.0 and rules.flags.persistent_min_days == 21
    rows = {row["key"]: row for row in setting_rows(rules)}
    assert rows["flags.persistent_min_days"]["changed"] and rows["flags.persistent_min_days"]["default"] == 14
    anc_source = rows["cycles.readiness.anc_min"]["source"]
    assert "paclitaxel and docetaxel prescribing information" in anc_source
    assert anc_source.endswith("see docs/clinical-basis.md, Readiness thresholds")
    assert "Dale & Bolyard" in rows["flags.chronic_min_days"]["source"]
    assert "Statland et al. 1978" in rows["grading.rcv_inputs.anc.cv_within"]["source"]
    assert "NCI CTCAE v5.0 (2017)" in rows["grading.ctcae_version"]["source"]
    assert not rows["grading.ctcae_version"]["changed"]
    with pytest.raises(ValueError, match="persistent_days"):
        SiteRules.from_mapping({"flags": {"persistent_days": 3}})
    with pytest.raises(ValueError, match="ctcae_version"):
        SiteRules.from_mapping({"grading": {"ctcae_version": "4.03"}})
    with pytest.raises(ValueError, match="section"):
        set_value({}, "persistent_min_days", 3)
    with pytest.raises(ValueError, match="^persistent_min_days takes a whole number, not 'banana'$"):
        SiteRules.from_mapping(set_value({}, "flags.persistent_min_days", "banana"))
    with pytest.raises(ValueError, match="^readiness anc_min takes a number, not 'one'$"):
        SiteRules.from_mapping(set_value({}, "cycles.readiness.anc_min", "one"))
    with pytest.raises(ValueError, match="^rcv_z takes a finite number"):
        SiteRules.from_mapping(set_value({}, "grading.rcv_z", "Infinity"))
    with pytest.raises(ValueError, match="^readiness inclusive takes true or false, not 'no'$"):
        SiteRules.from_mapping(set_value({}, "cycles.readiness.inclusive", "no"))
    typed = SiteRules.from_mapping(set_value({}, "cycles.readiness.inclusive", "False"))  # a bare word typed
    assert typed.cycles.readiness.inclusive is False


def test_a_trend_needs_sampled_nadirs_and_says_nothing_without_them() -> None:
    cycles = pd.DataFrame(
        {
            "patient_key": 1,
            "cycle": [1, 2],
            "nadir_anc": [3.0, 2.0],
            "nadir_sampled": False,
            "recovery_day": None,
        }
    )
    trend = cycle_trend(cycles)
    assert trend.loc[0, "trend"] == "" and not trend.loc[0, "deepening_nadir"]


def test_an_unsampled_nadir_names_the_sites_own_window_not_the_default_days() -> None:
    """A site that moved the nadir window (e.g. to days 10-17 for a regimen whose nadir comes later) reads
    its own days in the table, not the default D8-D15."""
    events = chemo(1, 0, 21)
    late = CycleRules(nadir_window_days=(10, 17))
    cycles = treatment_cycles(counts(1, "anc", {5: 1.1, 20: 2.0}), events, rules=late)  # none on 10-17
    assert not cycles.loc[0, "nadir_sampled"]
    assert cycle_table(cycles, rules=late).loc[0, "nadir ANC"] == "1.1 (not sampled D11-D18)"
    assert cycle_table(cycles).loc[0, "nadir ANC"] == "1.1 (not sampled D8-D15)"


def test_a_count_drawn_after_the_next_dose_neither_closes_the_cycle_nor_judges_readiness() -> None:
    """Dose at 09:00 on day 21: the 08:00 count (ANC 1.2) is the pre-dose one; a 15:00 count (1.9, after
    the dose and its premedication) must not make the dose look ready nor the cycle recovered."""
    events = chemo(1, 0, 21)  # 09:00 UTC both
    anc = counts(1, "anc", {10: 0.4, 21 - 1 / 24: 1.2, 21 + 6 / 24: 1.9})
    plt = counts(1, "plt", {21 - 1 / 24: 150.0, 21 + 6 / 24: 160.0}, lln=150)
    first = treatment_cycles(pd.concat([anc, plt], ignore_index=True), events).iloc[0]
    assert (first["ready_anc"], first["ready_at_next"]) == (1.2, False)
    assert pd.isna(first["recovery_day"])
    assert (
        cycle_table(treatment_cycles(anc, events)).loc[0, "recovered"] == "not recovered before the next dose"
    )
    # Only a post-dose count on the dosing day: readiness cannot be judged from it.
    late_only = counts(1, "anc", {10: 0.4, 21 + 6 / 24: 1.9})
    assert pd.isna(treatment_cycles(late_only, events).loc[0, "ready_anc"])


def test_a_dose_recorded_without_a_time_takes_its_days_counts_as_drawn_before_it() -> None:
    """A date alone (midnight in the site's zone) cannot be ordered against the day's draws: the morning
    count of that day still closes the cycle and judges readiness."""
    midnight = pd.Timestamp("2026-03-23 00:00", tz="UTC")
    events = pd.concat(
        [chemo(1, 0), chemo(1, 0).assign(start_at=[midnight], label="cycle 2")], ignore_index=True
    )
    morning = (midnight - START) / pd.Timedelta(days=1) + 8 / 24
    anc = counts(1, "anc", {10: 0.4, morning: 1.8})
    plt = counts(1, "plt", {morning: 150.0}, lln=150)
    first = treatment_cycles(pd.concat([anc, plt], ignore_index=True), events).iloc[0]
    assert (first["ready_anc"], first["ready_at_next"]) == (1.8, True)
    assert pd.notna(first["recovery_day"])


def test_the_last_cycle_still_low_says_it_has_not_recovered_by_the_last_count() -> None:
    """No next dose yet, nadir 0.4 on day 10, 1.2 on day 20: the table says so rather than a blank."""
    cycles = treatment_cycles(counts(1, "anc", {10: 0.4, 20: 1.2}), chemo(1, 0))
    assert pd.isna(cycles.loc[0, "next_start"]) and pd.isna(cycles.loc[0, "recovery_day"])
    assert cycle_table(cycles).loc[0, "recovered"] == "not recovered by the last count"
