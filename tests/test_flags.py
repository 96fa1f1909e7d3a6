"""Per-patient flags, explanations, the current WBC run and episodes below the limit (analysis.flags)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from monitor.analysis.flags import (
    DEFAULT_FLAG_RULES,
    EPISODE_COLUMNS,
    FLAG_COLUMNS,
    FLAGS,
    FlagRules,
    episodes,
    flag_label,
    patient_flags,
)

START = pd.Timestamp("2026-01-01 08:00", tz="UTC")
LLN = {"wbc": 4.0, "anc": 1.8, "alc": 1.0}


def make_series(
    values: Sequence[float],
    days: Sequence[float],
    *,
    analyte: str = "wbc",
    patient_key: int = 1,
    comparator: Sequence[str | None] | None = None,
    status: Sequence[str] | None = None,
    lln: float | None = None,
) -> pd.DataFrame:
    """One patient's results of one analyte, ``days`` after START (fractions allowed)."""
    return pd.DataFrame(
        {
            "patient_key": patient_key,
            "collected_at": (START + pd.to_timedelta(list(days), unit="D")).as_unit("us"),
            "analyte": analyte,
            "value": [float(v) for v in values],
            "comparator": pd.array(comparator or [None] * len(values), dtype="string"),
            "lln": LLN.get(analyte, np.nan) if lln is None else lln,
            "status": list(status or ["final"] * len(values)),
        }
    )


def flags_of(
    *series: pd.DataFrame,
    as_of_day: float = 30,
    rules: FlagRules = DEFAULT_FLAG_RULES,
    timezone: str = "UTC",
    events: pd.DataFrame | None = None,
) -> pd.Series:
    """The first patient's output row."""
    results = pd.concat(series, ignore_index=True)
    as_of = START + pd.Timedelta(days=as_of_day)
    return patient_flags(results, as_of=as_of, timezone=timezone, rules=rules, events=events).iloc[0]


def chemotherapy(days: Sequence[float], *, patient_key: int = 1) -> pd.DataFrame:
    """Chemotherapy doses ``days`` after START."""
    return pd.DataFrame(
        {
            "patient_key": patient_key,
            "kind": "chemotherapy",
            "start_at": [START + pd.Timedelta(days=d) for d in days],
        }
    )


def explained(row: pd.Series) -> dict[str, str]:
    return dict(zip(row["flags"], row["explanations"], strict=True))


# --- the current run: persistent (2 results over >= 14 days) and chronic (>= 90 days) ---


@pytest.mark.parametrize(
    ("values", "days", "persistent"),
    [
        ([3.5, 3.5], [0, 13], False),
        ([3.5, 3.5], [0, 13.99], True),  # 13 days 23 h 46 min: the 14th calendar day
        ([3.5, 3.5], [0, 14], True),
        ([3.5], [0], False),
        ([3.5, 4.5, 3.5], [0, 7, 14], False),
    ],
)
def test_wbc_run_is_persistent_from_two_results_fourteen_days_apart(values, days, persistent) -> None:
    row = flags_of(make_series(values, days))
    assert ("persistent" in row["flags"]) is persistent


@pytest.mark.parametrize(
    ("last_day", "chronic"), [(89, False), (89.6, False), (89.9, True), (90, True), (120, True)]
)
def test_wbc_run_is_chronic_from_ninety_days(last_day, chronic) -> None:
    row = flags_of(make_series([3.5, 3.5, 3.5], [0, 45, last_day]), as_of_day=last_day)
    assert ("chronic" in row["flags"]) is chronic
    assert "persistent" in row["flags"]


def test_thirteen_days_and_twenty_three_hours_are_fourteen_days() -> None:
    # 1 January 08:00 to 15 January 07:00: a repeat count "two weeks later", as a clinician counts.
    row = flags_of(make_series([3.5, 3.5], [0, 13 + 23 / 24]), as_of_day=15)
    assert "persistent" in row["flags"]
    assert row["run_days"] == 14
    assert explained(row)["persistent"] == "WBC below 4.0 on 2 consecutive results over 14 days (3.5 -> 3.5)"


