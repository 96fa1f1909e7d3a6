"""CTCAE grading, neutropenia severity, reference-range resolution and RCV (monitor.analysis.grading)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.analysis.grading import (
    CTCAE_V5,
    CTCAE_V6,
    DEFAULT_RULES,
    GradingRules,
    ctcae_grade,
    neutropenia_severity,
    rcv_bounds,
    resolve_lower_limit,
    significant_change,
)

NA = pd.NA


def make_results(**columns: object) -> pd.DataFrame:
    """Long-format results; ``value`` sets the length, other columns broadcast."""
    values = list(columns.pop("value", [5.0]))  # type: ignore[call-overload]
    defaults: dict[str, object] = {"patient_key": 1, "analyte": "wbc", "lln": np.nan}
    return pd.DataFrame({"value": values, **defaults, **columns})


def grade_one(
    analyte: str, value: float, lln: float | None, comparator: str | None = None, **kw: str
) -> object:
    results = make_results(analyte=analyte, value=[value], lln=[np.nan if lln is None else lln])
    if comparator is not None:
        results["comparator"] = [comparator]
    return ctcae_grade(results, **kw).iloc[0]  # type: ignore[arg-type]


# --- CTCAE v5.0 exact boundaries ("<A - B" means A > x >= B; docs/clinical-basis.md) ---


@pytest.mark.parametrize(
    ("analyte", "value", "lln", "expected"),
    [
        ("wbc", 4.0, 4.0, 0),
        ("wbc", 3.999, 4.0, 1),
        ("wbc", 3.0, 4.0, 1),
        ("wbc", 2.999, 4.0, 2),
        ("wbc", 2.0, 4.0, 2),
        ("wbc", 1.0, 4.0, 3),
        ("wbc", 0.999, 4.0, 4),
        ("anc", 1.8, 1.8, 0),
        ("anc", 1.5, 1.8, 1),
        ("anc", 1.0, 1.8, 2),
        ("anc", 0.5, 1.8, 3),
        ("anc", 0.499, 1.8, 4),
        ("alc", 1.0, 1.0, 0),
        ("alc", 0.8, 1.0, 1),
        ("alc", 0.5, 1.0, 2),
        ("alc", 0.2, 1.0, 3),
        ("alc", 0.199, 1.0, 4),
        ("plt", 150.0, 150.0, 0),
        ("plt", 75.0, 150.0, 1),
        ("plt", 50.0, 150.0, 2),
        ("plt", 25.0, 150.0, 3),
        ("plt", 24.9, 150.0, 4),
        ("hgb", 12.0, 12.0, 0),
        ("hgb", 10.0, 12.0, 1),
        ("hgb", 8.0, 12.0, 2),
        ("hgb", 7.9, 12.0, 3),
        ("hgb", 3.0, 12.0, 3),  # no lab-derivable grade 4 for anaemia
    ],
)
def test_ctcae_v5_boundaries_are_half_open(analyte, value, lln, expected):
    assert grade_one(analyte, value, lln) == expected


def test_value_converted_from_cells_per_microlitre_sits_exactly_on_the_boundary():
    # 1500 x 0.001 must be 1.5 (grade 1), not 1.4999999 (grade 2).
    assert grade_one("anc", 1500 * 0.001, 1.8) == 1
    assert grade_one("anc", 0.1 * 3 + 0.7, 1.8) == 2  # 1.0000000000000002 -> 1.0


@pytest.mark.parametrize(("value", "expected"), [(3.5, NA), (4.5, NA), (2.5, 2), (0.5, 4)])
def test_without_lln_grade_1_is_undeterminable_but_absolute_grades_stand(value, expected):
    grade = grade_one("wbc", value, None)
    assert pd.isna(grade) if expected is NA else grade == expected


def test_duffy_null_lln_leaves_anc_1_3_normal_by_range_but_grade_2():
    assert grade_one("anc", 1.3, 1.21) == 2
    assert grade_one("anc", 1.6, 1.21) == 0


def test_analytes_without_a_term_and_missing_values_are_not_graded():
    results = make_results(
        analyte=["amc", "neut_pct", "wbc"], value=[0.01, 5.0, np.nan], lln=[0.2, 40.0, 4.0]
    )
    assert ctcae_grade(results).isna().all()


def test_grades_are_nullable_integers_aligned_to_the_input_index():
    results = make_results(value=[3.5, 0.5], lln=[4.0, 4.0]).set_axis([10, 20])
    expected = pd.Series([1, 4], index=[10, 20], name="grade", dtype="Int64")
    pd.testing.assert_series_equal(ctcae_grade(results), expected)


def test_empty_results_grade_to_an_empty_series():
    assert ctcae_grade(make_results(value=[])).dtype == "Int64"


def test_haemoglobin_in_g_per_litre_is_refused():
    results = make_results(analyte="hgb", value=[95.0], lln=[120.0], unit="g/L")
    with pytest.raises(ValueError, match="hgb must be in g/dL"):
        ctcae_grade(results)


# --- Censored values: the grade that is certain ---


@pytest.mark.parametrize(
    ("analyte", "comparator", "bound", "lln", "expected"),
    [
        ("anc", "<", 0.1, 1.8, 4),  # certainly < 0.5
        ("anc", "<", 0.5, 1.8, 4),  # < 0.5 is grade 4 whatever the value
        ("anc", "<", 0.6, 1.8, 3),  # >= grade 3, could be 4: the certain grade is 3
        ("anc", "<=", 0.5, 1.8, 3),  # 0.5 itself is grade 3
        ("anc", "≤", 0.5, 1.8, 3),
        ("wbc", "<", 3.5, 4.0, 1),  # certainly below the LLN
        ("wbc", "<", 5.0, 4.0, 0),  # could be normal
        ("wbc", "<", 3.5, None, NA),
        ("wbc", ">", 3.0, 4.0, 1),  # ">" graded as its bound
        ("wbc", ">=", 100.0, 4.0, 0),
        ("anc", "", 0.4, 1.8, 4),  # blank comparator: an ordinary value
    ],
)
def test_censored_values_get_the_least_severe_grade_their_bound_allows(
    analyte, comparator, bound, lln, expected
):
    grade = grade_one(analyte, bound, lln, comparator)
    assert pd.isna(grade) if expected is NA else grade == expected


def test_unknown_comparator_is_refused():
    with pytest.raises(ValueError, match="unknown comparators"):
        grade_one("anc", 0.1, 1.8, "~")


# --- CTCAE v6.0 (UNVERIFIED transcription; docs/clinical-basis.md) ---


@pytest.mark.parametrize(
    ("analyte", "value", "lln", "v5", "v6"),
    [
        ("anc", 1.6, 1.8, 1, 0),  # v6 neutrophil grade 1 no longer refers to the LLN
        ("anc", 1.4, None, 2, 1),
        ("anc", 1.2, 1.8, 2, 1),
        ("anc", 0.7, 1.8, 3, 2),
        ("anc", 0.3, 1.8, 4, 3),
        ("anc", 0.1, 1.8, 4, 3),
        ("anc", 0.099, 1.8, 4, 4),
        ("plt", 20.0, 150.0, 4, 3),  # Thrombocytopenia grade 4 is < 10
        ("plt", 9.9, 150.0, 4, 4),
        ("plt", 100.0, 150.0, 1, 1),
        ("wbc", 2.5, 4.0, 2, 2),
        ("hgb", 9.0, 12.0, 2, 2),
        ("alc", 0.3, 1.0, 3, NA),  # no "Lymphocyte count decreased" in v6
    ],
)
def test_ctcae_v6_differs_from_v5_for_neutrophils_and_platelets(analyte, value, lln, v5, v6):
    assert grade_one(analyte, value, lln, version="5.0") == v5
    grade = grade_one(analyte, value, lln, version="6.0")
    assert pd.isna(grade) if v6 is NA else grade == v6


def test_v6_censored_anc_below_0_1_is_grade_4_and_below_0_2_is_grade_3():
    assert grade_one("anc", 0.1, None, "<", version="6.0") == 4
    assert grade_one("anc", 0.2, None, "<", version="6.0") == 3


def test_ctcae_tables_carry_their_terms_and_v6_is_marked_unverified():
    assert CTCAE_V5.term("plt").term == "Platelet count decreased"
    assert CTCAE_V6.term("plt").term == "Thrombocytopenia"
    assert CTCAE_V5.term("hgb").bounds == (10.0, 8.0)
    assert CTCAE_V6.term("alc") is None and not CTCAE_V6.verified
    assert "UNVERIFIED" in CTCAE_V6.source


def test_version_comes_from_the_rules_unless_given():
    results = make_results(analyte="anc", value=[1.2], lln=[1.8])
    assert ctcae_grade(results, rules=GradingRules(ctcae_version="6.0")).iloc[0] == 1
    assert ctcae_grade(results, version="5.0", rules=GradingRules(ctcae_version="6.0")).iloc[0] == 2
    with pytest.raises(ValueError, match="not one of"):
        ctcae_grade(results, version="4.03")


# --- Neutropenia severity (half-open; docs/clinical-basis.md, Severity bands) ---


@pytest.mark.parametrize(
    ("anc", "expected"),
    [
        (2.0, ""),
        (1.5, ""),
        (1.499, "mild"),
        (1.0, "mild"),
        (0.999, "moderate"),
        (0.5, "moderate"),
        (0.499, "severe"),
        (0.1, "severe"),
        (0.099, "profound"),
        (0.0, "profound"),
    ],
)
def test_neutropenia_severity_boundaries(anc, expected):
    assert neutropenia_severity(pd.Series([anc])).iloc[0] == expected


def test_neutropenia_severity_is_na_for_a_missing_count_and_certain_for_a_censored_one():
    severity = neutropenia_severity(pd.Series([np.nan, 0.1, 0.1]), comparator=pd.Series([None, "<", None]))
    expected = pd.Series([NA, "profound", "severe"], name="severity", dtype="string")
    pd.testing.assert_series_equal(severity, expected)


# --- Reference range resolution ---

OVERRIDES = pd.DataFrame({"patient_key": [1], "analyte": ["anc"], "low": [1.21], "high": [5.39]})
LAB_RANGES = pd.DataFrame(
    {"lab": ["L1", "L1"], "analyte": ["anc", "wbc"], "low": [1.8, 3.4], "high": [7.7, 10.8]}
)


def test_range_priority_is_override_then_reported_then_lab_then_default():
    results = pd.DataFrame(
        {
            "patient_key": [1, 2, 2, 2, 2, 2],
            "analyte": ["anc", "anc", "anc", "wbc", "plt", "amc"],
            "lab": ["L1", "L1", "L1", "L2", "L1", "L1"],
            "ref_low": [2.0, 2.0, np.nan, np.nan, np.nan, np.nan],
            "ref_high": [7.0, 7.0, np.nan, np.nan, np.nan, np.nan],
        }
    )
    resolved = resolve_lower_limit(results, overrides=OVERRIDES, lab_ranges=LAB_RANGES)
    expected = pd.DataFrame(
        {
            "lln": [1.21, 2.0, 1.8, 4.0, 150.0, np.nan],
            "uln": [5.39, 7.0, 7.7, 11.0, 450.0, np.nan],
            "range_source": pd.array(
                ["patient override", "reported", "lab", "default adult", "default adult", "none"],
                dtype="string",
            ),
            "flag_limit": [1.21, 2.0, 1.8, 4.0, 150.0, np.nan],
        }
    )
    pd.testing.assert_frame_equal(resolved, expected)


def test_a_range_is_never_stitched_from_two_sources():
    results = pd.DataFrame({"patient_key": [2], "analyte": ["anc"], "lab": ["L1"], "ref_low": [2.0]})
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=LAB_RANGES)
    row = resolved.iloc[0]
    assert (row["lln"], row["range_source"]) == (2.0, "reported") and np.isnan(
        row["uln"]
    )  # not the lab's 7.7


BIRTHS = pd.DataFrame(
    {
        "patient_key": [1, 2, 3, 4],
        "birth_date": pd.to_datetime(["2021-03-10", "1970-01-01", "2026-01-20", "2024-06-15"]),
        "sex": ["M", "female", "F", None],
    }
)


def children_and_adults(analyte: str, patients: list[int], when: str = "2026-02-01") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": patients,
            "analyte": analyte,
            "collected_at": pd.Timestamp(when, tz="UTC"),
            "lab": "L1",
        }
    )


def test_a_five_year_old_gets_the_2_to_10_year_wbc_band_not_the_adult_default():
    results = children_and_adults("wbc", [1, 2])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=BIRTHS)
    assert resolved["lln"].tolist() == [4.5, 4.0]
    assert resolved["range_source"].tolist() == ["default age band", "default adult"]


@pytest.mark.parametrize(
    ("patient", "when", "lln"),
    [
        (3, "2026-02-01", 5.5),  # 12 days old: Davis's "birth" band
        (3, "2026-02-20", 1.9),  # 1 completed month
        (4, "2026-06-14", 1.9),  # 23 months
        (4, "2026-06-15", 2.4),  # 2 years
        (1, "2032-03-09", 2.4),  # 10 years 11 months
        (1, "2032-03-10", 1.5),  # 11 years: adult
    ],
)
def test_anc_age_bands_follow_completed_age_at_collection(patient, when, lln):
    results = children_and_adults("anc", [patient], when)
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=BIRTHS)
    assert resolved["lln"].iloc[0] == lln


def test_a_lab_range_without_an_age_band_is_not_applied_to_children():
    results = children_and_adults("wbc", [1, 2])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=LAB_RANGES, birth_dates=BIRTHS)
    assert resolved["range_source"].tolist() == ["default age band", "lab"]


def test_a_lab_range_with_an_age_band_applies_to_children_of_that_age():
    paediatric = pd.concat(
        [
            pd.DataFrame(
                {
                    "lab": ["L1"],
                    "analyte": ["wbc"],
                    "low": [5.0],
                    "high": [14.5],
                    "min_months": [24],
                    "max_months": [132],
                }
            ),
            LAB_RANGES,
        ],
        ignore_index=True,
    )
    results = children_and_adults("wbc", [1, 2])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=paediatric, birth_dates=BIRTHS)
    assert resolved["lln"].tolist() == [5.0, 3.4]
    assert resolved["range_source"].tolist() == ["lab", "lab"]


def test_haemoglobin_default_depends_on_sex_and_unknown_sex_or_age_gets_none():
    results = children_and_adults("hgb", [2, 4, 9], when="2026-06-20")
    births = pd.concat([BIRTHS, pd.DataFrame({"patient_key": [5], "birth_date": [pd.NaT], "sex": ["M"]})])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=births)
    assert resolved["lln"].iloc[0] == 12.0
    assert resolved["range_source"].tolist() == ["default adult", "none", "none"]


def test_without_birth_dates_patients_are_taken_as_adults_of_unknown_sex():
    results = pd.DataFrame({"patient_key": [1, 1], "analyte": ["wbc", "hgb"]})
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None)
    assert resolved["range_source"].tolist() == ["default adult", "none"]


def test_duplicate_overrides_are_a_configuration_error():
    results = pd.DataFrame({"patient_key": [1], "analyte": ["anc"]})
    with pytest.raises(pd.errors.MergeError):
        resolve_lower_limit(results, overrides=pd.concat([OVERRIDES, OVERRIDES]), lab_ranges=None)


def test_resolved_lln_feeds_grading():
    results = children_and_adults("wbc", [1, 2]).assign(value=[4.2, 4.2])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=BIRTHS)
    assert ctcae_grade(results.assign(lln=resolved["lln"])).tolist() == [1, 0]


# --- Reference change value (log-normal; docs/clinical-basis.md, Reference change values) ---


@pytest.mark.parametrize(
    ("cva", "cvi", "z", "down", "up"),
    [
        (0.015, 0.108, 1.96, -0.260, 0.352),
        (0.015, 0.108, 1.645, -0.223, 0.288),
        (0.015, 0.157, 1.96, -0.352, 0.544),
        (0.019, 0.260, 1.96, -0.509, 1.036),
        (0.019, 0.161, 1.96, -0.360, 0.563),
        (0.020, 0.132, 1.96, -0.308, 0.446),
        (0.050, 0.193, 1.96, -0.422, 0.730),
    ],
)
def test_log_normal_rcv_matches_the_reference_table(cva, cvi, z, down, up):
    low, high = rcv_bounds(cva, cvi, z=z)
    assert (round(low, 3), round(high, 3)) == (down, up)


def test_rcv_refuses_percentages_passed_as_fractions():
    with pytest.raises(ValueError, match="fraction"):
        rcv_bounds(1.5, 10.8)


def test_significant_change_compares_each_result_with_the_previous_usable_one():
    times = pd.to_datetime(
        ["2026-01-01", "2026-01-08", "2026-01-09", "2026-01-10", "2026-01-15", "2026-01-03", "2026-01-01"],
        utc=True,
    )
    results = pd.DataFrame(
        {
            "patient_key": [1, 1, 1, 1, 1, 1, 2],
            "analyte": ["wbc", "wbc", "wbc", "wbc", "wbc", "anc", "wbc"],
            "collected_at": times,
            "value": [6.0, 4.0, 1.0, 0.1, 5.2, 2.0, 3.0],
            "comparator": [None, None, None, "<", None, None, None],
            "status": ["final", "final", "entered-in-error", "final", "preliminary", "final", "final"],
        },
        index=list("abcdefg"),
    )
    changes = significant_change(results)
    assert changes.index.tolist() == list("abcdefg")
    assert changes["previous_value"].tolist()[:5] == pytest.approx(
        [np.nan, 6.0, np.nan, np.nan, 4.0], nan_ok=True
    )
    assert changes.loc["b", "change"] == pytest.approx(-1 / 3)
    assert changes.loc["e", "change"] == pytest.approx(0.3)
    assert changes["significant_fall"].tolist() == [NA, True, NA, NA, False, NA, NA]
    assert changes["significant_rise"].tolist() == [NA, False, NA, NA, True, NA, NA]
    assert changes.loc["e", "previous_at"] == times[1]


def test_significant_change_sorts_by_time_and_uses_the_configured_z():
    times = pd.to_datetime(["2026-01-08", "2026-01-01"], utc=True)
    results = pd.DataFrame({"patient_key": 1, "analyte": "wbc", "collected_at": times, "value": [4.9, 6.0]})
    assert significant_change(results)["significant_fall"].tolist() == [False, NA]  # -18 % within -22.3 %
    strict = GradingRules.from_mapping({"rcv_inputs": {"wbc": {"cv_within": 0.05}}})
    assert significant_change(results, rules=strict)["significant_fall"].tolist() == [True, NA]
    lenient = GradingRules.from_mapping({"rcv_z": 0.5})
    assert significant_change(results, rules=lenient)["significant_fall"].tolist() == [True, NA]


def test_analytes_without_rcv_inputs_get_a_change_but_no_flag():
    times = pd.to_datetime(["2026-01-01", "2026-01-08"], utc=True)
    results = pd.DataFrame(
        {"patient_key": 1, "analyte": "plt", "collected_at": times, "value": [200.0, 20.0]}
    )
    changes = significant_change(results)
    assert changes["change"].iloc[1] == pytest.approx(-0.9)
    assert changes["significant_fall"].isna().all()


# --- Rules ---


def test_rules_from_mapping_keep_defaults_and_refuse_unknown_keys():
    rules = GradingRules.from_mapping(
        {"ctcae_version": "6.0", "rcv_inputs": {"plt": {"cv_analytical": 0.03, "cv_within": 0.066}}}
    )
    assert rules.ctcae_version == "6.0" and rules.rcv_z == DEFAULT_RULES.rcv_z
    assert [i.analyte for i in rules.rcv_inputs] == ["wbc", "anc", "alc", "amc", "plt"]
    assert GradingRules.from_mapping({}) == DEFAULT_RULES
    with pytest.raises(ValueError, match="unknown grading settings"):
        GradingRules.from_mapping({"z": 1.96})
    with pytest.raises(ValueError, match="not one of"):
        GradingRules.from_mapping({"ctcae_version": "4.03"})
    with pytest.raises(ValueError, match="fraction"):
        GradingRules.from_mapping({"rcv_inputs": {"wbc": {"cv_within": 10.8}}})
    with pytest.raises(ValueError, match="takes cv_analytical"):
        GradingRules.from_mapping({"rcv_inputs": {"wbc": {"cvi": 0.1}}})


# --- No function modifies its input (tableone style) ---


def test_functions_do_not_modify_their_inputs():
    results = children_and_adults("wbc", [1, 2]).assign(
        value=[3.0, 0.4], lln=[np.nan, 4.0], comparator=["<", None], ref_low=[np.nan, 3.9], status="final"
    )
    frames = {"results": results, "overrides": OVERRIDES, "labs": LAB_RANGES, "births": BIRTHS}
    before = {name: frame.copy(deep=True) for name, frame in frames.items()}
    anc = pd.Series([0.4, np.nan])
    ctcae_grade(results)
    neutropenia_severity(anc, comparator=results["comparator"])
    resolve_lower_limit(results, overrides=OVERRIDES, lab_ranges=LAB_RANGES, birth_dates=BIRTHS)
    significant_change(results)
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, before[name])
    pd.testing.assert_series_equal(anc, pd.Series([0.4, np.nan]))


def test_unknown_age_gets_the_lowest_default_of_any_age_for_white_counts_only():
    """No birth date, no range sent: WBC 4.0, ANC 1.5, ALC 1.0 (the adult limits, below every paediatric
    one, docs/clinical-basis.md, Paediatric defaults); haemoglobin has adult defaults only, so none."""
    results = pd.DataFrame(
        {
            "patient_key": [9, 9, 9, 9, 1],
            "analyte": ["wbc", "anc", "alc", "hgb", "wbc"],
            "collected_at": pd.Timestamp("2026-02-01", tz="UTC"),
        }
    )
    births = pd.concat([BIRTHS, pd.DataFrame({"patient_key": [9], "birth_date": [pd.NaT], "sex": [None]})])
    resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=births)
    assert resolved["lln"].tolist()[:3] == [4.0, 1.5, 1.0] and np.isnan(resolved["lln"].iloc[3])
    assert resolved["range_source"].tolist() == [
        "default any age",
        "default any age",
        "default any age",
        "none",
        "default age band",  # a known age keeps its own band (patient 1 is a child)
    ]
    assert resolved["uln"].iloc[:3].isna().all()  # no single upper limit fits every age


# --- Grading in the unit the lab reported (docs/clinical-basis.md, Grading in the reported unit) ---


def _hb_as_imported(value: float, unit: str) -> pd.DataFrame:
    """One haemoglobin result as the importer stores it: converted to g/dL, the lab's unit kept."""
    from monitor.formats.units import HGB_FACTORS, to_canonical, unit_key

    factor = HGB_FACTORS[unit_key(pd.Series([unit])).iloc[0]]
    canonical = to_canonical(pd.Series([value]), pd.Series([factor])).iloc[0]
    return make_results(analyte="hgb", value=[canonical], lln=[12.0], unit_raw=[unit])


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        # CTCAE v5.0 Anemia, mmol/L column: grade 1 < LLN - 6.2; grade 2 < 6.2 - 4.9; grade 3 < 4.9.
        (6.2, "mmol/L", 1),
        (6.1, "mmol/L", 2),
        (4.9, "mmol/L", 2),
        (4.8, "mmol/L", 3),
        # g/L column: grade 1 < LLN - 100; grade 2 < 100 - 80; grade 3 < 80.
        (100.0, "g/L", 1),
        (99.0, "g/L", 2),
        (80.0, "g/L", 2),
        (79.0, "g/L", 3),
        (10.0, "g/dL", 1),
        (9.9, "g/dL", 2),
    ],
)
def test_haemoglobin_is_graded_in_the_ctcae_column_of_the_unit_the_lab_reported(value, unit, expected):
    assert ctcae_grade(_hb_as_imported(value, unit)).iloc[0] == expected


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        # /mm3 (= cells/uL) and x10^9/L columns convert exactly: no drift at the printed boundaries.
        ("anc", 1500, "/mm3", 1),
        ("anc", 1499, "/mm3", 2),
        ("anc", 1000, "cells/uL", 2),
        ("anc", 500, "/uL", 3),
        ("wbc", 3000, "/mm3", 1),
        ("wbc", 2000, "/mm3", 2),
        ("alc", 800, "/mm3", 1),
        ("alc", 200, "/mm3", 3),
        ("plt", 75000, "/mm3", 1),
        ("plt", 74999, "/mm3", 2),
        ("plt", 25000, "cells/uL", 3),
    ],
)
def test_counts_per_mm3_grade_exactly_at_ctcae_printed_boundaries(analyte, value, unit, expected):
    from monitor.formats.units import COUNT_FACTORS, to_canonical, unit_key

    factor = COUNT_FACTORS[unit_key(pd.Series([unit])).iloc[0]]
    canonical = to_canonical(pd.Series([float(value)]), pd.Series([factor])).iloc[0]
    lln = {"anc": 1.8, "wbc": 4.0, "alc": 1.0, "plt": 150.0}[analyte]
    results = make_results(analyte=analyte, value=[canonical], lln=[lln], unit_raw=[unit])
    assert ctcae_grade(results).iloc[0] == expected


