"""The worklist's triage (analysis.triage) and the alerts that still hold (analysis.alerts)."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.analysis.alerts import ALERT_COLUMNS, current_alerts
from monitor.analysis.triage import filtered, headline, max_grade, prioritised, priority, priority_reason

AT = pd.Timestamp("2026-03-16T08:00Z")


def make_patients(**columns: list) -> pd.DataFrame:
    """A patient list of ``len(patient_id)`` rows; columns not given are empty or unflagged."""
    count = len(columns["patient_id"])
    defaults = {
        "patient_key": list(range(1, count + 1)),
        "assigning_authority": [None] * count,
        "name": [None] * count,
        "teams": [""] * count,
        "flags": [[] for _ in range(count)],
        "explanations": [[] for _ in range(count)],
        "latest_wbc_grade": [None] * count,
        "latest_anc_grade": [None] * count,
        "latest_alc_grade": [None] * count,
        "acknowledged": [pd.NA] * count,
        "days_since_cbc": [1] * count,
        "last_collected_at": [AT] * count,
    }
    frame = pd.DataFrame({**defaults, **columns})
    for analyte in ("wbc", "anc", "alc"):
        frame[f"latest_{analyte}_grade"] = frame[f"latest_{analyte}_grade"].astype("Int64")
    frame["acknowledged"] = frame["acknowledged"].astype("boolean")
    return frame


# The haematologist's review cases, one patient each, in the order they must come:
# A: ANC 0.4 (grade 4) with a normal-ish WBC; C: ANC 0.8 (grade 3); E: ANC newly below its limit, 1.2
# (grade 2); D: WBC 1.8 (grade 3) alone; B: ALC 0.4 (grade 3) alone; F: WBC 3.6 below its limit for weeks
# (grade 1).
REVIEW_CASES = {
    "A": {"flags": ["neutropenia"], "wbc": (4.2, 0), "anc": (0.4, 4)},
    "C": {"flags": ["leukopenia", "neutropenia"], "wbc": (2.6, 2), "anc": (0.8, 3)},
    "E": {"flags": ["neutropenia", "anc_new_onset"], "wbc": (4.5, 0), "anc": (1.2, 2)},
    "D": {"flags": ["leukopenia"], "wbc": (1.8, 3), "anc": (1.6, 0)},
    "B": {"flags": ["lymphopenia"], "wbc": (4.4, 0), "anc": (2.5, 0), "alc": (0.4, 3)},
    "F": {"flags": ["leukopenia", "persistent"], "wbc": (3.6, 1), "anc": (2.0, 0)},
}
REVIEW_ORDER = [
    ("A", 1, "ANC grade 4 (0.4 x10^9/L)"),
    ("C", 2, "ANC grade 3 (0.8 x10^9/L)"),
    ("E", 3, "new neutropenia: ANC grade 2 (1.2 x10^9/L)"),
    ("D", 4, "WBC grade 3 (1.8 x10^9/L)"),
    ("B", 4, "ALC grade 3 (0.4 x10^9/L)"),
    ("F", 6, "persistent leukopenia"),
]


def review_patients(names: list[str] | None = None) -> pd.DataFrame:
    """The review's patients, in the order given (default: the reverse of the expected order)."""
    names = names or list(reversed(REVIEW_CASES))
    cases = [REVIEW_CASES[name] for name in names]
    columns: dict[str, list] = {"patient_id": names, "flags": [case["flags"] for case in cases]}
    for analyte in ("wbc", "anc", "alc"):
        value = [case.get(analyte, (None, None)) for case in cases]
        columns[f"latest_{analyte}"] = [v for v, _ in value]
        columns[f"latest_{analyte}_comparator"] = [None] * len(names)
        columns[f"latest_{analyte}_grade"] = [g for _, g in value]
    return make_patients(**columns)


def test_the_worklist_ranks_the_review_cases_by_the_most_dangerous_finding() -> None:
    patients = review_patients()
    before = patients.copy()
    ordered = prioritised(patients)
    assert list(zip(ordered["patient_id"], ordered["tier"], ordered["priority_reason"], strict=True)) == (
        REVIEW_ORDER
    )
    pd.testing.assert_frame_equal(patients, before)  # the list given is not changed