@pytest.mark.parametrize(("timezone", "persistent"), [("UTC", False), ("Europe/Paris", True)])
def test_days_are_counted_in_the_sites_time_zone(timezone, persistent) -> None:
    # 13 days 15.5 hours later: 14 January 23:30 UTC is 15 January 00:30 in Paris.
    row = flags_of(make_series([3.5, 3.5], [0, 13 + 15.5 / 24]), as_of_day=15, timezone=timezone)
    assert ("persistent" in row["flags"]) is persistent


def test_run_columns_describe_the_current_run_only() -> None:
    row = flags_of(make_series([3.5, 5.0, 3.9, 3.8, 3.7], [0, 7, 14, 21, 30]))
    assert (row["run_start"], row["run_results"], row["run_days"]) == (START + pd.Timedelta(days=14), 3, 16)


def test_persistent_explanation_reads_like_a_clinician_wrote_it() -> None:
    row = flags_of(make_series([3.8, 3.0, 2.4, 1.8], [0, 7, 14, 21]), as_of_day=24)
    assert row["flags"] == ("leukopenia", "persistent", "worsening", "significant_drop")
    assert row["explanations"] == (
        "WBC 1.8 below 4.0 (CTCAE grade 3)",
        "WBC below 4.0 on 4 consecutive results over 21 days (3.8 -> 1.8)",
        "WBC worsening: fell 25.0% from 2.4 to 1.8 x10^9/L in 7 days (reference change value -22.3%), into "
        "CTCAE grade 3 (was grade 2); falling by 2.75 x10^9/L per month over 21 days (Theil-Sen line through "
        "4 results outside chemotherapy cycles, a fall beyond the reference change value of -22.3%)",
        "WBC fell 25.0% from 2.4 to 1.8 x10^9/L in 7 days, beyond the reference change value of -22.3% "
        "(new CTCAE grade 3)",
    )
    assert (row["run_results"], row["run_days"], row["days_since_cbc"]) == (4, 21, 3)


def test_flags_follow_the_vocabulary_order() -> None:
    row = flags_of(make_series([6.0, 2.5], [0, 14]), make_series([1.0], [14], analyte="anc"))
    assert row["flags"] == (
        "leukopenia",
        "neutropenia",
        "new_onset",
        "anc_new_onset",
        "worsening",
        "significant_drop",
    )
    assert list(row["flags"]) == [f for f in FLAGS if f in row["flags"]]


def test_each_lineage_has_its_change_flags_under_their_exported_names() -> None:
    """The bare names keep meaning WBC; the worklist ranking and exports rely on these exact names."""
    for kind in ("new_onset", "persistent", "worsening", "significant_drop"):
        assert {kind, f"anc_{kind}", f"alc_{kind}"} <= set(FLAGS)
    assert FLAGS.index("new_onset") < FLAGS.index("anc_new_onset") < FLAGS.index("alc_new_onset")


def test_flags_are_labelled_with_their_lineage() -> None:
    assert [flag_label(f) for f in ("anc_new_onset", "alc_significant_drop", "new_onset", "neutropenia")] == [
        "ANC new onset",
        "ALC significant drop",
        "new onset",
        "neutropenia",
    ]


# --- new onset ---


def test_new_onset_when_the_previous_wbc_was_normal() -> None:
    text = explained(flags_of(make_series([4.5, 3.8], [0, 7])))
    assert text["new_onset"] == "WBC 3.8 below 4.0, previous result 4.5 was not"


def test_new_onset_when_there_is_no_previous_wbc() -> None:
    text = explained(flags_of(make_series([3.8], [0])))
    assert text["new_onset"] == "WBC 3.8 below 4.0 on the first WBC result"


def test_no_new_onset_when_the_previous_wbc_was_already_below() -> None:
    assert "new_onset" not in flags_of(make_series([3.8, 3.8], [0, 7]))["flags"]


# --- worsening, significant drop, recovering ---


def test_a_grade_step_within_the_rcv_is_not_worsening() -> None:
    row = flags_of(make_series([3.05, 2.95], [0, 7]))  # grade 1 -> 2, a fall of 3.3 %: within the variation
    assert row["flags"] == ("leukopenia",)