def test_the_pattern_prints_haemoglobin_as_the_lab_printed_it_with_its_grade_in_that_unit():
    from monitor.analysis.patterns import panel_pattern

    hb = _hb_as_imported(6.2, "mmol/L").assign(value_raw=["6.2"])
    # The lab's own range 7.5-10.0 mmol/L, stored in g/dL as the importer converts it.
    hb["lln"] = round(7.5 / 0.6206, 6)
    panel = pd.concat(
        [hb, make_results(analyte=["wbc", "plt"], value=[5.0, 210.0], lln=[4.0, 150.0])], ignore_index=True
    )
    detail = panel_pattern(panel).loc[1, "pattern_detail"]
    assert detail.startswith("Hb 6.2 mmol/L < 7.5 mmol/L (grade 1);")


# --- Paediatric neutropenia (docs/clinical-basis.md, Paediatric neutropenia) ---


def _child_anc(
    value: float, born: str, taken: str = "2026-03-05", ref_low: float | None = None
) -> pd.DataFrame:
    results = pd.DataFrame(
        {
            "patient_key": [1],
            "analyte": ["anc"],
            "value": [value],
            "collected_at": pd.to_datetime([f"{taken}T08:00:00Z"]),
            "ref_low": [ref_low],
        }
    )
    people = pd.DataFrame({"patient_key": [1], "birth_date": [pd.Timestamp(born).date()], "sex": ["F"]})
    limits = resolve_lower_limit(results, overrides=None, lab_ranges=None, birth_dates=people)
    return results.join(limits)


