"""High counts are not normal: leukocytosis, neutrophilia and lymphocytosis above the upper limit that
applies, graded by CTCAE v5.0 where CTCAE grades them; the lab's own abnormal flags beside every value; a
result the lab flagged critical at the top of the worklist.

The NIST LRI CBC sample (WBC 105,600/uL, lymphocytes 41.2 and neutrophils 58 x10^3/uL, each flagged HH)
goes through the real importer; the boundaries are checked on the domain functions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, inspect

from db.accounts import SYSTEM
from db.migrate import current_revision, downgrade, head_revision, upgrade
from db.store import open_store
from monitor.analysis.flags import above_limit, patient_flags
from monitor.analysis.grading import ctcae_high_grade
from monitor.analysis.status import mark_preliminary
from monitor.analysis.timeline import marked_results
from monitor.analysis.triage import in_priority_order, priority, priority_reason
from services.imports import ImportOptions, import_path
from services.worklist import patient_list, worklist
from tests.conftest import DATA

# The page tests' fixtures, one definition: Streamlit's caches cleared around each test (autouse).
from tests.test_dashboard import (
    _app,
    _clear_caches,  # noqa: F401
)

NIST = DATA / "external" / "nist-lri-cbc.hl7"
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
OPTIONS = ImportOptions(imported_by="test", site_timezone="UTC")


# --- CTCAE v5.0 "increased" grades: ">A - B" is A < x <= B ---------------------------------------------


@pytest.mark.parametrize(
    ("analyte", "value", "comparator", "grade"),
    [
        ("alc", 4.0, None, 0),  # Lymphocyte count increased grade 2 is ">4000/mm3": 4.0 is not graded
        ("alc", 4.01, None, 2),
        ("alc", 20.0, None, 2),  # ">4000/mm3 - 20,000/mm3": 20.0 is still grade 2
        ("alc", 20.01, None, 3),
        ("alc", 20.0000004, None, 2),  # unit-conversion noise is rounded away (COMPARE_DECIMALS)
        ("wbc", 100.0, None, 0),  # Leukocytosis grade 3 is ">100,000/mm3"
        ("wbc", 100.01, None, 3),
        ("wbc", 105.6, None, 3),  # never grade 4: that is leucostasis, a clinical finding
        ("wbc", 100.0, ">", 3),  # ">100": certainly above 100
        ("wbc", 100.0, ">=", 0),  # ">=100" may be 100 itself
        ("wbc", 150.0, "<", 0),  # "<150" is not certainly above anything
        ("anc", 58.0, None, None),  # CTCAE v5.0 has no term for a high neutrophil count
    ],
)
def test_high_counts_are_graded_by_ctcae_v5_at_its_exact_boundaries(
    analyte: str, value: float, comparator: str | None, grade: int | None
) -> None:
    results = pd.DataFrame({"analyte": [analyte], "value": [value], "comparator": [comparator]})
    found = ctcae_high_grade(results).iloc[0]
    assert (None if pd.isna(found) else int(found)) == grade


def _one(
    analyte: str, value: float, uln: float | None, comparator: str | None = None, **more
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": [1],
            "analyte": [analyte],
            "value": [value],
            "comparator": [comparator],
            "lln": [1.0],
            "uln": [uln],
            "range_source": ["reported"],
            "collected_at": [pd.Timestamp("2026-11-02 08:00", tz="UTC")],
            **{key: [item] for key, item in more.items()},
        }
    )


def _flags(results: pd.DataFrame) -> dict[str, str]:
    found = patient_flags(results, as_of=pd.Timestamp("2026-11-03", tz="UTC"), timezone="UTC")
    if found.empty:
        return {}
    return dict(zip(found.loc[0, "flags"], found.loc[0, "explanations"], strict=True))


@pytest.mark.parametrize(
    ("value", "comparator", "uln", "high"),
    [
        (11.0, None, 11.0, False),  # equal to the upper limit is not above it
        (11.01, None, 11.0, True),
        (11.0, ">", 11.0, True),  # ">11" is above 11
        (11.0, ">=", 11.0, False),  # ">=11" may be 11
        (12.0, ">=", 11.0, True),
        (20.0, "<", 11.0, False),  # "<20" may be anything below 20
        (50.0, None, None, False),  # without an upper limit nothing is judged high
    ],
)
def test_a_count_is_high_only_when_certainly_above_the_upper_limit_that_applies(
    value: float, comparator: str | None, uln: float | None, high: bool
) -> None:
    results = _one("wbc", value, uln, comparator)
    assert above_limit(results).tolist() == [high]
    assert ("leukocytosis" in _flags(results)) is high


def test_each_high_flag_says_the_count_its_unit_the_limit_whose_it_is_and_the_ctcae_grade() -> None:
    results = pd.concat(
        [_one("wbc", 105.6, 10.8), _one("anc", 58.0, 7.0), _one("alc", 41.2, 4.8), _one("alc", 6.0, 4.8)]
    ).assign(patient_key=[1, 1, 1, 2], range_source=["reported", "reported", "lab", "default adult"])
    found = patient_flags(results, as_of=pd.Timestamp("2026-11-03", tz="UTC"), timezone="UTC")
    first = dict(zip(found.loc[0, "flags"], found.loc[0, "explanations"], strict=True))
    assert list(first) == ["leukocytosis", "neutrophilia", "lymphocytosis"]
    assert first["leukocytosis"] == (
        "WBC 105.6 x10^9/L above 10.8, the upper limit reported with the result "
        "(CTCAE v5.0 Leukocytosis grade 3: above 100.0 x10^9/L, leukostasis risk)"
    )
    assert first["neutrophilia"] == (
        "ANC 58.0 x10^9/L above 7.0, the upper limit reported with the result "
        "(CTCAE v5.0 has no term for a high neutrophil count: not graded)"
    )
    assert first["lymphocytosis"] == (
        "ALC 41.2 x10^9/L above 4.8, the lab's configured upper limit "
        "(CTCAE v5.0 Lymphocyte count increased grade 3: above 20.0 x10^9/L)"
    )
    second = dict(zip(found.loc[1, "flags"], found.loc[1, "explanations"], strict=True))
    assert second == {
        "lymphocytosis": "ALC 6.0 x10^9/L above 4.8, the adult default upper limit "
        "(CTCAE v5.0 Lymphocyte count increased grade 2: above 4.0 x10^9/L)"
    }


def test_a_wbc_above_its_limit_but_not_above_100_says_ctcae_does_not_grade_it() -> None:
    said = _flags(_one("wbc", 14.2, 11.0))["leukocytosis"]
    assert said.endswith("(not graded: CTCAE v5.0 Leukocytosis starts above 100.0 x10^9/L)")


@pytest.mark.parametrize(
    ("analyte", "value", "uln", "flag"),
    [
        ("wbc", 100.0, None, None),  # CTCAE Leukocytosis is "> 100": 100.0 with no limit is not graded
        ("wbc", 100.01, None, "leukocytosis"),  # no upper limit known, but CTCAE grade 3
        ("wbc", 150.0, None, "leukocytosis"),  # the reviewer's C18: unknown birth date, no range
        ("alc", 4.0, None, None),  # Lymphocyte count increased is "> 4.0"
        ("alc", 4.01, None, "lymphocytosis"),
        ("alc", 20.5, None, "lymphocytosis"),  # C18's ALC, grade 3
        ("alc", 4.5, 4.8, "lymphocytosis"),  # C05: within the lab's 4.8, above CTCAE's 4.0 (grade 2)
        ("anc", 110.0, None, None),  # CTCAE has no threshold for a high ANC: no limit, no judgement
    ],
)
def test_a_count_ctcae_grades_high_is_flagged_whatever_the_upper_limit(
    analyte: str, value: float, uln: float | None, flag: str | None
) -> None:
    found = _flags(_one(analyte, value, uln))
    assert [f for f in found if f in ("leukocytosis", "neutrophilia", "lymphocytosis")] == (
        [flag] if flag else []
    )


def test_a_high_count_without_a_limit_or_within_it_says_ctcae_s_threshold() -> None:
    no_limit = _flags(
        pd.concat([_one("wbc", 150.0, None), _one("alc", 20.5, None)]).assign(range_source=None)
    )
    assert no_limit["leukocytosis"] == (
        "WBC 150.0 x10^9/L, no upper limit known, above CTCAE's threshold "
        "(CTCAE v5.0 Leukocytosis grade 3: above 100.0 x10^9/L, leukostasis risk)"
    )
    assert no_limit["lymphocytosis"] == (
        "ALC 20.5 x10^9/L, no upper limit known, above CTCAE's threshold "
        "(CTCAE v5.0 Lymphocyte count increased grade 3: above 20.0 x10^9/L)"
    )
    within = _flags(_one("alc", 4.5, 4.8))
    assert within["lymphocytosis"] == (
        "ALC 4.5 x10^9/L within 4.8, the upper limit reported with the result, but above CTCAE's threshold "
        "(CTCAE v5.0 Lymphocyte count increased grade 2: above 4.0 x10^9/L)"
    )


def test_the_flowsheet_marks_a_count_ctcae_grades_high_though_no_upper_limit_is_known() -> None:
    results = pd.DataFrame(
        {
            "analyte": ["wbc", "alc", "anc"],
            "value": [150.0, 4.5, 110.0],
            "comparator": None,
            "lln": None,
            "ref_high": [None, 4.8, None],
            "status": "final",
            "collected_at": pd.Timestamp("2026-12-01 11:30", tz="UTC"),
        }
    )
    assert marked_results(results)["above_range"].tolist() == [True, True, False]


# --- After G-CSF: a high WBC below grade 3 and a high ANC are expected, not flagged ----------------------


def _gcsf_case(wbc: float, anc: float, alc: float = 1.1) -> pd.DataFrame:
    """The reviewer's C12: docetaxel on 2026-11-20, pegfilgrastim the next day, counts on 2026-12-01."""
    return pd.concat([_one("wbc", wbc, 11.0), _one("anc", anc, 7.7), _one("alc", alc, 4.8)]).assign(
        collected_at=pd.Timestamp("2026-12-01 10:30", tz="UTC")
    )


