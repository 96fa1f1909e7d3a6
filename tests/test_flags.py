"""Per-patient flags, explanations, the current WBC run and episodes below the limit (analysis.flags)."""

from __future__ import annotations

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
    *series: pd.DataFrame, as_of_day: float = 30, rules: FlagRules = DEFAULT_FLAG_RULES
) -> pd.Series:
    """The first patient's output row."""
    results = pd.concat(series, ignore_index=True)
    return patient_flags(results, as_of=START + pd.Timedelta(days=as_of_day), rules=rules).iloc[0]


def explained(row: pd.Series) -> dict[str, str]:
    return dict(zip(row["flags"], row["explanations"], strict=True))


# --- the current run: persistent (2 results over >= 14 days) and chronic (>= 90 days) ---


@pytest.mark.parametrize(
    ("values", "days", "persistent"),
    [
        ([3.5, 3.5], [0, 13], False),
        ([3.5, 3.5], [0, 13.99], False),
        ([3.5, 3.5], [0, 14], True),
        ([3.5], [0], False),
        ([3.5, 4.5, 3.5], [0, 7, 14], False),
    ],
)
def test_wbc_run_is_persistent_from_two_results_fourteen_days_apart(values, days, persistent) -> None:
    row = flags_of(make_series(values, days))
    assert ("persistent" in row["flags"]) is persistent


@pytest.mark.parametrize(("last_day", "chronic"), [(89, False), (89.9, False), (90, True), (120, True)])
def test_wbc_run_is_chronic_from_ninety_days(last_day, chronic) -> None:
    row = flags_of(make_series([3.5, 3.5, 3.5], [0, 45, last_day]), as_of_day=last_day)
    assert ("chronic" in row["flags"]) is chronic
    assert "persistent" in row["flags"]


def test_run_columns_describe_the_current_run_only() -> None:
    row = flags_of(make_series([3.5, 5.0, 3.9, 3.8, 3.7], [0, 7, 14, 21, 30]))
    assert (row["run_start"], row["run_results"], row["run_days"]) == (START + pd.Timedelta(days=14), 3, 16)


def test_persistent_explanation_reads_like_a_clinician_wrote_it() -> None:
    row = flags_of(make_series([3.8, 3.0, 2.4, 1.8], [0, 7, 14, 21]), as_of_day=24)
    assert row["flags"] == ("leukopenia", "persistent", "worsening", "significant_drop")
    assert row["explanations"] == (
        "WBC 1.8 below 4.0 (CTCAE grade 3)",
        "WBC below 4.0 on 4 consecutive results over 21 days (3.8 -> 1.8)",
        "WBC worsening: grade 2 -> 3, fell 25.0% from 2.4 to 1.8 (reference change value -22.3%), "
        "28-day trend -66.7% (Theil-Sen over 4 results)",
        "WBC fell 25.0% from 2.4 to 1.8, beyond the reference change value of -22.3%",
    )
    assert (row["run_results"], row["run_days"], row["days_since_cbc"]) == (4, 21, 3)


def test_flags_follow_the_vocabulary_order() -> None:
    row = flags_of(make_series([6.0, 2.5], [0, 14]), make_series([1.0], [14], analyte="anc"))
    assert row["flags"] == ("leukopenia", "neutropenia", "new_onset", "worsening", "significant_drop")
    assert list(row["flags"]) == [f for f in FLAGS if f in row["flags"]]


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


def test_worsening_by_a_higher_grade_without_a_significant_fall() -> None:
    row = flags_of(make_series([3.1, 2.9], [0, 7]))  # grade 1 -> 2, a fall of 6.5 %
    assert explained(row)["worsening"] == "WBC worsening: grade 1 -> 2"
    assert "significant_drop" not in row["flags"]