@pytest.mark.parametrize(
    ("value", "born", "neutropenic", "lln", "flag_limit"),
    [
        (2.0, "2021-01-10", False, 2.4, 1.5),  # 5 years: below the 2-10 year interval, not neutropenic
        (1.4, "2021-01-10", True, 2.4, 1.5),
        (1.2, "2025-09-01", False, 1.9, 1.0),  # 6 months: infant cut-off 1.0
        (0.9, "2025-09-01", True, 1.9, 1.0),
        (1.6, "1980-01-01", False, 1.5, 1.5),  # adult: unchanged
        (1.4, "1980-01-01", True, 1.5, 1.5),
    ],
)
def test_a_childs_neutropenia_flag_applies_the_age_cut_off_not_the_reference_interval(
    value, born, neutropenic, lln, flag_limit
):
    from monitor.analysis.flags import below_limit

    results = _child_anc(value, born)
    assert (results.loc[0, "lln"], results.loc[0, "flag_limit"]) == (lln, flag_limit)
    assert bool(below_limit(results).iloc[0]) is neutropenic


def test_a_labs_printed_range_neither_lowers_nor_raises_a_childs_neutropenia_cut_off():
    from monitor.analysis.flags import below_limit
    from monitor.analysis.patterns import panel_pattern

    # A 5-year-old whose lab prints 1.0 as its lower limit: ANC 1.2 is still neutropenia (< 1.5 for age).
    low_lab = _child_anc(1.2, "2021-01-10", ref_low=1.0)
    assert (low_lab.loc[0, "range_source"], low_lab.loc[0, "flag_limit"]) == ("reported", 1.5)
    assert bool(below_limit(low_lab).iloc[0]) is True
    # An 11-month-old whose lab prints the adult 1.8: ANC 1.2 is below the lab's range, not neutropenia
    # (< 1.0 for an infant), and the sentence does not call the adult range the interval for age.
    adult_lab = _child_anc(1.2, "2025-04-01", ref_low=1.8)
    assert (adult_lab.loc[0, "lln"], adult_lab.loc[0, "flag_limit"]) == (1.8, 1.0)
    assert bool(below_limit(adult_lab).iloc[0]) is False
    detail = panel_pattern(adult_lab).loc[1, "pattern_detail"]
    assert detail == (
        "ANC 1.2 below the lab's reference range (1.8), not neutropenia (< 1 x10^9/L for age); "
        "not measured: WBC, ALC, Hb, platelets"
    )


