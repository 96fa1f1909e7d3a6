"""The worklist's order by clinical risk, the same on the worklist, ``patients`` and ``alerts``, over a
store holding the haematologist's review cases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import select

from db.accounts import Viewer
from db.models import Patient, PatientStatus
from db.session import make_engine, make_session_factory
from db.store import open_store
from monitor.analysis.triage import headline
from services.worklist import worklist
from tests.test_cli import monitor
from tests.test_dashboard import _app

# A: ANC 0.4 (grade 4) with a normal WBC; B: ALC 0.4 (grade 3) alone; C: ANC 0.8 (grade 3); D: WBC 1.8
# (grade 3) alone; E: ANC 3.0 -> 1.2 (newly below its limit, grade 2) with a normal WBC; F: WBC below its
# limit for 19 days (grade 1).
RESULTS = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
A,2026-05-20T08:00:00Z,wbc,4.2,10^9/L,4.0,11.0,CITY,A1,final
A,2026-05-20T08:00:00Z,anc,0.4,10^9/L,1.5,7.7,CITY,A1,final
B,2026-05-20T08:00:00Z,wbc,4.4,10^9/L,4.0,11.0,CITY,B1,final
B,2026-05-20T08:00:00Z,anc,2.5,10^9/L,1.5,7.7,CITY,B1,final
B,2026-05-20T08:00:00Z,alc,0.4,10^9/L,1.0,4.8,CITY,B1,final
C,2026-05-20T08:00:00Z,wbc,2.6,10^9/L,4.0,11.0,CITY,C1,final
C,2026-05-20T08:00:00Z,anc,0.8,10^9/L,1.5,7.7,CITY,C1,final
D,2026-05-20T08:00:00Z,wbc,1.8,10^9/L,4.0,11.0,CITY,D1,final
D,2026-05-20T08:00:00Z,anc,1.6,10^9/L,1.5,7.7,CITY,D1,final
E,2026-05-01T08:00:00Z,wbc,5.0,10^9/L,4.0,11.0,CITY,E1,final
E,2026-05-01T08:00:00Z,anc,3.0,10^9/L,1.5,7.7,CITY,E1,final
E,2026-05-20T08:00:00Z,wbc,4.5,10^9/L,4.0,11.0,CITY,E2,final
E,2026-05-20T08:00:00Z,anc,1.2,10^9/L,1.5,7.7,CITY,E2,final
F,2026-05-01T08:00:00Z,wbc,3.7,10^9/L,4.0,11.0,CITY,F1,final
F,2026-05-01T08:00:00Z,anc,2.0,10^9/L,1.5,7.7,CITY,F1,final
F,2026-05-20T08:00:00Z,wbc,3.6,10^9/L,4.0,11.0,CITY,F2,final
F,2026-05-20T08:00:00Z,anc,2.0,10^9/L,1.5,7.7,CITY,F2,final
"""
# The counts are older than a week whenever the tests run: each reason dates its count.
ORDER = [
    ("A", 1, "ANC grade 4 (0.4 x10^9/L on 2026-05-20)"),
    ("C", 2, "ANC grade 3 (0.8 x10^9/L on 2026-05-20)"),
    ("E", 3, "new neutropenia: ANC grade 2 (1.2 x10^9/L on 2026-05-20)"),
    ("D", 4, "WBC grade 3 (1.8 x10^9/L on 2026-05-20)"),
    ("B", 4, "ALC grade 3 (0.4 x10^9/L on 2026-05-20)"),
    ("F", 6, "persistent leukopenia"),
]


def _import_review_cases(url: str, folder: Path) -> None:
    assert monitor("db", "upgrade", url=url).returncode == 0
    (folder / "results.csv").write_text(RESULTS)
    done = monitor("import", str(folder / "results.csv"), url=url)
    assert done.returncode == 0, done.stderr
    # E's ANC fell below its limit with a normal WBC: the lineage flag ``anc_new_onset`` says so
    # (monitor/analysis/flags.py), materialised by the import's recompute, not given here.
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            status = session.scalars(
                select(PatientStatus)
                .join(Patient, Patient.id == PatientStatus.patient_id)
                .where(Patient.mrn == "E")
            ).one()
            assert "anc_new_onset" in status.flags
    finally:
        engine.dispose()


