"""The worklist's triage of haemoglobin, platelets, high counts and the lab's critical flags
(analysis.triage): the haematologist's second review (cases C13, C17, C20 and a hyperleukocytosis among
critical results)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from db.accounts import SYSTEM
from monitor.analysis.alerts import current_alerts
from monitor.analysis.triage import in_priority_order, max_grade, prioritised, priority, priority_reason
from services.imports import import_path
from services.worklist import alerts
from tests.test_high_counts import NIST, NOW, OPTIONS

AT = pd.Timestamp("2026-12-01T11:20Z")


def patients_of(**columns: list) -> pd.DataFrame:
    """A patient list of ``len(patient_id)`` rows; columns not given are empty or unflagged."""
    count = len(columns["patient_id"])
    defaults: dict[str, list] = {
        "name": [None] * count,
        "teams": [""] * count,
        "flags": [[] for _ in range(count)],
        "acknowledged": [pd.NA] * count,
        "days_since_cbc": [0] * count,
        "last_collected_at": [AT] * count,
        **{f"latest_{a}_grade": [0] * count for a in ("wbc", "anc", "alc", "hgb", "plt")},
        **{f"latest_{a}_high_grade": [0] * count for a in ("wbc", "alc")},
    }
    frame = pd.DataFrame({**defaults, **columns})
    for column in frame.columns:
        if column.endswith("grade"):
            frame[column] = frame[column].astype("Int64")
    return frame


@pytest.mark.parametrize(
    ("hgb", "hgb_grade", "plt", "plt_grade", "tier", "reason"),
    [
        # C17: Hb 6.5 g/dL and platelets 9, the lab sent no flag: platelets grade 4 rank the same day.
        (6.5, 3, 9.0, 4, 2, "platelets grade 4 (9 x10^9/L)"),
        # The CTCAE v5.0 boundaries: platelets 24 grade 4, 25 grade 3 (< 50 to 25), 50 grade 2.
        (13.0, 0, 24.0, 4, 2, "platelets grade 4 (24 x10^9/L)"),
        (13.0, 0, 25.0, 3, 4, "platelets grade 3 (25 x10^9/L)"),
        (13.0, 0, 50.0, 2, 8, "no flag"),
        # Hb 7.9 g/dL grade 3 (< 8.0), 8.0 grade 2.
        (7.9, 3, 220.0, 0, 4, "Hb grade 3 (7.9 g/dL)"),
        (8.0, 2, 220.0, 0, 8, "no flag"),
        (7.9, 3, 30.0, 3, 4, "Hb grade 3 (7.9 g/dL), platelets grade 3 (30 x10^9/L)"),
    ],
)
def test_low_haemoglobin_and_platelets_rank_by_their_grade_without_a_flag_of_the_lab(
    hgb, hgb_grade, plt, plt_grade, tier, reason
) -> None:
    patients = patients_of(
        patient_id=["C17"],
        latest_wbc=[6.0],
        latest_anc=[4.0],
        latest_hgb=[hgb],
        latest_hgb_grade=[hgb_grade],
        latest_plt=[plt],
        latest_plt_grade=[plt_grade],
    )
    assert priority(patients).tolist() == [tier]
    assert priority_reason(patients).tolist() == [reason]
    assert max_grade(patients).tolist() == [max(hgb_grade, plt_grade) or 0]


def test_platelets_grade_4_are_named_beside_an_anc_grade_3_in_tier_2() -> None:
    patients = patients_of(
        patient_id=["X"], latest_anc=[0.8], latest_anc_grade=[3], latest_plt=[9.0], latest_plt_grade=[4]
    )
    assert priority_reason(patients).tolist() == ["ANC grade 3 (0.8 x10^9/L), platelets grade 4 (9 x10^9/L)"]


def test_the_highest_grade_counts_haemoglobin_platelets_and_high_counts() -> None:
    patients = patients_of(
        patient_id=["P", "H", "W", "N"],
        latest_plt_grade=[4, 0, 0, None],
        latest_hgb_grade=[0, 3, 0, None],
        latest_wbc_high_grade=[0, 0, 3, None],
        latest_wbc_grade=[1, 0, 0, None],
        latest_anc_grade=[0, 0, 0, None],
        latest_alc_grade=[0, 1, 0, None],
        latest_alc_high_grade=[0, 0, 0, None],
    )
    assert max_grade(patients).tolist() == [4, 3, 3, pd.NA]


def test_within_a_tier_a_graded_count_comes_before_a_critical_flag_on_a_normal_one() -> None:
    # Both are tier 1 by the lab's critical flag alone: C20's WBC 6.0 flagged AA, and a WBC of 150
    # (Leukocytosis grade 3) flagged HH; the hyperleukocytosis comes first, whatever the order given.
    patients = patients_of(
        patient_id=["C20", "C19b"],
        flags=[[], ["leukocytosis"]],
        latest_wbc=[6.0, 150.0],
        latest_wbc_high_grade=[0, 3],
        lab_critical=[True, True],
        lab_critical_detail=[
            "WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab",
            "WBC 150.0 x10^9/L flagged HH (critical high) by the lab",
        ],
    )
    ordered = in_priority_order(patients, then="last_collected_at")
    assert ordered["patient_id"].tolist() == ["C19b", "C20"]
    assert ordered["tier"].tolist() == [1, 1]


def test_within_a_tier_platelets_or_haemoglobin_outrank_a_lower_wbc_grade() -> None:
    patients = patients_of(
        patient_id=["W", "P"], latest_wbc_grade=[3, 0], latest_hgb_grade=[0, 3], latest_plt_grade=[0, 3]
    )
    # Tier 4 both; P's grade 3 ties W's, the WBC's first at the same grade; a higher grade comes first.
    assert prioritised(patients)["tier"].tolist() == [4, 4]
    assert prioritised(patients)["patient_id"].tolist() == ["W", "P"]
    higher = patients_of(patient_id=["W", "A"], latest_wbc_grade=[3, 0], latest_alc_grade=[0, 4])
    assert prioritised(higher)["patient_id"].tolist() == ["A", "W"]


def test_the_critical_reason_is_dated_marked_preliminary_and_says_a_count_within_its_range() -> None:
    patients = patients_of(
        patient_id=["C20", "OLD", "C13"],
        flags=[[], ["leukocytosis"], ["leukocytosis", "neutrophilia"]],
        latest_wbc=[6.0, 150.0, 120.0],
        latest_wbc_high_grade=[0, 3, 3],
        latest_wbc_status=["final", "final", "preliminary"],
        latest_wbc_age_days=[0, 8, 0],
        latest_wbc_day=[pd.Timestamp("2026-12-01"), pd.Timestamp("2011-01-03"), pd.Timestamp("2026-12-01")],
        lab_critical=[True, True, True],
        lab_critical_detail=[
            "WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab",
            "WBC 150.0 x10^9/L flagged HH (critical high) by the lab",
            "WBC 120.0 x10^9/L flagged HH (critical high) by the lab; "
            "ANC 100.0 x10^9/L flagged HH (critical high) by the lab",
        ],
    )
    reasons = priority_reason(patients)
    assert reasons.tolist()[0] == (
        "critical result from the lab: WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab, within its"
        " reference range: see the lab's comment"
    )
    # A stale result is dated; 7 days is not stale, 8 is.
    assert reasons.tolist()[1].endswith(
        "WBC 150.0 x10^9/L flagged HH (critical high) by the lab on 2011-01-03"
    )
    assert reasons.tolist()[2].endswith(
        "critical result from the lab: WBC 120.0 x10^9/L flagged HH (critical high) by the lab"
        " (preliminary); ANC 100.0 x10^9/L flagged HH (critical high) by the lab"
    )
    week = patients.assign(latest_wbc_age_days=pd.array([0, 7, 0], dtype="Int64"))
    assert priority_reason(week).tolist()[1].endswith("flagged HH (critical high) by the lab")


# --- A new critical result from the lab is a change (alerts) -----------------------------------------------


def test_a_critical_result_alert_holds_while_the_latest_results_still_carry_it() -> None:
    changes = pd.DataFrame(
        {
            "patient_key": [1, 2],
            "recorded_at": [AT, AT],
            "change": ["appeared", "appeared"],
            "flag": ["lab_critical", "lab_critical"],
            "analyte": [None, None],
            "grade_after": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "explanation": [
                "critical result from the lab: WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab",
                "critical result from the lab: WBC 120.0 x10^9/L flagged HH (critical high) by the lab",
            ],
        }
    )
    # C20 still carries its AA; C13's preliminary 120 was corrected to 12 without a critical flag.
    patients = patients_of(
        patient_id=["C20", "C13"],
        flags=[[], ["leukocytosis"]],
        lab_critical=[True, False],
        lab_critical_detail=["WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab", ""],
    ).assign(patient_key=[1, 2], assigning_authority=None, explanations=[[], ["WBC 12.0 above 11.0"]])
    found = current_alerts(changes, patients)
    assert found["patient_id"].tolist() == ["C20"]
    assert found["changes"].tolist() == [
        ["critical result from the lab: WBC 6.0 x10^9/L flagged AA (critical abnormal) by the lab"]
    ]


def test_a_new_critical_result_reaches_the_alerts_through_the_importer(store) -> None:
    import_path(store, NIST, options=OPTIONS)
    found = alerts(store, viewer=SYSTEM, since=NOW - timedelta(days=30), timezone="UTC", now=NOW)
    first = found[found["patient_id"].eq("PATID1234")].iloc[0]
    assert (
        "critical result from the lab: WBC 105.6 x10^9/L flagged HH (critical high) by the lab; "
        "ANC 58.0 x10^9/L flagged HH (critical high) by the lab; "
        "ALC 41.2 x10^9/L flagged HH (critical high) by the lab"
    ) in first["changes"]