@pytest.mark.parametrize(("latest", "worsening"), [(2.96, False), (2.95, True)])
def test_a_grade_step_is_worsening_when_the_fall_is_beyond_the_rcv(latest, worsening) -> None:
    # 3.8 -> 2.96 is -22.1 %, just inside the WBC RCV of -22.3 %; 3.8 -> 2.95 is -22.4 %, just beyond.
    row = flags_of(make_series([3.8, latest], [0, 7]))
    assert ("worsening" in row["flags"]) is worsening
    assert ("significant_drop" in row["flags"]) is worsening


def test_a_rise_of_two_grades_within_the_rcv_is_worsening() -> None:
    # ANC 1.9 (grade 0) -> 1.4 (grade 2) is -26 %, within the ANC RCV of -44.9 %.
    row = flags_of(make_series([1.9, 1.4], [0, 7], analyte="anc"))
    assert "anc_worsening" in row["flags"] and "anc_significant_drop" not in row["flags"]
    assert explained(row)["anc_worsening"] == (
        "ANC worsening: fell from 1.9 to 1.4 x10^9/L in 7 days, into CTCAE grade 2 (mild neutropenia; "
        "was grade 0)"
    )


@pytest.mark.parametrize(
    ("analyte", "values", "lln"),
    [
        ("anc", [1.6, 1.45], 1.5),  # grade 0 -> 2, -9.4 %: the grade-1 band [1.5, 1.5) is empty
        ("anc", [1.6, 1.1], 1.5),  # grade 0 -> 2, -31 %: one boundary (1.5) crossed, within the RCV
        ("wbc", [3.2, 2.9], 3.0),  # grade 0 -> 2, -9.4 %
        ("alc", [0.85, 0.78], 0.8),  # grade 0 -> 2, -8.2 %
    ],
)
def test_a_new_low_count_is_not_worsening_when_the_lln_leaves_grade_1_empty(analyte, values, lln) -> None:
    # With the LLN at the grade-2 threshold, every new low count is "grade 0 -> 2", yet the fall crossed one
    # boundary only; with an LLN of 1.8 the same ANC fall is grade 1 -> 2 and no worsening either.
    row = flags_of(make_series(values, [0, 14], analyte=analyte, lln=lln))
    worsening = "worsening" if analyte == "wbc" else f"{analyte}_worsening"
    assert worsening not in row["flags"]


def test_a_fall_across_grade_1_and_2_is_still_worsening_with_an_lln_of_1_8() -> None:
    row = flags_of(make_series([1.9, 1.4], [0, 14], analyte="anc", lln=1.8))  # grade 0 -> 2: two bands
    assert "anc_worsening" in row["flags"]


def test_a_step_into_grade_3_within_the_rcv_is_worsening() -> None:
    row = flags_of(make_series([1.05, 0.95], [0, 7], analyte="anc"))  # grade 2 -> 3, -9.5 %
    # The sentence gives the values and the interval, not only the grades.
    assert explained(row)["anc_worsening"] == (
        "ANC worsening: fell from 1.05 to 0.95 x10^9/L in 7 days, into CTCAE grade 3 (moderate neutropenia; "
        "was grade 2)"
    )


def test_worsening_and_significant_drop_by_a_fall_beyond_the_rcv() -> None:
    # 3.8 -> 2.6 is a fall of 31.6 %, beyond the WBC RCV of -22.3 % (Z 1.645, CVA 1.5 %, CVI 10.8 %).
    text = explained(flags_of(make_series([3.8, 2.6], [0, 7])))
    assert text["significant_drop"] == (
        "WBC fell 31.6% from 3.8 to 2.6 x10^9/L in 7 days, beyond the reference change value of -22.3% "
        "(new CTCAE grade 2)"
    )
    assert text["worsening"] == (
        "WBC worsening: fell 31.6% from 3.8 to 2.6 x10^9/L in 7 days (reference change value -22.3%), "
        "into CTCAE grade 2 (was grade 1)"
    )