@pytest.fixture
def review_store(store_copy) -> str:
    return store_copy("review-cases", _import_review_cases)


def test_patients_json_lists_the_review_cases_in_worklist_order_with_priority_and_reason(
    review_store: str,
) -> None:
    listed = monitor("patients", "--format", "json", url=review_store)
    assert listed.returncode == 0, listed.stderr
    found = [(p["patient_id"], p["priority"], p["priority_reason"]) for p in json.loads(listed.stdout)]
    assert found == ORDER


def test_the_patients_table_is_in_the_same_order_and_says_why(review_store: str) -> None:
    lines = monitor("patients", url=review_store).stdout.splitlines()
    assert lines[0].split()[:3] == ["patient_id", "name", "priority"]
    assert [line.split()[0] for line in lines[1:]] == [name for name, _, _ in ORDER]
    assert "new neutropenia: ANC grade 2 (1.2 x10^9/L on 2026-05-20)" in lines[3]


def test_the_patients_table_fits_a_terminal_and_wide_prints_every_column(review_store: str) -> None:
    from cli.views import PATIENT_COLUMNS

    compact = monitor("patients", url=review_store)
    assert compact.returncode == 0, compact.stderr
    lines = compact.stdout.splitlines()
    assert max(map(len, lines)) <= 200  # was thousands of characters: every column, sentences in full
    assert lines[0].split() == [
        *("patient_id", "name", "priority", "wbc", "anc", "alc"),
        *("last_cbc", "days", "cycle", "flags", "priority_reason"),
    ]
    assert all(re.search(r" G[0-4] ", line) for line in lines[1:])  # the latest counts with their grade

    wide = monitor("patients", "--wide", url=review_store)
    assert wide.returncode == 0, wide.stderr
    assert wide.stdout.splitlines()[0].split() == PATIENT_COLUMNS
    assert len(wide.stdout.splitlines()) == len(lines)
    # csv and json are for programs: every column whatever --wide says
    listed = json.loads(monitor("patients", "--format", "json", url=review_store).stdout)
    assert list(listed[0]) == PATIENT_COLUMNS
    assert monitor("patients", "--format", "csv", url=review_store).stdout.splitlines()[0].split(",") == (
        PATIENT_COLUMNS
    )


def test_alerts_come_in_the_worklists_order(review_store: str) -> None:
    found = json.loads(
        monitor("alerts", "--since", "2000-01-01", "--format", "json", url=review_store).stdout
    )
    assert [alert["patient_id"] for alert in found] == [name for name, _, _ in ORDER]
    text = monitor("alerts", "--since", "2000-01-01", url=review_store).stdout
    blocks = [line.split()[0] for line in text.splitlines() if not line.startswith(" ")]
    assert blocks == [name for name, _, _ in ORDER]


def test_the_worklist_service_and_page_show_the_same_order(review_store: str, monkeypatch) -> None:
    now = datetime(2026, 5, 21, 9, 0, tzinfo=UTC)
    store = open_store(review_store, timezone="UTC")
    listed = worklist(store, viewer=Viewer("admin", "admin", None), timezone="UTC", now=now)
    # The day after the counts, they are not dated; today (the page) they are.
    undated = [(name, tier, reason.replace(" on 2026-05-20", "")) for name, tier, reason in ORDER]
    assert list(zip(listed["patient_id"], listed["tier"], listed["priority_reason"], strict=True)) == undated
    monkeypatch.setenv("MONITOR_DATABASE_URL", review_store)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value
    # On screen the reason is followed by a CBC due where one is (a grade 3-4 count a day old here).
    reasons = [why.removesuffix(" · CBC due") for why in table["Why"]]
    assert list(zip(table["Patient ID"], table["Priority"], reasons, strict=True)) == ORDER
    metrics = {m.label: m.value for m in at.metric}
    # A, C and E each had an ANC above its limit before this one: all three are new neutropenia.
    assert (metrics["Urgent (priority 1-2)"], metrics["New or worsening neutropenia"]) == ("2", "3")
    st.cache_data.clear()
    st.cache_resource.clear()


