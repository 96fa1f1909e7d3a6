"""CBCs due where people see them: the `due` command (team-scoped, audited, json), `patients` and `alerts`
on the command line, and the worklist's "CBC due" chip, filter, column and CSV; on both stores.

The commands read the clock: the data are placed relative to today (UTC, the site's zone here).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import text

from db.accounts import Viewer, create_user
from db.store import open_store
from tests.test_cli import monitor

TODAY = datetime.now(UTC).date()


def _day(offset: int, clock: str = "08:00") -> str:
    return f"{TODAY + timedelta(days=offset)}T{clock}:00Z"


def _results() -> str:
    return "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n" + "".join(
        f"{patient},{_day(offset)},{analyte},{value},10^9/L,{low},{high},CITY,{patient}-{offset},final\n"
        for patient, offset, values in (
            ("ONC-1", -6, (4.5, 2.5)),  # the pre-dose count of a cycle given 6 days ago
            ("ONC-2", -6, (4.5, 2.5)),  # same cycle, other team
            ("HEM-1", -10, (1.9, 0.8)),  # ANC grade 3, no chemotherapy, 10 days ago
            ("OK-1", -1, (6.0, 3.5)),  # nothing due
        )
        for analyte, value, low, high in (("wbc", values[0], 4.0, 11.0), ("anc", values[1], 1.8, 7.7))
    )


def _events() -> str:
    return "patient_id,kind,start,end,label,details\n" + "".join(
        f'{patient},chemotherapy,{_day(-6, "10:00")},,"Docetaxel, cycle 1",docetaxel q21d\n'
        for patient in ("ONC-1", "ONC-2")
    )


def _build(url: str, folder: Path) -> None:
    assert monitor("db", "upgrade", url=url).returncode == 0
    accounts = open_store(url, timezone="UTC")
    with accounts.begin() as session:
        for name, team in (("nurse1", "oncology"), ("nurse2", "haematology")):
            create_user(
                session,
                username=name,
                role="viewer",
                teams=[team],
                password="A long passphrase 1",
                now=datetime.now(UTC),
            )
    accounts.kw["bind"].dispose()  # (the template is copied as a closed file)
    results = _results().splitlines(keepends=True)
    events = _events().splitlines(keepends=True)
    for team, patients in (("oncology", ("ONC-1", "OK-1")), ("haematology", ("ONC-2", "HEM-1"))):
        for name, lines in (("results.csv", results), ("events.csv", events)):
            mine = [line for line in lines[1:] if line.split(",")[0] in patients]
            if mine:
                (folder / name).write_text(lines[0] + "".join(mine))
                done = monitor("import", str(folder / name), "--team", team, url=url)
                assert done.returncode == 0, done.stderr


@pytest.fixture
def due_store(store_copy) -> str:
    return store_copy(f"due-{TODAY}", _build)


OPENS = str(TODAY + timedelta(days=1))  # D8 of the cycle given 6 days ago
DUE = f"CBC due: C1 nadir window D8-D15 opens {OPENS}; no count since {TODAY - timedelta(days=6)}"
SEVERE = "grade 3 neutropenia, last count 10 days ago"


def test_due_lists_the_windows_opening_soon_and_grade_3_without_a_recent_count_as_json(
    due_store: str,
) -> None:
    listed = monitor("due", "--format", "json", url=due_store)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["patient_id"], r["kind"]) for r in rows] == [
        ("ONC-1", "due"),
        ("ONC-2", "due"),
        ("HEM-1", "severe"),
    ]
    first = rows[0]
    assert set(first) == {
        "patient_id",
        "assigning_authority",
        "name",
        "kind",
        "cycle",
        "window",
        "window_start",
        "window_end",
        "last_collected_at",
        "reason",
    }
    assert (first["cycle"], first["window"], first["window_start"]) == (1, "D8-D15", OPENS)
    assert first["window_end"] == str(TODAY + timedelta(days=8))
    assert first["last_collected_at"] == _day(-6)  # ISO 8601, UTC
    assert first["reason"] == DUE
    assert rows[2]["reason"] == SEVERE and rows[2]["window"] is None
    # With no days ahead, tomorrow's window is not listed yet.
    today_only = json.loads(monitor("due", "--days", "0", "--format", "json", url=due_store).stdout)
    assert [(r["patient_id"], r["kind"]) for r in today_only] == [("HEM-1", "severe")]
    table = monitor("due", url=due_store)
    assert table.returncode == 0 and "D8-D15" in table.stdout and SEVERE in table.stdout
    assert pd.read_csv(io.StringIO(monitor("due", "--format", "csv", url=due_store).stdout)).shape[0] == 3


def _views(url: str) -> list[tuple[str, str]]:
    with open_store(url, timezone="UTC")() as session:
        rows = session.execute(text("SELECT details FROM audit_log WHERE action = 'view' ORDER BY id")).all()
    return [json.loads(details)["what"] for (details,) in rows]


def test_due_shows_a_user_only_their_teams_patients_and_is_audited_as_a_view(due_store: str) -> None:
    mine = json.loads(monitor("due", "--user", "nurse1", "--format", "json", url=due_store).stdout)
    assert [r["patient_id"] for r in mine] == ["ONC-1"]
    theirs = json.loads(monitor("due", "--user", "nurse2", "--format", "json", url=due_store).stdout)
    assert [r["patient_id"] for r in theirs] == ["ONC-2", "HEM-1"]
    assert "command line: CBCs due in 3 days (1 patients) (as nurse1)" in _views(due_store)
    assert _views(due_store).count("command line: CBCs due in 3 days (2 patients) (as nurse2)") == 2


def test_patients_json_carries_cbc_due_and_its_reason(due_store: str) -> None:
    listed = json.loads(monitor("patients", "--format", "json", url=due_store).stdout)
    due = {p["patient_id"]: (p["cbc_due"], p["cbc_due_reason"]) for p in listed}
    assert due == {"ONC-1": (True, DUE), "ONC-2": (True, DUE), "HEM-1": (True, SEVERE), "OK-1": (False, "")}


def test_alerts_carry_monitoring_gaps_raised_since_the_time(due_store: str) -> None:
    since = f"{TODAY - timedelta(days=3)}T00:00:00Z"
    found = json.loads(monitor("alerts", "--since", since, "--format", "json", url=due_store).stdout)
    gaps = {a["patient_id"]: a["monitoring_gap"] for a in found if a["monitoring_gap"]}
    # ONC's gap was raised 48 hours before tomorrow's window opens; HEM-1's on the 8th day without a count.
    assert gaps == {"ONC-1": [DUE], "ONC-2": [DUE], "HEM-1": [SEVERE]}
    printed = monitor("alerts", "--since", since, "--user", "nurse1", url=due_store).stdout
    assert f"  - {DUE}" in printed and "HEM-1" not in printed


@pytest.fixture
def app_store(due_store: str, monkeypatch) -> str:
    monkeypatch.setenv("MONITOR_DATABASE_URL", due_store)
    monkeypatch.setenv("MONITOR_TIMEZONE", "UTC")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield due_store
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_worklist_shows_a_cbc_due_chip_and_reason_and_filters_on_it(
    app_store: str, offered_downloads: dict[str, object]
) -> None:
    from tests.test_dashboard import _app

    offered = offered_downloads
    at = _app(Viewer("admin", "admin", None)).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Patient ID")
    assert "CBC due" in list(table.loc["ONC-1", "Flags"]) and "CBC due" in list(table.loc["HEM-1", "Flags"])
    assert "CBC due" not in list(table.loc["OK-1", "Flags"])
    assert (table.loc["ONC-1", "CBC due"], table.loc["OK-1", "CBC due"]) == (DUE, "")
    at.toggle(key="worklist_cbc_due").set_value(True).run()
    assert sorted(at.dataframe[0].value["Patient ID"]) == ["HEM-1", "ONC-1", "ONC-2"]
    made = offered["Download this list (CSV)"]()
    exported = pd.read_csv(io.BytesIO(made if isinstance(made, bytes) else made.encode()))
    assert exported.set_index("Patient ID").loc["HEM-1", "CBC due"] == SEVERE
    assert "CBC due" in exported.set_index("Patient ID").loc["ONC-1", "Flags"]


def test_febrile_neutropenia_is_one_chip_first_and_the_cbc_due_chip_comes_after_the_flags() -> None:
    from ui.worklist import chips

    shown = pd.DataFrame(
        {
            "flags": [["febrile_neutropenia", "leukopenia", "anc_persistent"], []],
            "febrile_neutropenia": pd.array([True, pd.NA], dtype="boolean"),
            "cbc_due": [True, False],
        }
    )
    assert chips(shown).tolist() == [["febrile neutropenia", "leukopenia", "ANC persistent", "CBC due"], []]


def test_the_worklists_changes_list_the_monitoring_gaps_after_the_changes() -> None:
    from ui.worklist import what_changed

    changed = pd.DataFrame({"changes": [["ANC CTCAE grade 2 -> 3"], []], "monitoring_gap": [[], [SEVERE]]})
    assert what_changed(changed).tolist() == ["ANC CTCAE grade 2 -> 3", SEVERE]