@pytest.mark.parametrize(
    ("flags", "grades", "tier"),
    [
        ([], {}, 8),
        (["leukopenia"], {"wbc": 1}, 7),
        (["neutropenia", "anc_significant_drop"], {"anc": 1}, 7),
        (["leukopenia", "persistent"], {"wbc": 1}, 6),
        (["lymphopenia", "alc_persistent"], {"alc": 2}, 6),
        (["neutropenia", "anc_persistent"], {"anc": 2}, 6),
        (["leukopenia", "new_onset"], {"wbc": 2}, 5),  # WBC alone, newly low: below new neutropenia
        (["lymphopenia", "alc_worsening"], {"alc": 2}, 5),
        (["lymphopenia"], {"alc": 4}, 4),  # a lymphocyte grade 4 is not ranked with the ANC grades
        (["leukopenia", "worsening"], {"wbc": 3}, 4),
        (["neutropenia", "anc_worsening", "anc_persistent"], {"anc": 2}, 3),
        # A grade-1 new neutropenia within the reference change value goes with the other new findings
        # (DEMO-0043: ANC 2.27 -> 1.74, LLN 1.8); grade 2, or a fall beyond the RCV, is tier 3.
        (["neutropenia", "anc_new_onset"], {"anc": 1}, 5),
        (["neutropenia", "anc_new_onset", "anc_significant_drop"], {"anc": 1}, 3),
        (["neutropenia", "anc_new_onset"], {"anc": 2}, 3),
        (["neutropenia"], {"anc": 3, "alc": 4}, 2),
        ([], {"anc": 4}, 1),  # grade 4 comes first even without a flag
    ],
)
def test_each_patient_falls_in_the_first_tier_that_applies(flags, grades, tier) -> None:
    patients = make_patients(
        patient_id=["A"], flags=[flags], **{f"latest_{a}_grade": [g] for a, g in grades.items()}
    )
    assert priority(patients).tolist() == [tier]


def test_febrile_neutropenia_ranks_first_and_an_unknown_or_absent_finding_does_not() -> None:
    patients = make_patients(
        patient_id=["fever", "unknown", "grade4", "no_anc"],
        flags=[["neutropenia"]] * 3 + [[]],
        latest_anc=[0.8, 0.8, 0.3, None],
        latest_anc_grade=[3, 3, 4, None],
        febrile_neutropenia=pd.array([True, pd.NA, False, True], dtype="boolean"),
    )
    ordered = prioritised(patients)
    # Within tier 1, febrile neutropenia before an afebrile grade 4 (an emergency whatever its grade).
    assert ordered["patient_id"].tolist() == ["fever", "no_anc", "grade4", "unknown"]
    assert ordered["tier"].tolist() == [1, 1, 1, 2]
    assert ordered["priority_reason"].tolist()[0:2] == [
        "febrile neutropenia, ANC grade 3 (0.8 x10^9/L)",
        "febrile neutropenia",
    ]
    assert priority(patients.drop(columns="febrile_neutropenia")).tolist() == [2, 2, 1, 8]


def test_the_reason_names_every_finding_of_its_tier_with_counts_as_reported() -> None:
    patients = make_patients(
        patient_id=["both", "censored", "worse", "changes", "chronic", "other"],
        flags=[
            ["leukopenia", "lymphopenia"],
            ["neutropenia"],
            ["neutropenia", "anc_worsening"],
            ["leukopenia", "lymphopenia", "new_onset", "alc_worsening"],
            ["leukopenia", "neutropenia", "persistent", "chronic", "anc_persistent"],
            ["neutropenia", "anc_significant_drop"],
        ],
        latest_wbc=[1.9, None, None, None, None, None],
        latest_alc=[0.1, None, None, None, None, None],
        latest_anc=[None, 0.1, 1.3, None, None, None],
        latest_anc_comparator=[None, "<", None, None, None, None],
        latest_wbc_grade=[3, None, None, 2, 1, None],
        latest_anc_grade=[None, 4, 2, None, 2, 1],
        latest_alc_grade=[4, None, None, 2, None, None],
    )
    assert priority_reason(patients).tolist() == [
        "WBC grade 3 (1.9 x10^9/L), ALC grade 4 (0.1 x10^9/L)",
        "ANC grade 4 (<0.1 x10^9/L)",
        "worsening neutropenia: ANC grade 2 (1.3 x10^9/L)",
        "new leukopenia, worsening lymphopenia",
        "persistent neutropenia, chronic leukopenia",
        "neutropenia, ANC significant drop",
    ]