@pytest.mark.parametrize(("latest", "worsening"), [(3.05, True), (3.1, False)])
def test_worsening_by_a_fall_at_the_rcv_within_the_same_grade(latest, worsening) -> None:
    row = flags_of(make_series([3.95, latest], [0, 7]))  # -22.8 % vs -21.5 %; both grade 1
    assert ("worsening" in row["flags"]) is worsening
    assert ("significant_drop" in row["flags"]) is worsening


def test_a_slow_marrow_failure_is_worsening_by_its_trend_in_units_per_month() -> None:
    # WBC 3.9 falling 0.2 a month, monthly counts: at day 240 (2.5 -> 2.3, both grade 2, -8 %) no single
    # change is significant, but the line through the last 180 days falls 3.5 -> 2.3, beyond the RCV.
    days = list(range(0, 241, 30))
    row = flags_of(make_series([3.9 - 0.2 * d / 30 for d in days], days), as_of_day=241)
    assert explained(row)["worsening"] == (
        "WBC worsening: falling by 0.2 x10^9/L per month over 180 days (Theil-Sen line through 7 results "
        "outside chemotherapy cycles, a fall beyond the reference change value of -22.3%)"
    )
    assert "significant_drop" not in row["flags"]


def test_a_trend_needs_its_fall_beyond_the_rcv() -> None:
    row = flags_of(make_series([3.9, 3.6, 3.4, 3.1], [0, 7, 14, 21]))  # the line falls 20.5 % over 21 days
    assert "worsening" not in row["flags"]


def test_results_in_a_chemotherapy_cycle_are_left_out_of_the_trend() -> None:
    # A saw-tooth over three 21-day cycles: nadirs around day 10, recovery before each dose.
    saw = make_series([5.0, 1.4, 3.9, 4.6, 1.2, 3.6, 4.2, 0.9], [0, 10, 18, 21, 31, 39, 42, 52])
    untreated = explained(flags_of(saw, as_of_day=53))["worsening"]
    treated = explained(flags_of(saw, as_of_day=53, events=chemotherapy([0, 21, 42])))["worsening"]
    assert "Theil-Sen" in untreated and "Theil-Sen" not in treated
    assert treated.startswith("WBC worsening: fell 78.6% from 4.2 to 0.9 x10^9/L in 10 days")


def test_the_trend_after_chemotherapy_uses_the_counts_after_the_last_cycle() -> None:
    # Doses on days 0 and 21 (the last cycle ends 28 days after it, day 49); then a slow fall.
    counts = make_series(
        [6.0, 0.8, 5.5, 0.9, 3.9, 3.8, 3.6, 3.4, 3.3, 3.1, 3.0],
        [0, 10, 21, 31, 56, 70, 84, 98, 112, 126, 140],
    )
    row = flags_of(counts, as_of_day=141, events=chemotherapy([0, 21]))
    assert (
        "over 84 days (Theil-Sen line through 7 results outside chemotherapy cycles"
        in (explained(row)["worsening"])
    )


def test_a_recovery_after_chemotherapy_is_not_a_trend_from_the_pre_treatment_counts() -> None:
    # Counts of 7.0 before two cycles (days 0 and 21; the last ends on day 49), then 3.0 -> 3.8 rising.
    counts = make_series([7.0, 6.8, 6.9, 3.0, 3.4, 3.8], [-90, -60, -30, 56, 70, 84])
    assert "Theil-Sen" in explained(flags_of(counts, as_of_day=85))["worsening"]
    assert "worsening" not in flags_of(counts, as_of_day=85, events=chemotherapy([0, 21]))["flags"]


@pytest.mark.parametrize(
    "values",
    [
        [3.9, 1.0, 0.2, 0.1],  # the old 28-day projection said "-100% or more"
        [0.9, 0.5, 0.07, 0.55],  # a recovery from 0.07 to 0.55 is a rise of 686 %
    ],
)
def test_no_sentence_gives_a_percentage_beyond_100(values) -> None:
    row = flags_of(make_series(values, [0, 7, 14, 21], analyte="anc"))
    percentages = [float(p) for text in row["explanations"] for p in re.findall(r"(-?[0-9.]+)%", text)]
    assert percentages and max(abs(p) for p in percentages) <= 100
    assert "100% or more" not in " ".join(row["explanations"])