def _gcsf_events(gcsf_at: str = "2026-11-21 10:00", end_at: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": [1, 1],
            "kind": ["chemotherapy", "gcsf"],
            "start_at": [pd.Timestamp("2026-11-20 09:00", tz="UTC"), pd.Timestamp(gcsf_at, tz="UTC")],
            "end_at": [pd.NaT, pd.Timestamp(end_at, tz="UTC") if end_at else pd.NaT],
            "label": ["Docetaxel 75 mg/m2", "Pegfilgrastim 6 mg"],
            "details": ["docetaxel q21d", ""],
        }
    )


def _gcsf_flags(results: pd.DataFrame, events: pd.DataFrame | None) -> pd.Series:
    found = patient_flags(results, as_of=pd.Timestamp("2026-12-02", tz="UTC"), timezone="UTC", events=events)
    return found.iloc[0]


def test_a_high_wbc_and_anc_after_g_csf_in_the_cycle_are_expected_not_flagged() -> None:
    found = _gcsf_flags(_gcsf_case(14.0, 9.5), _gcsf_events())
    assert found["flags"] == ()
    assert found["notes"] == (
        "ANC 9.5 x10^9/L above 7.7, the upper limit reported with the result (CTCAE v5.0 has no term for a "
        "high neutrophil count: not graded): expected after G-CSF (Pegfilgrastim 6 mg on 2026-11-21), not "
        "flagged",
        "WBC 14.0 x10^9/L above 11.0, the upper limit reported with the result (not graded: CTCAE v5.0 "
        "Leukocytosis starts above 100.0 x10^9/L): expected after G-CSF (Pegfilgrastim 6 mg on 2026-11-21), "
        "not flagged",
    )
    # Without the G-CSF both are flagged.
    assert _gcsf_flags(_gcsf_case(14.0, 9.5), None)["flags"] == ("leukocytosis", "neutrophilia")


