"""The analysis contract of the command line: patients' grades and flags, cycles, recompute, settings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.test_cli import monitor

# One oncology patient over two 21-day cycles and a third started; one patient low for 19 days; one
# patient of unknown age whose lab sends no ranges (judged against the lowest default of any age).
RESULTS = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
ONC-1,2026-03-02T08:00:00Z,wbc,6.1,10^9/L,4.0,11.0,CITY,A1,final
ONC-1,2026-03-02T08:00:00Z,anc,4.0,10^9/L,1.8,7.7,CITY,A1,final
ONC-1,2026-03-02T08:00:00Z,plt,250,10^9/L,150,450,CITY,A1,final
ONC-1,2026-03-12T08:00:00Z,wbc,1.8,10^9/L,4.0,11.0,CITY,A2,final
ONC-1,2026-03-12T08:00:00Z,anc,0.4,10^9/L,1.8,7.7,CITY,A2,final
ONC-1,2026-03-12T08:00:00Z,alc,0.6,10^9/L,1.0,4.8,CITY,A2,final
ONC-1,2026-03-12T08:00:00Z,hgb,9.5,g/dL,12.0,16.0,CITY,A2,final
ONC-1,2026-03-12T08:00:00Z,plt,90,10^9/L,150,450,CITY,A2,final
ONC-1,2026-03-21T08:00:00Z,anc,1.9,10^9/L,1.8,7.7,CITY,A3,final
ONC-1,2026-03-21T08:00:00Z,plt,160,10^9/L,150,450,CITY,A3,final
ONC-1,2026-04-01T08:00:00Z,anc,0.8,10^9/L,1.8,7.7,CITY,A4,final
ONC-1,2026-04-11T08:00:00Z,anc,1.2,10^9/L,1.8,7.7,CITY,A5,final
ONC-1,2026-04-11T08:00:00Z,plt,120,10^9/L,150,450,CITY,A5,final
PER-1,2026-05-01T08:00:00Z,wbc,3.7,10^9/L,4.0,11.0,CITY,C1,final
PER-1,2026-05-20T08:00:00Z,wbc,3.6,10^9/L,4.0,11.0,CITY,C2,final
RNG-1,2026-05-01T08:00:00Z,wbc,3.7,10^9/L,,,NORANGE,B1,final
RNG-1,2026-05-20T08:00:00Z,wbc,3.6,10^9/L,,,NORANGE,B2,final
"""
EVENTS = """patient_id,kind,start,end,label,details
ONC-1,chemotherapy,2026-03-02T10:00:00Z,,"Docetaxel, cycle 1",docetaxel q21d
ONC-1,gcsf,2026-03-03T10:00:00Z,,Pegfilgrastim 6 mg,
ONC-1,chemotherapy,2026-03-23T10:00:00Z,,"Docetaxel, cycle 2",docetaxel q21d
ONC-1,chemotherapy,2026-04-13T10:00:00Z,,"Docetaxel, cycle 3",docetaxel q21d
"""


def _upgrade_and_import(url: str, folder: Path) -> None:
    assert monitor("db", "upgrade", url=url).returncode == 0
    (folder / "results.csv").write_text(RESULTS)
    (folder / "events.csv").write_text(EVENTS)
    for name in ("results.csv", "events.csv"):
        done = monitor("import", str(folder / name), url=url)
        assert done.returncode == 0, done.stderr


@pytest.fixture
def store(store_copy) -> str:
    """A copy of a store the command line upgraded and imported RESULTS and EVENTS into (once per run)."""
    return store_copy("cli-analysis", _upgrade_and_import)


def patients(url: str) -> dict[str, dict]:
    listed = monitor("patients", "--format", "json", url=url)
    assert listed.returncode == 0, listed.stderr
    return {p["patient_id"]: p for p in json.loads(listed.stdout)}