def test_no_trend_from_two_results_or_from_results_older_than_the_window() -> None:
    assert "worsening" not in flags_of(make_series([3.9, 3.5], [0, 21]))["flags"]
    assert "worsening" not in flags_of(make_series([6.0, 3.9, 3.8], [0, 190, 197]), as_of_day=200)["flags"]


def test_a_fall_between_two_counts_inside_the_reference_range_is_not_a_flag() -> None:
    row = flags_of(make_series([9.0, 5.0], [0, 7]))  # -44 %, both above 4.0
    assert row["flags"] == ()
    assert row["run_start"] is pd.NaT and row["run_results"] == 0 and row["run_days"] == 0


def test_a_fall_into_leukopenia_is_a_significant_drop() -> None:
    assert "significant_drop" in flags_of(make_series([6.0, 3.8], [0, 7]))["flags"]


def test_recovering_when_below_but_rising_beyond_the_rcv_and_not_worsening() -> None:
    row = flags_of(make_series([3.0, 2.0, 1.0, 1.5], [0, 7, 14, 21]))  # the trend still falls
    assert row["flags"] == ("leukopenia", "persistent", "recovering")
    assert explained(row)["recovering"] == (
        "WBC rose from 1.0 to 1.5 x10^9/L in 7 days, beyond the reference change value of +28.8%, "
        "still below 4.0"
    )


def test_rising_above_the_limit_is_not_recovering() -> None:
    assert flags_of(make_series([2.0, 4.5], [0, 7]))["flags"] == ()


# --- lineages: ANC and ALC ---


def test_an_anc_fall_into_neutropenia_with_a_normal_wbc_has_its_own_change_flags() -> None:
    row = flags_of(make_series([6.0, 5.5], [0, 14]), make_series([3.0, 1.2], [0, 14], analyte="anc"))
    assert row["flags"] == ("neutropenia", "anc_new_onset", "anc_worsening", "anc_significant_drop")
    text = explained(row)
    assert text["anc_new_onset"] == "ANC 1.2 below 1.8, previous result 3.0 was not"
    assert text["anc_significant_drop"] == (
        "ANC fell 60.0% from 3.0 to 1.2 x10^9/L in 14 days, beyond the reference change value of -44.9% "
        "(new CTCAE grade 2; mild neutropenia)"
    )
    assert text["anc_worsening"] == (
        "ANC worsening: fell 60.0% from 3.0 to 1.2 x10^9/L in 14 days (reference change value -44.9%), "
        "into CTCAE grade 2 (mild neutropenia; was grade 0)"
    )


def test_a_persistent_worsening_neutropenia_is_told_by_the_anc_flags() -> None:
    row = flags_of(
        make_series([6.0, 5.5, 5.0], [0, 7, 21]), make_series([1.6, 1.4, 0.9], [0, 7, 21], analyte="anc")
    )
    assert row["flags"] == ("neutropenia", "anc_persistent", "anc_worsening")
    assert row["explanations"] == (
        "ANC 0.9 below 1.8 (CTCAE grade 3; moderate neutropenia)",
        "ANC below 1.8 on 3 consecutive results over 21 days (1.6 -> 0.9)",
        "ANC worsening: fell from 1.4 to 0.9 x10^9/L in 14 days, into CTCAE grade 3 (moderate neutropenia; "
        "was grade 2)",
    )


def test_an_alc_fall_into_lymphopenia_has_its_own_change_flags() -> None:
    row = flags_of(make_series([1.5, 0.7], [0, 7], analyte="alc"))
    assert row["flags"] == ("lymphopenia", "alc_new_onset", "alc_worsening", "alc_significant_drop")
    assert explained(row)["alc_significant_drop"] == (
        "ALC fell 53.3% from 1.5 to 0.7 x10^9/L in 7 days, beyond the reference change value of -26.6% "
        "(new CTCAE grade 2)"
    )