@pytest.mark.parametrize(("anc", "flagged"), [(10.0, False), (10.01, True), (28.0, True), (52.0, True)])
def test_on_g_csf_an_anc_above_10_is_flagged_where_the_filgrastim_label_stops_it(anc, flagged) -> None:
    # A second reviewer: WBC 60 / ANC 52 the day after filgrastim must not look like a normal count.
    found = _gcsf_flags(_gcsf_case(max(anc + 4.0, 14.0), anc), _gcsf_events())
    assert found["flags"] == (("leukocytosis", "neutrophilia") if flagged else ())
    if flagged:
        assert found["notes"] == ()
        assert all(
            "while G-CSF acts (Pegfilgrastim 6 mg on 2026-11-21): the ANC is above 10 x10^9/L, where the "
            "filgrastim label stops it after the nadir" in sentence
            for sentence in found["explanations"]
        )


def test_a_wbc_above_100_and_lymphocytosis_are_flagged_even_after_g_csf() -> None:
    found = _gcsf_flags(_gcsf_case(100.01, 9.0, alc=6.0), _gcsf_events())
    assert found["flags"] == ("leukocytosis", "lymphocytosis")
    assert [note.split(" ")[0] for note in found["notes"]] == ["ANC"]
    assert _gcsf_flags(_gcsf_case(100.0, 9.0), _gcsf_events())["flags"] == ()