def test_worsening_and_significant_drop_by_a_fall_beyond_the_rcv() -> None:
    # 3.8 -> 2.6 is a fall of 31.6 %, beyond the WBC RCV of -22.3 % (Z 1.645, CVA 1.5 %, CVI 10.8 %).
    text = explained(flags_of(make_series([3.8, 2.6], [0, 7])))
    assert text["significant_drop"] == (
        "WBC fell 31.6% from 3.8 to 2.6, beyond the reference change value of -22.3%"
    )
    assert text["worsening"] == (
        "WBC worsening: grade 1 -> 2, fell 31.6% from 3.8 to 2.6 (reference change value -22.3%)"
    )


@pytest.mark.parametrize(("latest", "worsening"), [(3.05, True), (3.1, False)])
def test_worsening_by_a_fall_at_the_rcv_within_the_same_grade(latest, worsening) -> None:
    row = flags_of(make_series([3.95, latest], [0, 7]))  # -22.8 % vs -21.5 %; both grade 1
    assert ("worsening" in row["flags"]) is worsening
    assert ("significant_drop" in row["flags"]) is worsening


def test_worsening_by_a_falling_28_day_trend_of_small_steps() -> None:
    row = flags_of(make_series([3.9, 3.6, 3.4, 3.1], [0, 7, 14, 21]))  # every step within the RCV
    assert explained(row)["worsening"] == "WBC worsening: 28-day trend -26.5% (Theil-Sen over 4 results)"
    assert "significant_drop" not in row["flags"]


def test_a_falling_trend_that_has_turned_up_is_not_worsening() -> None:
    # 3.9 -> 3.4 -> 2.9 -> 3.0: the trend over 28 days falls, but the latest count is above the one before.
    row = flags_of(make_series([3.9, 3.4, 2.9, 3.0], [0, 7, 14, 21]))
    assert "worsening" not in row["flags"]


def test_a_projected_fall_clipped_at_100_percent_says_so() -> None:
    row = flags_of(make_series([3.9, 1.0, 0.2, 0.1], [0, 7, 14, 21]))
    assert "28-day trend -100% or more (Theil-Sen over 4 results)" in explained(row)["worsening"]


def test_no_trend_from_two_results_or_from_results_older_than_the_window() -> None:
    assert "worsening" not in flags_of(make_series([3.9, 3.5], [0, 21]))["flags"]
    assert "worsening" not in flags_of(make_series([6.0, 3.9, 3.8], [0, 40, 47]), as_of_day=50)["flags"]


def test_significant_drop_without_leukopenia_is_flagged_alone() -> None:
    row = flags_of(make_series([9.0, 5.0], [0, 7]))
    assert row["flags"] == ("significant_drop",)
    assert row["run_start"] is pd.NaT and row["run_results"] == 0 and row["run_days"] == 0


def test_recovering_when_below_but_rising_beyond_the_rcv_and_not_worsening() -> None:
    row = flags_of(make_series([3.0, 2.0, 1.0, 1.5], [0, 7, 14, 21]))  # the trend still falls
    assert row["flags"] == ("leukopenia", "persistent", "recovering")
    assert explained(row)["recovering"] == (
        "WBC rose 50.0% from 1.0 to 1.5, beyond the reference change value of +28.8%, still below 4.0"
    )


def test_rising_above_the_limit_is_not_recovering() -> None:
    assert flags_of(make_series([2.0, 4.5], [0, 7]))["flags"] == ()


# --- lineages: ANC and ALC ---


def test_neutropenia_explanation_tells_anc_persistence_and_worsening_without_bare_flags() -> None:
    row = flags_of(
        make_series([6.0, 5.5, 5.0], [0, 7, 21]), make_series([1.6, 1.4, 0.9], [0, 7, 21], analyte="anc")
    )
    assert row["flags"] == ("neutropenia",)
    assert row["explanations"] == (
        "ANC 0.9 below 1.8 (CTCAE grade 3; moderate neutropenia); "
        "ANC below 1.8 on 3 consecutive results over 21 days (1.6 -> 0.9); "
        "ANC worsening: grade 2 -> 3, 28-day trend -58.3% (Theil-Sen over 3 results)",
    )


