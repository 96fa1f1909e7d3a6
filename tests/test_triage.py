"""The worklist's triage (analysis.triage) and the alerts that still hold (analysis.alerts)."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.analysis.alerts import ALERT_COLUMNS, current_alerts
from monitor.analysis.triage import filtered, headline, max_grade, prioritised, priority

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


@pytest.mark.parametrize(
    ("flags", "anc_grade", "tier"),
    [
        ([], None, 5),
        (["leukopenia"], 1, 4),
        (["leukopenia", "persistent"], 1, 3),
        (["neutropenia", "new_onset"], 2, 2),
        (["neutropenia", "worsening", "persistent"], 2, 2),
        (["neutropenia"], 3, 1),
        ([], 4, 1),  # grade 3 or worse comes first even without a flag
    ],
)
def test_each_patient_falls_in_the_first_tier_that_applies(flags, anc_grade, tier) -> None:
    patients = make_patients(patient_id=["A"], flags=[flags], latest_anc_grade=[anc_grade])
    assert priority(patients).tolist() == [tier]


def test_the_highest_grade_of_wbc_anc_and_alc_counts_and_none_graded_is_na() -> None:
    patients = make_patients(
        patient_id=["A", "B"],
        latest_wbc_grade=[1, None],
        latest_anc_grade=[2, None],
        latest_alc_grade=[3, None],
    )
    assert max_grade(patients).tolist() == [3, pd.NA]


def test_the_worklist_puts_the_worst_first_then_the_higher_grade_then_the_latest_cbc() -> None:
    patients = make_patients(
        patient_id=["quiet", "older_g3", "newer_g3", "g4", "new"],
        flags=[[], ["neutropenia"], ["neutropenia"], ["neutropenia"], ["leukopenia", "new_onset"]],
        latest_anc_grade=[None, 3, 3, 4, 1],
        last_collected_at=[AT, AT - pd.Timedelta(days=3), AT, AT - pd.Timedelta(days=9), AT],
    )
    before = patients.copy()
    ordered = prioritised(patients)
    assert ordered["patient_id"].tolist() == ["g4", "newer_g3", "older_g3", "new", "quiet"]
    assert ordered["tier"].tolist() == [1, 1, 1, 2, 5] and ordered["grade"].tolist()[:2] == [4, 3]
    pd.testing.assert_frame_equal(patients, before)  # the list given is not changed


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
            flags=[["neutropenia"], ["leukopenia", "worsening"], ["leukopenia", "persistent"], []],
            latest_anc_grade=[3, 1, 1, None],
            acknowledged=[False, False, True, pd.NA],
            days_since_cbc=[1, 30, 45, None],
        )
    )
    assert headline(patients) == {
        "Patients": 4,
        "Grade 3 or worse": 1,
        "New or worsening": 1,
        "Persistent": 1,
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


def test_alerts_come_most_severe_first_then_worsening_then_new_onset() -> None:
    patients = make_patients(
        patient_id=["plain", "worse", "grade4", "new"],
        flags=[["leukopenia"], ["leukopenia", "worsening"], ["neutropenia"], ["leukopenia", "new_onset"]],
        explanations=[["a"], ["b", "c"], ["d"], ["e", "f"]],
        latest_wbc_grade=[1, 1, None, 1],
        latest_anc_grade=[None, None, 4, None],
    )
    changes = _changes(
        [(key, "leukopenia" if key != 3 else "neutropenia", None, None, None) for key in (1, 2, 3, 4)]
    )
    assert current_alerts(changes, patients)["patient_id"].tolist() == ["grade4", "worse", "new", "plain"]


def test_no_change_or_none_that_holds_is_an_empty_list_of_alerts() -> None:
    patients = make_patients(patient_id=["MRN1"])
    assert current_alerts(_changes([]), patients).columns.tolist() == ALERT_COLUMNS
    gone = current_alerts(_changes([(1, "leukopenia", "wbc", None, None)]), patients)
    assert gone.empty and gone.columns.tolist() == ALERT_COLUMNS