def test_g_csf_acts_in_its_cycle_or_within_the_forecast_s_window() -> None:
    # Filgrastim D2-D3 (ended 2026-11-22): its window closed on 2026-11-29, but it was given in this cycle.
    assert _gcsf_flags(_gcsf_case(12.0, 7.76), _gcsf_events(end_at="2026-11-22 10:00"))["flags"] == ()
    # Given after the count: not acting on it.
    late = _gcsf_flags(_gcsf_case(12.0, 7.76), _gcsf_events(gcsf_at="2026-12-01 12:00"))
    assert late["flags"] == ("leukocytosis", "neutrophilia")
    # No chemotherapy: G-CSF alone acts for 14 days after its start when no end is recorded.
    alone = _gcsf_events(gcsf_at="2026-11-17 10:00").iloc[[1]]
    assert _gcsf_flags(_gcsf_case(12.0, 7.76), alone)["flags"] == ("leukocytosis", "neutrophilia")
    alone = _gcsf_events(gcsf_at="2026-11-17 11:00").iloc[[1]]
    assert _gcsf_flags(_gcsf_case(12.0, 7.76), alone)["flags"] == ()


def test_a_high_flag_resting_on_a_preliminary_count_of_its_lineage_says_so() -> None:
    flagged = pd.DataFrame(
        {
            "flags": [["leukocytosis", "neutrophilia", "lymphocytosis"]],
            "explanations": [["WBC high", "ANC high", "ALC high"]],
        },
        index=[7],
    )
    marked = mark_preliminary(flagged, pd.Series([["anc"]], index=[7]))
    assert marked.loc[7, "explanations"] == [
        "WBC high",
        "ANC high (preliminary result; final awaited)",
        "ALC high",
    ]


# --- Triage: where a critical result and the high grades rank ------------------------------------------


def _patients(**columns) -> pd.DataFrame:
    base = {
        "latest_wbc_grade": [0] * 4,
        "latest_anc_grade": [0] * 4,
        "latest_alc_grade": [0] * 4,
        "latest_wbc_high_grade": [0] * 4,
        "latest_alc_high_grade": [0] * 4,
        "lab_critical": [False] * 4,
        "lab_critical_detail": [""] * 4,
        "flags": [[]] * 4,
        "last_collected_at": pd.to_datetime(["2026-11-01"] * 4, utc=True),
    }
    return pd.DataFrame({**base, **columns})