def test_a_child_below_the_interval_for_age_keeps_ctcae_grade_1_against_the_intervals_lln():
    results = _child_anc(2.0, "2021-01-10")
    assert ctcae_grade(results).iloc[0] == 1


def test_a_newborn_in_the_first_week_is_neutropenic_below_5_0():
    from monitor.analysis.flags import below_limit

    results = _child_anc(4.8, "2026-03-02")
    assert (results.loc[0, "lln"], results.loc[0, "flag_limit"]) == (5.5, 5.0)
    assert bool(below_limit(results).iloc[0]) is True
    assert bool(below_limit(_child_anc(5.2, "2026-03-02")).iloc[0]) is False


def test_a_five_year_olds_anc_of_2_is_not_neutropenia_but_below_the_interval_for_age():
    from monitor.analysis.flags import patient_flags
    from monitor.analysis.patterns import panel_pattern

    results = _child_anc(2.0, "2021-01-10")
    flagged = patient_flags(results, as_of=pd.Timestamp("2026-03-06", tz="UTC"), timezone="UTC")
    assert "neutropenia" not in flagged.loc[0, "flags"]
    detail = panel_pattern(results).loc[1, "pattern_detail"]
    expected = (
        "ANC 2 below the reference interval for age (2.4), not neutropenia (< 1.5 x10^9/L for age); "
        "not measured: WBC, ALC, Hb, platelets"
    )
    assert detail == expected
    # The same words whoever else is computed with the child (here an adult with a low WBC).
    other = results.assign(patient_key=2, analyte="wbc", value=2.0, lln=4.0, flag_limit=4.0)
    together = panel_pattern(pd.concat([results, other], ignore_index=True))
    assert together.loc[1, "pattern_detail"] == expected
    neutropenic = patient_flags(
        _child_anc(1.4, "2021-01-10"), as_of=pd.Timestamp("2026-03-06", tz="UTC"), timezone="UTC"
    )
    explained = dict(zip(neutropenic.loc[0, "flags"], neutropenic.loc[0, "explanations"], strict=True))
    assert explained["neutropenia"].startswith("ANC 1.4 below 1.5 (CTCAE grade 2")
