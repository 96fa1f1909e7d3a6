"""Results that change: a preliminary result marks every grade, flag and chart
point that rests on it, its final version is a change of its own, and a correction that takes a flag
back is an alert, not a silent disappearance. Built through the real importer, on both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import select

from db.accounts import SYSTEM
from db.models import StatusChange
from monitor.analysis.alerts import current_alerts
from monitor.analysis.changes import status_changes
from services.imports import import_content
from services.worklist import alerts, patient_list, worklist
from tests.test_cli import monitor
from tests.test_import import BY_TEST
from ui.worklist import worklist_table

# One patient, one CBC panel (accession ACC-1) drawn on 2 March 2026: the lab sends the WBC first as a
# preliminary result, then its final or corrected version, or a new count on 5 March.
MSH = "MSH|^~\\&|LIS|CITY LAB|EHR|WARD|{sent}||ORU^R01|{control}|P|2.5.1"
PID = "PID|1||{patient}^^^CITYHOSP^MR||Doe^Jane||19600101|F"
OBR = "OBR|1||{accession}|57021-8^CBC^LN|||{drawn}"
WBC = "OBX|1|NM|6690-2^Leukocytes^LN||{value}|10*3/uL|4.0-11.0|{flag}|||{status}"


def _message(
    control: str,
    value: float,
    status: str,
    *,
    accession: str = "ACC-1",
    drawn: str = "202603020800",
    patient: str = "P15",
) -> bytes:
    flag = "L" if value < 4.0 else "N"
    segments = [
        MSH.format(sent=drawn + "00", control=control),
        PID.format(patient=patient),
        OBR.format(accession=accession, drawn=drawn),
        WBC.format(value=value, flag=flag, status=status),
    ]
    return ("\r".join(segments) + "\r").encode()


def _import(store, name: str, data: bytes, now: datetime) -> None:
    summary = import_content(store, name, data, options=BY_TEST, now=now)
    assert summary.exit_code == 0, summary.rejected


def _patient(store, now: datetime) -> pd.Series:
    listed = patient_list(store, viewer=SYSTEM, timezone="UTC", now=now)
    return listed.set_index("patient_id").loc["P15"]


def _alerts(store, since: datetime, now: datetime) -> list[str]:
    found = alerts(store, viewer=SYSTEM, since=since, timezone="UTC", now=now)
    return [sentence for listed in found["changes"] for sentence in listed]


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def test_a_preliminary_wbc_flags_leukopenia_marked_preliminary_and_its_final_is_a_change(store) -> None:
    _import(store, "p.hl7", _message("M1", 2.1, "P"), T0)
    patient = _patient(store, T0)
    assert patient["latest_wbc"] == 2.1 and patient["latest_wbc_grade"] == 2
    assert patient["latest_wbc_status"] == "preliminary" and patient["preliminary"] == ["wbc"]
    sentence = dict(zip(patient["flags"], patient["explanations"], strict=True))["leukopenia"]
    assert sentence.endswith(" (preliminary result; final awaited)")

    _import(store, "f.hl7", _message("M2", 2.0, "F"), T1)
    patient = _patient(store, T1)
    assert patient["latest_wbc_status"] == "final" and patient["preliminary"] == []
    sentence = dict(zip(patient["flags"], patient["explanations"], strict=True))["leukopenia"]
    assert "preliminary" not in sentence
    assert "WBC 2.1 preliminary -> 2.0 final on 2026-03-03; grade unchanged" in _alerts(
        store, T1 - timedelta(minutes=1), T1
    )


def test_a_final_that_changes_the_grade_says_so(store) -> None:
    _import(store, "p.hl7", _message("M1", 2.1, "P"), T0)
    _import(store, "f.hl7", _message("M2", 1.9, "F"), T1)
    said = _alerts(store, T1 - timedelta(minutes=1), T1)
    assert "WBC 2.1 preliminary -> 1.9 final on 2026-03-03; grade changed 2 -> 3" in said
    assert "WBC CTCAE grade 2 -> 3" in said


def test_a_correction_that_clears_leukopenia_is_an_alert_that_it_was_withdrawn(store) -> None:
    _import(store, "f.hl7", _message("M1", 2.5, "F"), T0)
    assert "leukopenia" in _patient(store, T0)["flags"]
    _import(store, "c.hl7", _message("M2", 5.0, "C"), T1)
    assert "leukopenia" not in _patient(store, T1)["flags"]
    # Every flag that rested on the corrected count is withdrawn, each in its own words.
    assert sorted(_alerts(store, T1 - timedelta(minutes=1), T1)) == [
        "WBC new onset withdrawn: WBC 2.5 corrected to 5.0 by the lab on 2026-03-03",
        "leukopenia withdrawn: WBC 2.5 corrected to 5.0 by the lab on 2026-03-03",
    ]


def test_only_the_correction_withdraws_a_new_normal_count_is_an_ordinary_clearing(store) -> None:
    # P15's low WBC is corrected by the lab; P16's low WBC is followed by a new, normal count.
    first = _message("M1", 2.5, "F") + _message("M2", 2.5, "F", accession="ACC-9", patient="P16")
    _import(store, "f.hl7", first, T0)
    later = _message("M3", 5.0, "C") + _message(
        "M4", 5.0, "F", accession="ACC-10", drawn="202603030800", patient="P16"
    )
    _import(store, "later.hl7", later, T1)
    listed = patient_list(store, viewer=SYSTEM, timezone="UTC", now=T1).set_index("patient_id")
    assert listed.loc["P15", "flags"] == [] and listed.loc["P16", "flags"] == []
    found = alerts(store, viewer=SYSTEM, since=T1 - timedelta(minutes=1), timezone="UTC", now=T1)
    assert found["patient_id"].tolist() == ["P15"]
    with store() as session:
        kinds = session.execute(
            select(StatusChange.patient_id, StatusChange.change, StatusChange.flag).where(
                StatusChange.flag == "leukopenia", StatusChange.change != "appeared"
            )
        ).all()
    keys = listed["patient_key"]
    assert sorted(kinds) == sorted(
        [(keys["P15"], "withdrawn", "leukopenia"), (keys["P16"], "cleared", "leukopenia")]
    )


def test_the_command_line_marks_the_preliminary_result_and_lists_the_withdrawal(store, db_url: str) -> None:
    _import(store, "p.hl7", _message("M1", 2.5, "P"), T0)
    listed = monitor("patients", "--format", "json", url=db_url)
    assert listed.returncode == 0, listed.stderr
    patient = {p["patient_id"]: p for p in json.loads(listed.stdout)}["P15"]
    assert patient["preliminary"] == ["wbc"] and patient["latest_wbc_status"] == "preliminary"
    assert patient["wbc_grade"] == 2
    assert patient["explanations"]["leukopenia"].endswith("(preliminary result; final awaited)")

    _import(store, "f.hl7", _message("M2", 2.5, "F"), T1)
    _import(store, "c.hl7", _message("M3", 5.0, "C"), T1 + timedelta(days=1))
    shown = monitor("alerts", "--since", "2026-03-01", url=db_url)
    assert shown.returncode == 0, shown.stderr
    assert "  - leukopenia withdrawn: WBC 2.5 corrected to 5.0 by the lab on 2026-03-04" in shown.stdout
    patient = {
        p["patient_id"]: p for p in json.loads(monitor("patients", "--format", "json", url=db_url).stdout)
    }
    assert patient["P15"]["preliminary"] == [] and patient["P15"]["flags"] == []


def _status(flags: list[str], sentences: list[str], anc_at: str, anc_grade: int) -> pd.DataFrame:
    at = pd.Timestamp(anc_at, tz="UTC")
    return pd.DataFrame(
        {
            "patient_key": [1],
            "flags": [tuple(flags)],
            "explanations": [tuple(sentences)],
            "wbc_grade": [None],
            "anc_grade": [anc_grade],
            "alc_grade": [None],
            "wbc_at": [pd.NaT],
            "anc_at": [at],
            "alc_at": [pd.NaT],
        }
    )


def test_an_anc_entered_in_error_withdraws_neutropenia_in_the_sites_zone() -> None:
    before = _status(["neutropenia"], ["ANC 0.9 below 1.5"], "2026-03-02T08:00Z", 3)
    after = _status([], [], "2026-02-20T08:00Z", 0)  # the earlier ANC is the latest again
    revisions = pd.DataFrame(
        {
            "patient_key": [1],
            "analyte": ["anc"],
            "collected_at": [pd.Timestamp("2026-03-02T08:00Z")],
            "revised_at": [pd.Timestamp("2026-03-03T23:30Z")],
            "status": ["entered-in-error"],
            "value": [None],
            "comparator": [None],
            "status_before": ["final"],
            "value_before": [0.9],
            "comparator_before": [None],
        }
    )
    changes = status_changes(before, after, revisions, timezone="Europe/Paris")
    assert changes[["change", "flag", "explanation"]].values.tolist() == [
        [
            "withdrawn",
            "neutropenia",
            "neutropenia withdrawn: ANC 0.9 entered in error by the lab on 2026-03-04",
        ]
    ]


def test_a_withdrawal_stops_being_an_alert_once_the_flag_is_raised_again() -> None:
    changes = pd.DataFrame(
        {
            "patient_key": [1],
            "recorded_at": [pd.Timestamp("2026-03-03T09:00Z")],
            "change": ["withdrawn"],
            "flag": ["leukopenia"],
            "analyte": [None],
            "grade_after": [pd.NA],
            "explanation": ["leukopenia withdrawn: WBC 2.5 corrected to 5.0 by the lab on 2026-03-03"],
        }
    )
    patients = pd.DataFrame(
        {
            "patient_key": [1],
            "patient_id": ["P15"],
            "assigning_authority": [""],
            "name": [None],
            "flags": [[]],
            "explanations": [[]],
            "latest_wbc_grade": [0],
            "latest_anc_grade": [pd.NA],
            "latest_alc_grade": [pd.NA],
            "last_collected_at": [pd.Timestamp("2026-03-02T08:00Z")],
        }
    )
    assert current_alerts(changes, patients)["changes"].tolist() == [changes["explanation"].tolist()]
    again = patients.assign(flags=[["leukopenia"]], explanations=[["WBC 2.2 below 4.0"]])
    assert current_alerts(changes, again).empty


def test_the_worklist_shows_the_preliminary_wbc_as_preliminary(store) -> None:
    _import(store, "p.hl7", _message("M1", 2.1, "P"), T0)
    shown = worklist(store, viewer=SYSTEM, timezone="UTC", now=T0)
    row = worklist_table(shown, "UTC").set_index("Patient ID").loc["P15"]
    # (with the lab's own flag beside the count: docs/clinical-basis.md, The lab's abnormal flags)
    assert row["WBC (10^9/L)"] == "2.10 L (preliminary)" and row["ANC (10^9/L)"] == ""


def test_the_worklist_page_lists_the_withdrawn_flag_among_the_last_days_changes(
    store, db_url, monkeypatch
) -> None:
    import streamlit as st

    from tests.test_dashboard import _app

    now = datetime.now(UTC).replace(microsecond=0)
    drawn = (now - timedelta(days=1)).strftime("%Y%m%d%H%M")
    _import(store, "f.hl7", _message("M1", 2.5, "F", drawn=drawn), now - timedelta(hours=2))
    _import(store, "c.hl7", _message("M2", 5.0, "C", drawn=drawn), now - timedelta(hours=1))
    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _app().run()
    assert not at.exception
    panel = next(e for e in at.expander if e.label.startswith("Changes in the last 24 hours"))
    assert panel.label == "Changes in the last 24 hours (1 patient)"
    changed = panel.dataframe[0].value
    assert changed["Patient ID"].tolist() == ["P15"]
    assert (
        changed["What changed"]
        .iloc[0]
        .startswith("leukopenia withdrawn: WBC 2.5 corrected to 5.0 by the lab")
    )
    st.cache_data.clear()
    st.cache_resource.clear()