def test_a_critical_result_ranks_first_hyperleukocytosis_with_anc_grade_3_lymphocytosis_3_with_grade_3() -> (
    None
):
    patients = _patients(
        lab_critical=[True, False, False, False],
        lab_critical_detail=["WBC 105.6 x10^9/L flagged HH (critical high) by the lab", "", "", ""],
        latest_wbc_high_grade=[0, 3, 0, 0],
        latest_alc_high_grade=[0, 0, 3, 2],
        flags=[["leukocytosis"], ["leukocytosis"], ["lymphocytosis"], ["lymphocytosis"]],
    )
    tiers = priority(patients)
    assert tiers.tolist() == [1, 2, 4, 7]
    reasons = priority_reason(patients, tiers).tolist()
    assert (
        reasons[0] == "critical result from the lab: WBC 105.6 x10^9/L flagged HH (critical high) by the lab"
    )
    assert reasons[1] == "hyperleukocytosis: WBC (CTCAE Leukocytosis grade 3, leukostasis risk)"
    assert reasons[2] == "lymphocytosis: ALC (CTCAE Lymphocyte count increased grade 3)"
    assert reasons[3] == "lymphocytosis"


def test_within_tier_1_the_anc_grade_4_comes_before_a_critical_flag_and_the_flag_is_told_after_it() -> None:
    patients = _patients(
        latest_anc_grade=[0, 4, 4, 0],
        lab_critical=[True, True, False, False],
        lab_critical_detail=["ANC x", "ANC 0.2 x10^9/L flagged LL (critical low) by the lab", "", ""],
    )
    ordered = in_priority_order(patients, then="last_collected_at")
    assert ordered.index.tolist()[:3] == [1, 2, 0]
    assert ordered["tier"].tolist()[:3] == [1, 1, 1]
    reasons = priority_reason(patients)
    assert reasons[1] == (
        "ANC grade 4; critical result from the lab: ANC 0.2 x10^9/L flagged LL (critical low) by the lab"
    )


# --- The NIST sample through the real importer ----------------------------------------------------------


def _nist_and_others(store) -> None:
    import_path(store, DATA / "canonical-good.csv", options=OPTIONS)
    import_path(store, NIST, options=OPTIONS)


def test_the_nist_sample_is_flagged_graded_critical_and_first_on_the_worklist(store) -> None:
    _nist_and_others(store)
    listed = worklist(store, viewer=SYSTEM, timezone="UTC", now=NOW)
    first = listed.iloc[0]
    assert first["patient_id"] == "PATID1234"
    assert first["tier"] == 1
    assert first["flags"] == ["leukocytosis", "neutrophilia", "lymphocytosis"]
    assert (first["latest_wbc_high_grade"], first["latest_alc_high_grade"]) == (3, 3)
    assert pd.isna(first["latest_anc_high_grade"])  # no CTCAE term for a high neutrophil count
    assert bool(first["lab_critical"]) is True
    assert first["lab_critical_detail"].split("; ") == [
        "WBC 105.6 x10^9/L flagged HH (critical high) by the lab",
        "ANC 58.0 x10^9/L flagged HH (critical high) by the lab",
        "ALC 41.2 x10^9/L flagged HH (critical high) by the lab",
    ]
    assert first["priority_reason"].startswith("critical result from the lab: WBC 105.6 x10^9/L flagged HH")
    # The others keep their order below it.
    assert listed["patient_id"].tolist()[1:] == ["MRN1001", "MRN2002"]


def test_the_status_keeps_each_counts_lab_flag_upper_limit_high_grade_and_the_latest_hgb_and_plt(
    store,
) -> None:
    _nist_and_others(store)
    listed = patient_list(store, viewer=SYSTEM, timezone="UTC", now=NOW).set_index("patient_id")
    nist = listed.loc["PATID1234"]
    assert [nist[f"latest_{a}_lab_flag"] for a in ("wbc", "anc", "alc")] == ["HH", "HH", "HH"]
    assert [nist[f"latest_{a}_uln"] for a in ("wbc", "anc", "alc")] == [10.8, 7.0, 4.8]
    assert [nist[f"latest_{a}_range_source"] for a in ("wbc", "anc", "alc")] == ["reported"] * 3
    # 210,000 {cells}/uL is 210 x10^9/L, not low; the haemoglobin sent in g/mL was refused: none.
    assert (nist["latest_plt"], nist["latest_plt_grade"]) == (210.0, 0)
    assert pd.isna(nist["latest_hgb"]) and pd.isna(nist["latest_hgb_grade"])
    other = listed.loc["MRN1001"]
    assert (other["latest_hgb"], other["latest_hgb_grade"]) == (13.2, 0)
    assert pd.isna(other["latest_wbc_lab_flag"]) and bool(other["lab_critical"]) is False
    assert other["latest_wbc_uln"] == 11.0 and other["latest_wbc_high_grade"] == 0