def test_lymphopenia_explanation_tells_alc_chronic_and_recovering() -> None:
    alc = make_series([0.7, 0.6, 0.3, 0.5], [0, 60, 93, 100], analyte="alc")
    row = flags_of(alc, as_of_day=101)
    assert row["flags"] == ("lymphopenia",)
    assert row["explanations"][0] == (
        "ALC 0.5 below 1.0 (CTCAE grade 2); "
        "ALC below 1.0 on 4 consecutive results over 100 days (0.7 -> 0.5); "
        "ALC below 1.0 for 100 days since 2026-01-01 (chronic: 90 days or more); "
        "ALC rose 66.7% from 0.3 to 0.5, beyond the reference change value of +36.2%, still below 1.0"
    )


def test_censored_anc_below_0_1_is_grade_4_profound_and_a_certain_fall() -> None:
    anc = make_series([0.6, 0.1], [0, 7], analyte="anc", comparator=[None, "<"])
    text = explained(flags_of(anc))
    assert text["neutropenia"] == (
        "ANC <0.1 below 1.8 (CTCAE grade 4; profound neutropenia); "
        "ANC worsening: grade 3 -> 4, fell at least 83.3% from 0.6 to <0.1 (reference change value -44.9%)"
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
    assert row["flags"] == ("neutropenia",)
    assert (row["run_start"], row["run_results"], row["run_days"], row["days_since_cbc"]) == (
        pd.NaT,
        0,
        0,
        27,
    )


def test_one_row_per_patient_sorted_with_empty_tuples_when_nothing_applies() -> None:
    results = pd.concat([make_series([3.0], [0], patient_key=2), make_series([6.0], [0], patient_key=1)])
    out = patient_flags(results, as_of=START + pd.Timedelta(days=1))
    assert list(out.columns) == list(FLAG_COLUMNS)
    assert out["patient_key"].tolist() == [1, 2]
    assert out["flags"].tolist() == [(), ("leukopenia", "new_onset")]
    assert out["explanations"].tolist()[0] == ()


# --- configuration ---


def test_site_rules_override_the_defaults_without_code() -> None:
    rules = FlagRules.from_mapping({"persistent_min_days": 21, "grading": {"rcv_z": 1.96}})
    series = make_series([3.8, 2.9], [0, 14])  # -23.7 %: beyond -22.3 % (Z 1.645), within -26.0 % (Z 1.96)
    assert flags_of(series)["flags"] == ("leukopenia", "persistent", "worsening", "significant_drop")
    assert flags_of(series, rules=rules)["flags"] == ("leukopenia", "worsening")


@pytest.mark.parametrize(
    "mapping",
    [{"persistent_days": 14}, {"chronic_min_days": 90.5}, {"slope_min_results": 1}, {"grading": {"z": 2}}],
)
def test_bad_site_rules_are_errors(mapping) -> None:
    with pytest.raises(ValueError):
        FlagRules.from_mapping(mapping)


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        patient_flags(make_series([3.0], [0]), as_of=pd.Timestamp("2026-02-01"))


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
    pd.testing.assert_frame_equal(episodes(results), expected)
    assert episodes(results, analyte="anc")["n_results"].tolist() == [1]


def test_episodes_of_several_patients_ignore_withdrawn_results() -> None:
    results = pd.concat(
        [
            make_series([3.0, 1.0, 3.5], [0, 1, 2], patient_key=2, status=["final", "cancelled", "final"]),
            make_series([5.0], [0], patient_key=1),
        ]
    )
    out = episodes(results)
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
    patient_flags(results, as_of=START + pd.Timedelta(days=20))
    episodes(results)
    pd.testing.assert_frame_equal(results, before)


def test_empty_results_give_empty_frames() -> None:
    empty = make_series([], [])
    out = patient_flags(empty, as_of=START)
    assert out.empty and list(out.columns) == list(FLAG_COLUMNS)
    assert episodes(empty).empty and list(episodes(empty).columns) == list(EPISODE_COLUMNS)


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