def test_lymphopenia_explanation_tells_alc_chronic_and_recovering() -> None:
    alc = make_series([0.7, 0.6, 0.3, 0.5], [0, 60, 93, 100], analyte="alc")
    row = flags_of(alc, as_of_day=101)
    assert row["flags"] == ("lymphopenia", "alc_persistent")
    assert row["explanations"] == (
        "ALC 0.5 below 1.0 (CTCAE grade 2); "
        "ALC below 1.0 for 100 days since 2026-01-01 (chronic: 90 days or more); "
        "ALC rose from 0.3 to 0.5 x10^9/L in 7 days, beyond the reference change value of +36.2%, "
        "still below 1.0",
        "ALC below 1.0 on 4 consecutive results over 100 days (0.7 -> 0.5)",
    )


def test_censored_anc_below_0_1_is_grade_4_profound_and_a_certain_fall() -> None:
    anc = make_series([0.6, 0.1], [0, 7], analyte="anc", comparator=[None, "<"])
    text = explained(flags_of(anc))
    assert text["neutropenia"] == "ANC <0.1 below 1.8 (CTCAE grade 4; profound neutropenia)"
    assert text["anc_worsening"] == (
        "ANC worsening: fell at least 83.3% from 0.6 to <0.1 x10^9/L in 7 days (reference change value "
        "-44.9%), into CTCAE grade 4 (profound neutropenia; was grade 3)"
    )


def test_censored_greater_than_is_never_below_the_limit() -> None:
    assert flags_of(make_series([1.0], [0], analyte="anc", comparator=[">"]))["flags"] == ()


def test_result_without_a_limit_is_not_judged_and_ends_the_run() -> None:
    results = make_series([3.5, 3.5, 3.5], [0, 7, 21])
    results.loc[1, "lln"] = np.nan
    row = flags_of(results)
    assert row["flags"] == ("leukopenia", "new_onset")
    assert (row["run_results"], row["run_days"]) == (1, 0)


# --- what is ignored ---


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_withdrawn_results_are_ignored(status) -> None:
    row = flags_of(make_series([5.0, 1.0, np.nan], [0, 7, 9], status=["final", status, "final"]))
    assert row["flags"] == ()
    assert row["days_since_cbc"] == 30


def test_results_after_as_of_are_ignored() -> None:
    row = flags_of(make_series([5.0, 1.0], [0, 40]), as_of_day=10)
    assert (row["flags"], row["days_since_cbc"]) == ((), 10)


def test_patient_without_wbc_gets_no_wbc_flags_but_days_since_cbc() -> None:
    row = flags_of(make_series([90.0], [3], analyte="plt", lln=150.0), make_series([1.0], [2], analyte="anc"))
    assert row["flags"] == ("neutropenia", "anc_new_onset")
    assert (row["run_start"], row["run_results"], row["run_days"], row["days_since_cbc"]) == (
        pd.NaT,
        0,
        0,
        27,
    )


def test_one_row_per_patient_sorted_with_empty_tuples_when_nothing_applies() -> None:
    results = pd.concat([make_series([3.0], [0], patient_key=2), make_series([6.0], [0], patient_key=1)])
    out = patient_flags(results, as_of=START + pd.Timedelta(days=1), timezone="UTC")
    assert list(out.columns) == list(FLAG_COLUMNS)
    assert out["patient_key"].tolist() == [1, 2]
    assert out["flags"].tolist() == [(), ("leukopenia", "new_onset")]
    assert out["explanations"].tolist()[0] == ()


# --- configuration ---


def test_site_rules_override_the_defaults_without_code() -> None:
    rules = FlagRules.from_mapping({"persistent_min_days": 21, "grading": {"rcv_z": 1.96}})
    series = make_series([3.8, 2.9], [0, 14])  # -23.7 %: beyond -22.3 % (Z 1.645), within -26.0 % (Z 1.96)
    assert flags_of(series)["flags"] == ("leukopenia", "persistent", "worsening", "significant_drop")
    # Within the wider RCV the grade 1 -> 2 step alone is no worsening, and 14 days are not 21.
    assert flags_of(series, rules=rules)["flags"] == ("leukopenia",)