def test_low_haemoglobin_and_platelets_are_graded_in_the_status(store, tmp_path: Path) -> None:
    feed = tmp_path / "low.csv"
    feed.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "P1,2026-11-01T08:00:00Z,hgb,9.0,g/dL,12.0,16.0,CENTRAL,A1,final\n"
        "P1,2026-11-01T08:00:00Z,plt,60,10^9/L,150,450,CENTRAL,A1,final\n"
        "P1,2026-11-02T08:00:00Z,hgb,7.9,g/dL,12.0,16.0,CENTRAL,A2,final\n"
        "P1,2026-11-02T08:00:00Z,plt,24,10^9/L,150,450,CENTRAL,A2,final\n"
        "P1,2026-11-02T08:00:00Z,wbc,5.0,10^9/L,4.0,11.0,CENTRAL,A2,final\n"
    )
    import_path(store, feed, options=OPTIONS)
    row = patient_list(store, viewer=SYSTEM, timezone="UTC", now=NOW).set_index("patient_id").loc["P1"]
    # CTCAE v5.0 Anemia grade 3 is < 8.0 g/dL; Platelet count decreased grade 4 is < 25.
    assert (row["latest_hgb"], row["latest_hgb_grade"], row["latest_plt"], row["latest_plt_grade"]) == (
        7.9,
        3,
        24.0,
        4,
    )


def test_a_critical_low_flag_on_the_latest_anc_makes_the_patient_critical_and_a_later_normal_count_clears_it(
    store, tmp_path: Path
) -> None:
    message = NIST.read_text()
    low = (
        message.replace("||58|10*3/uL", "||0.2|10*3/uL")
        .replace("1.5 to 7.0|HH", "1.5 to 7.0|LL")
        .replace("||105600|", "||1600|")
        .replace("4300 to 10800|HH", "4300 to 10800|L")
        .replace("||41.2|", "||1.2|")
        .replace("1.0 to 4.8|HH", "1.0 to 4.8|N")
    )
    feed = tmp_path / "low.hl7"
    feed.write_text(low)
    import_path(store, feed, options=OPTIONS)
    row = patient_list(store, viewer=SYSTEM, timezone="UTC", now=NOW).iloc[0]
    assert bool(row["lab_critical"]) is True
    assert row["lab_critical_detail"] == "ANC 0.2 x10^9/L flagged LL (critical low) by the lab"
    assert row["latest_anc_lab_flag"] == "LL" and row["latest_wbc_lab_flag"] == "L"
    later = low.replace("20110103143428", "20110110143428").replace("R-991133", "R-991134")
    later = later.replace("||0.2|10*3/uL", "||2.5|10*3/uL").replace("1.5 to 7.0|LL", "1.5 to 7.0|N")
    (tmp_path / "later.hl7").write_text(later)
    import_path(store, tmp_path / "later.hl7", options=OPTIONS)
    row = patient_list(store, viewer=SYSTEM, timezone="UTC", now=NOW).iloc[0]
    assert bool(row["lab_critical"]) is False and row["lab_critical_detail"] == ""


# --- What a clinician reads: the worklist and the patient page ------------------------------------------