def test_patients_json_carries_grades_flags_pattern_and_explanations(store: str) -> None:
    onc = patients(store)["ONC-1"]
    # Latest WBC 1.8 (grade 3), latest ANC 1.2 (grade 2), latest ALC 0.6 (grade 2), all integers.
    assert (onc["wbc_grade"], onc["anc_grade"], onc["alc_grade"]) == (3, 2, 2)
    assert onc["flags"][:3] == ["leukopenia", "neutropenia", "lymphopenia"]
    assert set(onc["explanations"]) == set(onc["flags"])
    assert onc["explanations"]["leukopenia"] == "WBC 1.8 below 4.0 (CTCAE grade 3)"
    # The latest panel with a WBC (12 March): white cells, haemoglobin and platelets all low.
    assert onc["pattern"] == "pancytopenia"
    assert onc["pattern_detail"] == (
        "WBC 1.8 < 4, ANC 0.4 < 1.8, ALC 0.6 < 1, Hb 9.5 < 12 (grade 2), platelets 90 < 150 (grade 1)"
    )


def test_cycles_json_contract(store: str) -> None:
    listed = monitor("cycles", "ONC-1", "--format", "json", url=store)
    assert listed.returncode == 0, listed.stderr
    cycles = json.loads(listed.stdout)
    assert [c["cycle"] for c in cycles] == [1, 2, 3]
    first, second, third = cycles
    assert first["start"] == "2026-03-02T10:00:00Z"
    # ANC 0.4 on 12 March 08:00, 9 days 22 hours after the start at 10:00 on 2 March: calendar day 10 (D11).
    assert (first["nadir_anc"], first["nadir_day"], first["nadir_anc_grade"]) == (0.4, 10, 4)
    assert (first["nadir_wbc"], first["recovery_day"], first["gcsf"]) == (1.8, 19, True)  # 21 March: D20
    # Readiness for cycle 2 (23 March): ANC 1.9 and platelets 160 on 21 March, within 3 days.
    assert first["ready_at_next"] is True
    assert (second["nadir_anc"], second["gcsf"], second["recovery_day"]) == (0.8, False, None)
    # Readiness for cycle 3 (13 April): ANC 1.2 on 11 April is below 1.5.
    assert second["ready_at_next"] is False and "ANC 1.2" in second["readiness"]
    assert third["ready_at_next"] is None and third["nadir_anc"] is None