@pytest.mark.parametrize(
    "mapping",
    [{"persistent_days": 14}, {"chronic_min_days": 90.5}, {"slope_min_results": 1}, {"grading": {"z": 2}}],
)
def test_bad_site_rules_are_errors(mapping) -> None:
    with pytest.raises(ValueError):
        FlagRules.from_mapping(mapping)


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        patient_flags(make_series([3.0], [0]), as_of=pd.Timestamp("2026-02-01"), timezone="UTC")


# --- episodes ---


def test_episodes_split_at_a_recovery_in_the_middle() -> None:
    results = pd.concat(
        [
            make_series([5.0, 3.5, 2.1, 2.9, 4.6, 5.1, 3.6, 3.2], [0, 7, 14, 21, 28, 35, 42, 49]),
            make_series([1.0], [14], analyte="anc"),
        ]
    )
    expected = pd.DataFrame(
        {
            "patient_key": [1, 1],
            "start": [START + pd.Timedelta(days=7), START + pd.Timedelta(days=42)],
            "end": [START + pd.Timedelta(days=21), START + pd.Timedelta(days=49)],
            "ongoing": [False, True],
            "nadir": [2.1, 3.2],
            "nadir_at": [START + pd.Timedelta(days=14), START + pd.Timedelta(days=49)],
            "n_results": [3, 2],
            "days": [14, 7],
        }
    ).astype(
        {"start": "datetime64[us, UTC]", "end": "datetime64[us, UTC]", "nadir_at": "datetime64[us, UTC]"}
    )
    pd.testing.assert_frame_equal(episodes(results, timezone="UTC"), expected)
    assert episodes(results, timezone="UTC", analyte="anc")["n_results"].tolist() == [1]


def test_an_episodes_days_are_calendar_days_in_the_sites_zone() -> None:
    # From 08:00 on 1 March to 07:00 on 15 March is 13 days 23 hours: a clinician counts 14 days.
    results = pd.DataFrame(
        {
            "patient_key": 1,
            "analyte": "wbc",
            "value": [3.1, 2.9],
            "lln": 4.0,
            "collected_at": pd.to_datetime(["2026-03-01 08:00", "2026-03-15 07:00"], utc=True),
        }
    )
    assert episodes(results, timezone="UTC")["days"].tolist() == [14]


def test_episodes_of_several_patients_ignore_withdrawn_results() -> None:
    results = pd.concat(
        [
            make_series([3.0, 1.0, 3.5], [0, 1, 2], patient_key=2, status=["final", "cancelled", "final"]),
            make_series([5.0], [0], patient_key=1),
        ]
    )
    out = episodes(results, timezone="UTC")
    assert out[["patient_key", "nadir", "n_results", "ongoing"]].to_dict("records") == [
        {"patient_key": 2, "nadir": 3.0, "n_results": 2, "ongoing": True}
    ]


# --- contracts ---


def test_inputs_are_not_modified() -> None:
    results = pd.concat(
        [
            make_series([3.8, 2.6], [0, 14]),
            make_series([0.6, 0.1], [0, 14], analyte="anc", comparator=[None, "<"]),
        ]
    ).set_index(pd.Index([10, 11, 12, 13]))
    before = results.copy()
    patient_flags(results, as_of=START + pd.Timedelta(days=20), timezone="UTC")
    episodes(results, timezone="UTC")
    pd.testing.assert_frame_equal(results, before)


def test_empty_results_give_empty_frames() -> None:
    empty = make_series([], [])
    out = patient_flags(empty, as_of=START, timezone="UTC")
    assert out.empty and list(out.columns) == list(FLAG_COLUMNS)
    none = episodes(empty, timezone="UTC")
    assert none.empty and list(none.columns) == list(EPISODE_COLUMNS)