@pytest.fixture
def nist_store(tmp_path: Path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    _nist_and_others(open_store(url, timezone="UTC"))
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def test_the_worklist_puts_the_nist_patient_first_with_hh_beside_its_counts(nist_store: str) -> None:
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value
    first = table.iloc[0]
    assert first["Patient ID"] == "PATID1234"
    assert first["Priority"] == 1
    assert first["Grade"] == 3  # Leukocytosis grade 3, not the "White blood cell decreased" grade 0
    assert (first["WBC (10^9/L)"], first["ANC (10^9/L)"]) == ("105.60 HH", "58.00 HH")
    assert list(first["Flags"]) == ["leukocytosis", "neutrophilia", "lymphocytosis"]
    assert first["Why"].startswith("critical result from the lab: WBC 105.6 x10^9/L flagged HH")


def test_the_patient_page_shows_hh_and_the_high_grade_beside_the_wbc_and_says_the_result_is_critical(
    nist_store: str,
) -> None:
    at = _app().run()
    at.switch_page("app_pages/patient.py").run()
    box = at.selectbox(key="patient_select")
    at = box.select_index(box.options.index(next(o for o in box.options if "PATID1234" in o))).run()
    assert not at.exception
    # The value with the lab's flag beside it; the high count and its CTCAE grade under it (red, ↑).
    metrics = {m.label: (m.value, m.delta) for m in at.metric}
    assert metrics["Latest WBC (10^9/L)"] == ("105.60 HH", "leukocytosis G3")
    assert metrics["Latest ANC (10^9/L)"] == ("58.00 HH", "neutrophilia")
    assert metrics["Latest ALC (10^9/L)"] == ("41.20 HH", "lymphocytosis G3")
    assert any("Critical result from the lab" in error.value for error in at.error)
    flags = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert flags[0].startswith("- **leukocytosis**: WBC 105.6 x10^9/L above 10.8")
    sheet = at.dataframe[0].value
    assert sheet.filter(like="WBC").iloc[0, 0] == "105.6 HH ↑"


# --- The migration -----------------------------------------------------------------------------------------

NEW_COLUMNS = {
    *(f"latest_{a}_{field}" for a in ("wbc", "anc", "alc") for field in ("uln", "high_grade", "lab_flag")),
    "latest_hgb",
    "latest_hgb_grade",
    "latest_plt",
    "latest_plt_grade",
    "lab_critical",
    "lab_critical_detail",
}


def test_0021_adds_the_high_count_columns_and_takes_them_away_again(engine: Engine) -> None:
    upgrade(engine, timezone="UTC")
    columns = {column["name"] for column in inspect(engine).get_columns("patient_status")}
    assert NEW_COLUMNS <= columns
    downgrade(engine, "0020_nadir_forecast")
    inspect_again = inspect(engine)
    assert not NEW_COLUMNS & {column["name"] for column in inspect_again.get_columns("patient_status")}
    upgrade(engine, timezone="UTC")
    assert current_revision(engine) == head_revision()


def test_an_upgrade_through_0021_fills_the_new_columns_of_a_store_with_data(store, engine: Engine) -> None:
    import_path(store, NIST, options=OPTIONS)
    downgrade(engine, "0020_nadir_forecast")
    upgrade(engine, timezone="UTC")
    row = patient_list(store, viewer=SYSTEM, timezone="UTC", now=NOW).iloc[0]
    assert (row["latest_wbc_lab_flag"], row["latest_wbc_high_grade"], bool(row["lab_critical"])) == (
        "HH",
        3,
        True,
    )


# --- The command line -------------------------------------------------------------------------------------


def test_the_command_line_imports_the_nist_sample_and_lists_it_first_with_hh_and_the_high_grade(
    tmp_path: Path,
) -> None:
    from tests.test_cli import monitor

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    assert monitor("db", "upgrade", url=url).returncode == 0
    assert monitor("import", str(DATA / "canonical-good.csv"), url=url).returncode == 0
    # (exit 1: the sample's haemoglobin in g/mL is refused, the rest imported)
    assert monitor("import", str(NIST), url=url).returncode == 1
    listed = monitor("patients", url=url)
    assert listed.returncode == 0, listed.stderr
    first = listed.stdout.splitlines()[1]
    assert first.startswith("PATID1234")
    assert "105.6 HH ↑G3" in first and "58 HH ↑" in first and "41.2 HH ↑G3" in first
    rows = json.loads(monitor("patients", "--format", "json", url=url).stdout)
    nist = next(row for row in rows if row["patient_id"] == "PATID1234")
    assert (nist["priority"], nist["lab_critical"], nist["latest_wbc_lab_flag"]) == (1, True, "HH")