def test_the_highest_grade_of_wbc_anc_and_alc_counts_and_none_graded_is_na() -> None:
    patients = make_patients(
        patient_id=["A", "B"],
        latest_wbc_grade=[1, None],
        latest_anc_grade=[2, None],
        latest_alc_grade=[3, None],
    )
    assert max_grade(patients).tolist() == [3, pd.NA]


def test_within_a_tier_the_higher_anc_grade_then_the_latest_cbc_comes_first() -> None:
    patients = make_patients(
        patient_id=["quiet", "older_g3", "newer_g3", "g3_alc4", "g4"],
        flags=[[], ["neutropenia"], ["neutropenia"], ["neutropenia", "lymphopenia"], ["neutropenia"]],
        latest_anc_grade=[None, 3, 3, 3, 4],
        latest_alc_grade=[None, None, None, 4, None],
        last_collected_at=[AT, AT - pd.Timedelta(days=3), AT, AT - pd.Timedelta(days=5), AT],
    )
    ordered = prioritised(patients)
    # Same ANC grade and WBC grade: the ALC grade 4 breaks the tie before the date of the CBC.
    assert ordered["patient_id"].tolist() == ["g4", "g3_alc4", "newer_g3", "older_g3", "quiet"]
    assert ordered["tier"].tolist() == [1, 2, 2, 2, 8] and ordered["grade"].tolist()[:2] == [4, 4]


def test_filters_keep_the_rows_matching_every_one_given() -> None:
    patients = make_patients(
        patient_id=["MRN1", "MRN2", "MRN3"],
        name=["Ada Lovelace", None, "Alan Turing"],
        teams=["Oncology, Ward 7", "Oncology", "Ward 7"],
        flags=[["neutropenia"], ["leukopenia"], []],
        latest_anc_grade=[3, 1, None],
        acknowledged=[False, True, pd.NA],
    )
    assert filtered(patients, team="Ward 7")["patient_id"].tolist() == ["MRN1", "MRN3"]
    assert filtered(patients, team="Ward")["patient_id"].tolist() == []  # whole team names only
    assert filtered(patients, flags=["leukopenia", "lymphopenia"])["patient_id"].tolist() == ["MRN2"]
    assert filtered(patients, min_grade=2)["patient_id"].tolist() == ["MRN1"]
    assert filtered(patients, text=" turing ")["patient_id"].tolist() == ["MRN3"]
    assert filtered(patients, text="mrn2")["patient_id"].tolist() == ["MRN2"]
    assert filtered(patients, unacknowledged_only=True)["patient_id"].tolist() == ["MRN1"]
    assert filtered(patients, team="Oncology", min_grade=1, text="ada")["patient_id"].tolist() == ["MRN1"]


def test_the_headline_counts_the_list_it_is_given() -> None:
    patients = prioritised(
        make_patients(
            patient_id=["A", "B", "C", "D"],
            flags=[["neutropenia"], ["neutropenia", "anc_worsening"], ["leukopenia", "persistent"], []],
            latest_anc_grade=[3, 2, 1, None],
            acknowledged=[False, False, True, pd.NA],
            days_since_cbc=[1, 30, 45, None],
        )
    )
    assert headline(patients) == {
        "Patients": 4,
        "Urgent (priority 1-2)": 1,
        "New or worsening neutropenia": 1,
        "Any worsening": 1,
        "Not acknowledged": 2,
        "No CBC for 30 days": 2,
    }


def _changes(rows: list[tuple[int, str, str | None, float | None, str | None]]) -> pd.DataFrame:
    """Recorded changes (patient_key, flag, analyte, grade_after, explanation), an hour apart."""
    frame = pd.DataFrame(rows, columns=["patient_key", "flag", "analyte", "grade_after", "explanation"])
    return frame.assign(
        recorded_at=[AT + pd.Timedelta(hours=i) for i in range(len(frame))],
        change="appeared",
    )