def test_the_pairwise_median_slope_matches_every_pair_taken_one_by_one() -> None:
    """The Theil-Sen slope built from group sizes equals the brute-force definition on random windows."""
    from monitor.analysis.flags import _KEYS, _median_pairwise_slope

    rng = np.random.default_rng(7)
    for _ in range(100):
        n = int(rng.integers(0, 40))
        window = pd.DataFrame(
            {
                "patient_key": rng.integers(1, 5, n),
                "analyte": rng.choice(["wbc", "anc", "alc"], n),
                "value": rng.random(n) * 5,
                "t": -rng.integers(0, 8, n).astype(float),  # repeated times: such pairs have no slope
            }
        )
        expected = {}
        for key, rows in window.groupby(_KEYS):
            slopes = [
                (b.value - a.value) / (b.t - a.t)
                for a in rows.itertuples()
                for b in rows.itertuples()
                if a.t < b.t
            ]
            if slopes:
                expected[key] = float(np.median(slopes))
        found = _median_pairwise_slope(window)
        assert found.dropna().to_dict() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1.49, "(CTCAE grade 2; mild neutropenia)"),
        (1.0, "(CTCAE grade 2; mild neutropenia)"),
        (0.99, "(CTCAE grade 3; moderate neutropenia)"),
        (0.5, "(CTCAE grade 3; moderate neutropenia)"),
        (0.49, "(CTCAE grade 4; severe neutropenia)"),
        (0.09, "(CTCAE grade 4; profound neutropenia)"),
        (1.6, "(CTCAE grade 1)"),  # below the limit (1.8) but not neutropenia in the severity bands' sense
    ],
)
def test_the_neutropenia_sentence_names_its_severity_in_clinicians_words(value: float, words: str) -> None:
    text = explained(flags_of(make_series([value], [0], analyte="anc")))
    assert text["neutropenia"] == f"ANC {value} below 1.8 {words}"


def _every_pair_median(window: pd.DataFrame) -> dict[tuple[int, str], float]:
    """Theil-Sen by definition: every pair of a group's results at different times, their median."""
    expected = {}
    for key, rows in window.groupby(["patient_key", "analyte"]):
        t, value = rows["t"].to_numpy(), rows["value"].to_numpy()
        i, j = np.meshgrid(np.arange(len(t)), np.arange(len(t)), indexing="ij")
        later = t[j] > t[i]
        if later.any():
            slopes = (value[j][later] - value[i][later]) / (t[j][later] - t[i][later])
            expected[key] = float(np.median(slopes))
    return expected


@pytest.mark.parametrize(("chunk", "keep"), [(1 << 20, 1 << 18), (64, 16), (7, 3)])
def test_the_pairwise_median_slope_is_exact_in_bounded_chunks(
    monkeypatch: pytest.MonkeyPatch, chunk: int, keep: int
) -> None:
    """Groups of many sizes, times tied and rounded values (equal slopes), whatever the bound on the slopes
    held at once: small bounds send the long groups through the selection over passes, which must find the
    same median as taking every pair at once."""
    from monitor.analysis import flags

    monkeypatch.setattr(flags, "SLOPE_CHUNK", chunk)
    monkeypatch.setattr(flags, "_SELECT_KEEP", keep)
    monkeypatch.setattr(flags, "_SELECT_BINS", 8)
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 60, 40)
    sizes[:3] = [2, 1, 90]
    n = int(sizes.sum())
    window = pd.DataFrame(
        {
            "patient_key": np.repeat(np.arange(len(sizes)) // 3, sizes),
            "analyte": np.repeat(np.array(["wbc", "anc", "alc"])[np.arange(len(sizes)) % 3], sizes),
            "value": np.round(rng.random(n) * 5, 1),
            "t": -rng.integers(0, 30, n).astype(float),
        }
    ).sample(frac=1, random_state=3)
    all_tied = pd.DataFrame({"patient_key": 99, "analyte": "wbc", "value": [1.0, 2.0, 3.0], "t": -4.0})
    found = flags._median_pairwise_slope(pd.concat([window, all_tied], ignore_index=True))
    expected = _every_pair_median(window)
    assert (99, "wbc") not in found.index  # no pair at different times: no slope
    assert found.to_dict() == expected  # exactly: the same slopes, the same middle ones