def test_febrile_neutropenia_in_the_current_cycle_ranks_first_in_patients_and_the_headline(
    tmp_path: Path,
) -> None:
    # FN: chemotherapy 8 days ago, a fever of 38.9 C yesterday with ANC 0.8 the same day (grade 3);
    # G4: ANC 0.3 (grade 4) without a fever. The cycle table says FN; the worklist must rank it tier 1.
    # OLD: febrile neutropenia in a cycle that ended weeks ago, ANC 0.8 now: ranked by its ANC (tier 2).
    url = f"sqlite:///{tmp_path / 'fn.db'}"
    assert monitor("db", "upgrade", url=url).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)
    dosed, febrile = now - timedelta(days=8), now - timedelta(days=1)
    long_ago = now - timedelta(days=60)

    def at(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    before = [
        f"FN,{at(dosed)},wbc,5.0,10^9/L,4.0,11.0,CITY,FN1,final",
        f"FN,{at(dosed)},anc,3.0,10^9/L,1.5,7.7,CITY,FN1,final",
        f"OLD,{at(long_ago)},anc,3.0,10^9/L,1.5,7.7,CITY,OLD1,final",
        f"OLD,{at(long_ago + timedelta(days=8))},anc,0.8,10^9/L,1.5,7.7,CITY,OLD2,final",
    ]
    after = [
        f"FN,{at(febrile)},wbc,1.9,10^9/L,4.0,11.0,CITY,FN2,final",
        f"FN,{at(febrile)},anc,0.8,10^9/L,1.5,7.7,CITY,FN2,final",
        f"G4,{at(febrile)},wbc,3.0,10^9/L,4.0,11.0,CITY,G41,final",
        f"G4,{at(febrile)},anc,0.3,10^9/L,1.5,7.7,CITY,G41,final",
        f"OLD,{at(febrile)},anc,0.8,10^9/L,1.5,7.7,CITY,OLD3,final",
    ]
    events = (
        "patient_id,kind,start,end,label\n"
        f"FN,chemotherapy,{at(dosed - timedelta(hours=1))},,paclitaxel\n"
        f"FN,fever,{at(febrile + timedelta(hours=2))},,fever 38.9 C\n"
        f"OLD,chemotherapy,{at(long_ago - timedelta(hours=1))},,paclitaxel\n"
        f"OLD,fever,{at(long_ago + timedelta(days=8, hours=2))},,fever 39.1 C\n"
    )
    # The patient is stored first (events name stored patients); the counts that follow recompute it.
    for name, text, options in (
        ("before.csv", header + "\n".join(before) + "\n", ()),
        ("events.csv", events, ("--format", "events")),
        ("after.csv", header + "\n".join(after) + "\n", ()),
    ):
        (tmp_path / name).write_text(text)
        done = monitor("import", str(tmp_path / name), *options, url=url)
        assert done.returncode == 0, done.stderr
    listed = json.loads(monitor("patients", "--format", "json", url=url).stdout)
    found = {p["patient_id"]: p for p in listed}
    assert [p["patient_id"] for p in listed] == ["FN", "G4", "OLD"]  # febrile neutropenia first in tier 1
    assert found["FN"]["febrile_neutropenia"] is True and found["G4"]["febrile_neutropenia"] is None
    # OLD's episode ended (ANC >= 0.5 and no fever for 24 h): judged, not febrile now.
    assert found["OLD"]["febrile_neutropenia"] is False and found["OLD"]["priority"] == 2
    assert found["FN"]["priority"] == 1
    assert found["FN"]["priority_reason"].startswith("febrile neutropenia (ANC 0.80 at ")
    assert "fever 38.9 °C at " in found["FN"]["priority_reason"]
    store = open_store(url, timezone="UTC")
    ordered = worklist(store, viewer=Viewer("admin", "admin", None), timezone="UTC", now=now)
    assert headline(ordered)["Urgent (priority 1-2)"] == 3