def test_an_alert_is_a_change_that_still_holds_worded_as_it_reads_now() -> None:
    patients = make_patients(
        patient_id=["MRN1", "MRN2"],
        flags=[["neutropenia"], []],
        explanations=[["ANC 0.9 below 1.8 (CTCAE grade 3)"], []],
        latest_anc_grade=[3, 0],
    )
    changes = _changes(
        [
            (1, "neutropenia", "anc", None, "ANC 1.2 below 1.8"),
            (1, "grade", "anc", 3.0, "ANC CTCAE grade 2 -> 3"),
            (2, "neutropenia", "anc", None, "ANC 1.6 below 1.8"),  # came and went
            (2, "grade", "anc", 1.0, "ANC CTCAE grade 0 -> 1"),  # back to grade 0
        ]
    )
    found = current_alerts(changes, patients)
    assert found.columns.tolist() == ALERT_COLUMNS
    assert found["patient_id"].tolist() == ["MRN1"]
    assert found.loc[0, "changes"] == [
        "neutropenia appeared: ANC 0.9 below 1.8 (CTCAE grade 3)",
        "ANC CTCAE grade 2 -> 3",
    ]
    assert (found.loc[0, "first_noticed_at"], found.loc[0, "last_noticed_at"]) == (
        AT,
        AT + pd.Timedelta(hours=1),
    )


def test_alerts_come_in_the_worklists_order_of_the_review_cases() -> None:
    patients = review_patients().assign(
        patient_key=lambda frame: range(1, len(frame) + 1),
        explanations=lambda frame: frame["flags"].map(lambda flags: [f"{flag} now" for flag in flags]),
    )
    # Each patient's first flag appeared, an hour apart: the worst (A) the longest ago.
    changes = _changes(
        [
            (int(key), flags[0], None, None, None)
            for key, flags in zip(patients["patient_key"], patients["flags"], strict=True)
        ]
    )
    found = current_alerts(changes, patients)
    assert found["patient_id"].tolist() == [name for name, _, _ in REVIEW_ORDER]


def test_alerts_of_equal_priority_come_most_recent_first() -> None:
    patients = make_patients(
        patient_id=["earlier", "later", "grade3"],
        flags=[["leukopenia", "worsening"], ["leukopenia", "new_onset"], ["neutropenia"]],
        explanations=[["a", "b"], ["c", "d"], ["e"]],
        latest_wbc_grade=[2, 2, None],
        latest_anc_grade=[None, None, 3],
    )
    changes = _changes([(3, "neutropenia", None, None, None), (1, "worsening", None, None, None)])
    changes = pd.concat(
        [
            changes,
            _changes([(2, "new_onset", None, None, None)]).assign(recorded_at=AT + pd.Timedelta(hours=5)),
        ],
        ignore_index=True,
    )
    assert current_alerts(changes, patients)["patient_id"].tolist() == ["grade3", "later", "earlier"]


def test_no_change_or_none_that_holds_is_an_empty_list_of_alerts() -> None:
    patients = make_patients(patient_id=["MRN1"])
    assert current_alerts(_changes([]), patients).columns.tolist() == ALERT_COLUMNS
    gone = current_alerts(_changes([(1, "leukopenia", "wbc", None, None)]), patients)
    assert gone.empty and gone.columns.tolist() == ALERT_COLUMNS


def test_a_grade_1_new_neutropenia_ranks_with_the_new_findings_after_a_wbc_grade_3() -> None:
    patients = make_patients(
        patient_id=["DEMO-0043", "wbc3"],
        flags=[["neutropenia", "anc_new_onset"], ["leukopenia"]],
        latest_anc=[1.74, 2.0],
        latest_anc_comparator=[None, None],
        latest_anc_grade=[1, 0],
        latest_wbc_grade=[0, 3],
    )
    ordered = prioritised(patients)
    assert ordered["patient_id"].tolist() == ["wbc3", "DEMO-0043"]
    assert ordered["tier"].tolist() == [4, 5]
    assert ordered["priority_reason"].tolist()[1] == "new neutropenia: ANC grade 1 (1.74 x10^9/L)"