# Two docetaxel cycles with G-CSF, doses at 10:00; each pre-treatment count is drawn at 08:00 that morning.
PRE_DOSE_RESULTS = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
ONC-2,2026-03-02T08:00:00Z,anc,2.0,10^9/L,1.8,7.7,CITY,P1,final
ONC-2,2026-03-10T08:00:00Z,anc,3.5,10^9/L,1.8,7.7,CITY,P2,final
ONC-2,2026-03-23T08:00:00Z,anc,2.4,10^9/L,1.8,7.7,CITY,P3,final
ONC-2,2026-03-23T08:00:00Z,plt,210,10^9/L,150,450,CITY,P3,final
ONC-2,2026-03-30T08:00:00Z,anc,0.6,10^9/L,1.8,7.7,CITY,P4,final
ONC-2,2026-04-13T08:00:00Z,anc,1.7,10^9/L,1.8,7.7,CITY,P5,final
ONC-2,2026-04-13T08:00:00Z,plt,190,10^9/L,150,450,CITY,P5,final
"""
PRE_DOSE_EVENTS = """patient_id,kind,start,end,label,details
ONC-2,chemotherapy,2026-03-02T10:00:00Z,,"Docetaxel, cycle 1",docetaxel q21d
ONC-2,gcsf,2026-03-03T10:00:00Z,,Pegfilgrastim 6 mg,
ONC-2,chemotherapy,2026-03-23T10:00:00Z,,"Docetaxel, cycle 2",docetaxel q21d
ONC-2,chemotherapy,2026-04-13T10:00:00Z,,"Docetaxel, cycle 3",docetaxel q21d
"""


def test_the_pre_dose_count_closes_its_cycle_and_no_nadir_is_the_pre_treatment_count(
    store: str, tmp_path: Path
) -> None:
    for name, text in (("results.csv", PRE_DOSE_RESULTS), ("events.csv", PRE_DOSE_EVENTS)):
        (tmp_path / name).write_text(text)
        done = monitor("import", str(tmp_path / name), url=store)
        assert done.returncode == 0, done.stderr
    listed = monitor("cycles", "ONC-2", "--format", "json", url=store)
    assert listed.returncode == 0, listed.stderr
    first, second, third = json.loads(listed.stdout)
    # Cycle 1 with G-CSF: the nadir is ANC 3.5 on 10 March (D9), not the 2.0 drawn before the dose.
    assert (first["nadir_anc"], first["nadir_day"], first["recovery_day"]) == (3.5, 8, None)
    # Cycle 2: ANC 0.6 on 30 March (D8, grade 3), then 1.7 at 08:00 on 13 April before cycle 3's dose:
    # recovered by that morning (D22), at grade 3+ at most until then, and ready for cycle 3.
    assert (second["nadir_anc"], second["nadir_day"]) == (0.6, 7)
    assert (second["recovery_after_day"], second["recovery_day"]) == (7, 21)
    # (at grade 3+ on D8 for certain, at most on the days strictly between the dose and that morning: 20)
    assert (second["days_grade3_plus_min"], second["days_grade3_plus_max"]) == (1, 20)
    assert second["ready_anc"] == 1.7 and second["ready_at_next"] is True
    # Cycle 3 has only its pre-treatment count: its nadir was not sampled.
    assert third["nadir_anc"] is None and third["nadir_sampled"] is False
    shown = monitor("cycles", "ONC-2", url=store)
    assert shown.returncode == 0 and "after D8, by D22" in shown.stdout and "not sampled" in shown.stdout


def test_cycles_table_states_the_trend_and_unknown_patients_exit_2(store: str) -> None:
    shown = monitor("cycles", "ONC-1", url=store)
    assert shown.returncode == 0 and "ready at next" in shown.stdout
    missing = monitor("cycles", "NOBODY", url=store)
    assert missing.returncode == 2 and "no patient" in missing.stderr
    untreated = monitor("cycles", "PER-1", url=store)  # no chemotherapy: no cycles (was an internal error)
    assert untreated.returncode == 0 and untreated.stdout.strip() == "(none)", untreated.stderr


def test_a_changed_rule_recomputes_the_status(store: str) -> None:
    # PER-1's WBC 3.7 -> 3.6 over 19 days: persistent under the default 14 days, not under 21.
    assert "persistent" in patients(store)["PER-1"]["flags"]
    changed = monitor("settings", "set", "flags.persistent_min_days", "21", url=store)
    assert changed.returncode == 0, changed.stderr
    assert "persistent" not in patients(store)["PER-1"]["flags"]
    shown = json.loads(monitor("settings", "show", "--format", "json", url=store).stdout)
    row = next(r for r in shown if r["key"] == "flags.persistent_min_days")
    assert (row["value"], row["default"], row["changed"]) == (21, 14, True)
    # In words too: the rule at its value, its unit, and where the default comes from.
    assert row["setting"].startswith("A run below the limit is persistent when its results span at least 21 ")
    assert (row["unit"], row["section"]) == ("calendar days", "Calendar days")
    assert row["citation"].startswith("product default, pending clinical sign-off")
    chronic = next(r for r in shown if r["key"] == "flags.chronic_min_days")["citation"]
    assert chronic.startswith("Dale DC, Bolyard AA.") and "2017" in chronic and "https://" in chronic
    table = monitor("settings", "show", url=store).stdout
    assert "results span at least 21 calendar days" in table
    restored = monitor("settings", "set", "flags.persistent_min_days", "default", url=store)
    assert restored.returncode == 0
    assert "persistent" in patients(store)["PER-1"]["flags"]
    refused = monitor("settings", "set", "flags.persistent_min_days", "2.5", url=store)
    assert refused.returncode == 2 and "whole number" in refused.stderr


def test_a_lab_range_applies_when_the_result_has_none(store: str) -> None:
    before = patients(store)["RNG-1"]
    # Age unknown, no range sent: the lowest default of any age (WBC 4.0, the adult one; Davis's
    # paediatric limits are all higher), so WBC 3.6 is low whatever the patient's age.
    assert (before["latest_wbc_range_source"], before["latest_wbc_lln"]) == ("default any age", 4.0)
    assert before["flags"] == ["leukopenia", "persistent"]
    # Without an age band a lab range is an adult one: it cannot apply to a patient of unknown age.
    adult = monitor("lab-ranges", "set", "NORANGE", "wbc", "3.8", "10.5", url=store)
    assert adult.returncode == 0 and "adults" in adult.stdout
    assert patients(store)["RNG-1"]["latest_wbc_range_source"] == "default any age"
    every_age = ("--min-months", "0", "--source", "NORANGE handbook 2026")
    assert (
        monitor("lab-ranges", "set", "NORANGE", "wbc", "3.8", "10.5", *every_age, url=store).returncode == 0
    )
    after = patients(store)["RNG-1"]
    assert after["latest_wbc_range_source"] == "lab" and after["latest_wbc_lln"] == 3.8
    assert after["flags"] == ["leukopenia", "persistent"]
    listed = json.loads(monitor("lab-ranges", "list", "--format", "json", url=store).stdout)
    assert [(r["lab"], r["low"], r["min_months"]) for r in listed] == [
        ("NORANGE", 3.8, None),
        ("NORANGE", 3.8, 0),
    ]
    # A reported range still wins over the lab's configured one (docs/clinical-basis.md, Which range applies).
    assert monitor("lab-ranges", "set", "CITY", "wbc", "1.0", "10.0", url=store).returncode == 0
    assert patients(store)["ONC-1"]["latest_wbc_range_source"] == "reported"
    bad = monitor("lab-ranges", "set", "NORANGE", "wbc", "5", "3", url=store)
    assert bad.returncode == 2 and "low <= high" in bad.stderr


def test_recompute_rebuilds_every_status(store: str) -> None:
    done = monitor("recompute", url=store)
    assert done.returncode == 0 and "recomputed the status of 3 patients" in done.stdout


def test_alerts_list_new_and_worsened_flags_since_a_time_most_severe_first(
    store: str, tmp_path: Path
) -> None:
    everything = json.loads(monitor("alerts", "--format", "json", url=store).stdout)
    # ONC-1 (WBC grade 3) before PER-1 and RNG-1 (grade 1; RNG-1's lab sends no range and its age is
    # unknown: WBC 3.6 is below 4.0, the lowest default limit of any age).
    assert [a["patient_id"] for a in everything] == ["ONC-1", "PER-1", "RNG-1"]
    assert "ANC CTCAE grade 2 (first assessment)" in everything[0]["changes"]
    time.sleep(1.1)  # the next import is noticed after ``since``
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert monitor("alerts", "--since", since, url=store).stdout.startswith("no new or worsened flags")
    later = tmp_path / "later.csv"
    later.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "PER-1,2026-05-27T08:00:00Z,wbc,2.5,10^9/L,4.0,11.0,CITY,C3,final\n"
    )
    assert monitor("import", str(later), url=store).returncode == 0
    recent = json.loads(monitor("alerts", "--since", since, "--format", "json", url=store).stdout)
    assert [a["patient_id"] for a in recent] == ["PER-1"]
    assert recent[0]["grade"] == 2
    assert "WBC CTCAE grade 1 -> 2" in recent[0]["changes"]
    assert any(
        c.startswith("WBC worsening appeared: WBC worsening: fell")
        and "into CTCAE grade 2 (was grade 1)" in c
        for c in recent[0]["changes"]
    )
    text = monitor("alerts", "--since", since, url=store).stdout
    # PER-1 was sent without a name: none is printed (never "nan").
    assert text.splitlines()[0].startswith("PER-1  (grade 2;") and "  - WBC CTCAE grade 1 -> 2" in text