def test_a_wbc_below_1_without_a_differential_ranks_as_anc_grade_3_or_4() -> None:
    drawn = pd.Timestamp("2026-03-15T08:00Z")
    patients = make_patients(
        patient_id=["wbc0.8", "wbc0.4", "old_anc", "anc1.2"],
        flags=[["leukopenia"], ["leukopenia"], ["leukopenia", "neutropenia"], ["neutropenia"]],
        latest_wbc=[0.8, 0.4, 0.9, 3.0],
        latest_wbc_comparator=[None] * 4,
        latest_wbc_grade=[4, 4, 4, 2],
        latest_wbc_at=[drawn] * 4,
        latest_anc=[None, None, 2.0, 1.2],
        latest_anc_comparator=[None] * 4,
        latest_anc_grade=[None, None, 0, 2],
        # The third patient's ANC is from an earlier panel than its WBC: the WBC bounds it now.
        latest_anc_at=[pd.NaT, pd.NaT, drawn - pd.Timedelta(days=3), drawn],
    )
    ordered = prioritised(patients)
    assert list(zip(ordered["patient_id"], ordered["tier"], ordered["priority_reason"], strict=True)) == [
        ("wbc0.4", 1, "ANC not measured; WBC 0.4 x10^9/L (ANC at most 0.4)"),
        ("wbc0.8", 2, "ANC not measured; WBC 0.8 x10^9/L (ANC at most 0.8)"),
        ("old_anc", 2, "ANC not measured; WBC 0.9 x10^9/L (ANC at most 0.9)"),
        ("anc1.2", 7, "neutropenia"),
    ]
    assert headline(ordered)["Urgent (priority 1-2)"] == 3


def test_the_reason_says_a_count_is_preliminary_and_dates_one_older_than_a_week() -> None:
    patients = make_patients(
        patient_id=["prelim", "old", "recent"],
        flags=[["neutropenia"]] * 3,
        latest_anc=[0.3, 0.3, 0.3],
        latest_anc_comparator=[None] * 3,
        latest_anc_grade=[4, 4, 4],
        latest_anc_status=["preliminary", "final", "final"],
        latest_anc_age_days=[0, 9, 7],
        latest_anc_day=pd.to_datetime(["2026-05-10", "2026-05-01", "2026-05-03"]),
    )
    assert prioritised(patients).set_index("patient_id")["priority_reason"].to_dict() == {
        "prelim": "ANC grade 4 (0.3 x10^9/L, preliminary)",
        "old": "ANC grade 4 (0.3 x10^9/L on 2026-05-01)",
        "recent": "ANC grade 4 (0.3 x10^9/L)",
    }


def test_febrile_neutropenia_is_named_with_its_fever_and_count_and_counted_in_the_headline() -> None:
    patients = make_patients(
        patient_id=["fn", "anc3"],
        flags=[["neutropenia"]] * 2,
        latest_anc=[0.8, 0.8],
        latest_anc_comparator=[None] * 2,
        latest_anc_grade=[3, 3],
        febrile_neutropenia=pd.array([True, False], dtype="boolean"),
        febrile_detail=["fever 38.9 °C, ANC 0.8 x10^9/L", None],
    )
    ordered = prioritised(patients)
    assert ordered["patient_id"].tolist() == ["fn", "anc3"]
    assert ordered["tier"].tolist() == [1, 2]
    assert ordered["priority_reason"].iloc[0] == "febrile neutropenia (fever 38.9 °C, ANC 0.8 x10^9/L)"
    assert headline(ordered)["Urgent (priority 1-2)"] == 2


def test_a_cbc_due_without_a_flag_ranks_with_the_other_flags_and_says_why() -> None:
    reason = "nadir window missed: C1 D8-D15 (2026-11-20 to 2026-11-27) closed without a count"
    patients = make_patients(
        patient_id=["quiet", "due", "flagged_due"],
        flags=[[], [], ["leukopenia"]],
        latest_wbc_grade=[0, 0, 1],
        cbc_due=pd.array([False, True, True], dtype="boolean"),
        cbc_due_reason=["", reason, "CBC due: C2 nadir window D8-D15 opens 2026-12-04"],
    )
    ordered = prioritised(patients)
    assert ordered["patient_id"].tolist() == ["flagged_due", "due", "quiet"]
    assert ordered["tier"].tolist() == [7, 7, 8]
    assert ordered["priority_reason"].tolist() == [
        "leukopenia, CBC due: C2 nadir window D8-D15 opens 2026-12-04",
        reason,
        "no flag",
    ]
