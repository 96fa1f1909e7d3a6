"""The dashboard pages, rendered by Streamlit's AppTest against a temporary store."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from sqlalchemy import select, text
from streamlit.testing.v1 import AppTest

from db.accounts import Viewer, ensure_teams
from db.models import AppUser, Patient, PatientTeam, Team, UserTeam
from db.store import open_store
from services.imports import ImportOptions, import_path
from services.patient_actions import acknowledge
from tests.conftest import DATA, ROOT

APP = str(ROOT / "dashboard.py")


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


ADMIN = Viewer("admin", "admin", None)


def _app(viewer: Viewer = ADMIN, timeout: int = 60) -> AppTest:
    """The dashboard with ``viewer`` signed in (the sign-in page itself is tested on its own); its account
    is made in the store of ``MONITOR_DATABASE_URL`` if missing, as the dashboard reads it on every run."""
    _account(viewer)
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["viewer"] = viewer
    return at


def _account(viewer: Viewer) -> None:
    """An active account for ``viewer``, unaudited (the tests count the trail's rows): its role, in the
    teams of its team ids; a non-administrator who sees every patient is put in a team every patient is in."""
    store = open_store(os.environ["MONITOR_DATABASE_URL"], timezone="UTC")
    with store.begin() as session:
        if session.scalar(select(AppUser.id).where(AppUser.username == viewer.username)) is not None:
            return
        user = AppUser(
            username=viewer.username,
            display_name=viewer.username,
            role=viewer.role,
            password_hash=None,
            is_active=True,
            created_at=datetime.now(UTC),
        )
        session.add(user)
        session.flush()
        if viewer.role == "admin":
            teams: list[int] = []
        elif viewer.team_ids is None:
            teams = ensure_teams(session, ["everyone"])
            session.add_all(
                PatientTeam(patient_id=key, team_id=teams[0]) for key in session.scalars(select(Patient.id))
            )
        else:
            teams = list(session.scalars(select(Team.id).where(Team.id.in_(viewer.team_ids))))
        session.add_all(UserTeam(user_id=user.id, team_id=team) for team in teams)


def _array(encoded) -> list:
    """A plotly figure array from its JSON spec (plotly sends numbers as typed base64 arrays)."""
    if isinstance(encoded, dict) and "bdata" in encoded:
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).tolist()
    return list(encoded)


def test_first_start_creates_the_store_seeds_the_demo_and_asks_to_sign_in(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh' / 'monitor.db'}")
    monkeypatch.delenv("MONITOR_SEED_DEMO", raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert at.title[0].value == "Sign in" and not at.dataframe  # nothing else renders before sign-in
    assert "`oncology`" in at.caption[0].value and "password `demo`" in at.caption[0].value
    assert "`viewer` (viewer, oncology, internal-medicine)" in at.caption[0].value  # the read-only role
    at.text_input(key="sign_in_username").input("medicine")
    at.text_input(key="sign_in_password").input("demo")
    at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()
    assert not at.exception
    assert "Synthetic demo data" in at.warning[0].value
    table = at.dataframe[0].value
    assert len(table) >= 20 and table["Name"].str.contains("Synthetic").all()
    # The internal-medicine clinician sees only internal-medicine patients.
    assert table["Teams"].str.contains("Internal medicine").all()


def test_the_sign_in_page_names_the_product(imported_store) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Sign in"
    assert any(block.value.startswith("**Leukopenia monitor**") for block in at.markdown)


def test_wrong_passwords_slow_further_attempts_down_and_never_lock_the_account(tmp_path, monkeypatch) -> None:
    import time_machine

    from db.accounts import CLIENT_THROTTLE, REFUSED

    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'monitor.db'}")
    at = AppTest.from_file(APP, default_timeout=120).run()

    def attempt(password: str) -> None:
        at.text_input(key="sign_in_username").input("oncology")
        at.text_input(key="sign_in_password").input(password)
        at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()

    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        for _ in range(CLIENT_THROTTLE.free):
            attempt("wrong")
            assert at.error[0].value == REFUSED
        attempt("demo")  # too soon: the same words as a wrong password, and still the sign-in page
        assert at.error[0].value == REFUSED and at.title[0].value == "Sign in"
        clock.shift(CLIENT_THROTTLE.wait_after(CLIENT_THROTTLE.free + 1) * 2)
        attempt("demo")
    assert not at.error and "Synthetic demo data" in at.warning[0].value


def test_a_viewer_reads_but_cannot_record(imported_store) -> None:
    at = _open_patient(_app(Viewer("reader", "viewer", None)).run())
    assert not at.exception
    assert any("Viewer accounts read only" in info.value for info in at.info)
    assert not at.get("form")


def test_worklist_shows_latest_counts_grade_flags_and_trend_most_urgent_first(imported_store) -> None:
    at = _app().run()
    assert not at.exception
    assert len(at.warning) == 0  # imported, not synthetic: no banner
    table = at.dataframe[0].value
    # MRN1001's ANC 0.9 is grade 3 (< 1.0, >= 0.5): first, whatever its last CBC date.
    assert table["Patient ID"].iloc[0] == "MRN1001"
    first = table.set_index("Patient ID").loc["MRN1001"]
    # The count was drawn in March 2026, more than 7 days before the page is drawn: the reason dates it.
    # A grade 3 without a recent count has a CBC due, said after the reason (the Flags are in the CSV only).
    why = "ANC grade 3 (0.9 x10^9/L on 2026-03-16) · CBC due"
    assert (first["Priority"], first["Why"], first["Grade"]) == (2, why, 3)
    assert (first["WBC (10^9/L)"], first["ANC (10^9/L)"]) == ("3.10", "0.90")
    assert list(first["Flags"])[:2] == ["leukopenia", "neutropenia"]
    assert list(first["WBC trend"]) == [5.6, 3.1]
    assert first["Acknowledged"] == "no"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Urgent (priority 1-2)"] == "1"
    assert metrics["Not acknowledged"] == metrics["Patients"] != "0"


def test_search_and_grade_filters_narrow_the_worklist(imported_store) -> None:
    at = _app().run()
    at.text_input(key="worklist_search").input("2002").run()
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN2002"]
    at.text_input(key="worklist_search").input("").run()
    at.selectbox(key="worklist_grade").select(3).run()
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN1001"]


def _acknowledge_button(at: AppTest):
    """The Acknowledge button as drawn now (its key names what it was drawn for)."""
    [button] = [b for b in at.button if (b.key or "").startswith("acknowledge_")]
    return button


def _open_patient(at: AppTest, label: str = "MRN1001 · (no name)") -> AppTest:
    at.switch_page("app_pages/patient.py").run()
    box = at.selectbox(key="patient_select")
    return box.select_index(box.options.index(label)).run()


def test_patient_timeline_charts_wbc_against_the_reference_band_with_grade_zones(imported_store) -> None:
    at = _open_patient(_app().run())
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace for trace in spec["data"]}
    band_low = spec["data"][1]
    assert band_low["fill"] == "tonexty" and _array(band_low["y"]) == [4.0, 4.0]
    wbc = next(t for t in spec["data"] if t["name"].startswith("WBC (marker"))
    assert _array(wbc["y"]) == [5.6, 3.1]
    # 3.1 is below its 4.0 limit: a down-triangle, not only a colour.
    assert wbc["marker"]["symbol"][1] == "triangle-down"
    assert "Significant fall (beyond the RCV)" in traces  # 5.6 -> 3.1 is -45 %, beyond -22.3 %
    zones = [shape for shape in spec["layout"]["shapes"] if shape.get("y1") in (3.0, 2.0, 1.0)]
    assert sorted((z["y0"], z["y1"]) for z in zones) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    titles = [spec["layout"][axis]["title"]["text"] for axis in ("yaxis", "yaxis3", "yaxis4")]
    assert titles == ["WBC (10^9/L)", "Haemoglobin (g/dL)", "Platelets (10^9/L)"]
    flags = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert flags[0] == "- **leukopenia**: WBC 3.1 below 4.0 (CTCAE grade 1)"


def test_every_patient_of_the_real_sample_files_opens_without_an_error(tmp_path, monkeypatch) -> None:
    """Feeds that send no upper limit, no name, no sex or no ALC: the timeline still draws, and says so."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    for name in (
        "csv/wide.csv",
        "fhir/bulk-export-observations.ndjson",
        "external/fhir-converter-lab-oru-1.hl7",
        "external/nist-lri-cbc.hl7",
        "external/us-core-observation-cbc-leukocytes.json",
    ):
        import_path(
            open_store(url, timezone="UTC"),
            DATA / name,
            options=ImportOptions(imported_by="test", site_timezone="UTC"),
        )
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = _app().run()
    at.switch_page("app_pages/patient.py").run()
    options = at.selectbox(key="patient_select").options
    assert len(options) >= 5
    for number in range(len(options)):
        at.selectbox(key="patient_select").select_index(number).run()
        assert not at.exception, (options[number], at.exception)
        shown = [m.value for m in at.markdown] + [f"{m.value} {m.help or ''}" for m in at.metric]
        shown += [frame.value.to_csv() for frame in at.dataframe]
        leaked = r"\b(?i:nan|nat)\b|<NA>|\bNone\b(?!: no count)"
        assert not [text for text in shown if re.search(leaked, text)], options[number]
        assert at.dataframe, options[number]  # the flowsheet at least


def test_flowsheet_marks_low_results(imported_store) -> None:
    at = _open_patient(_app().run())
    sheet = at.dataframe[1].value  # after the episodes table
    assert sheet.loc[sheet.index.max(), "WBC (10^9/L)"] == "3.1 ↓"
    assert sheet.loc[sheet.index.min(), "WBC (10^9/L)"] == "5.6"


def test_acknowledging_clears_the_worklist_state_and_is_audited(imported_store) -> None:
    at = _open_patient(_app().run())
    assert "Not yet acknowledged since the flags last appeared or worsened." in [c.value for c in at.caption]
    at.text_area(key="acknowledge_comment").input("Seen; repeat CBC in a week")
    _acknowledge_button(at).click().run()
    assert not at.exception
    assert any(c.value.startswith("Acknowledged 20") for c in at.caption)
    at.switch_page("app_pages/patients.py").run()
    row = at.dataframe[0].value.set_index("Patient ID").loc["MRN1001"]
    assert row["Acknowledged"] == "yes"
    with open_store(imported_store, timezone="UTC")() as session:
        audited = session.execute(text("SELECT action, username, details FROM audit_log ORDER BY id")).all()
    actions = [row[0] for row in audited]
    # The import, the worklist's view of each patient listed (the timeline's selector lists the same ones:
    # not again), the patient's page, then the acknowledgement with its comment.
    listed = len(at.dataframe[0].value)
    assert actions == ["import", *["view"] * listed, "view", "acknowledge"]
    assert all("worklist" in row[2] for row in audited[1 : listed + 1])
    assert "patient timeline" in audited[-2][2]
    assert audited[-1][1] == "admin" and "repeat CBC in a week" in audited[-1][2]


def test_an_acknowledgement_refused_after_a_new_result_shows_the_new_flags(
    imported_store, tmp_path: Path
) -> None:
    """The page shows ANC grade 3; a count at grade 4 is imported before the click: nothing is acknowledged,
    the form says why and the page now shows the grade-4 flag to look at."""
    at = _open_patient(_app().run())
    assert any("CTCAE grade 3" in m.value for m in at.markdown)
    results = tmp_path / "later.csv"
    results.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "MRN1001,2026-03-18T08:00:00Z,751-8,0.3,K/uL,1.8,7.7,CENTRAL,ACC-9,final\n"
    )
    store = open_store(imported_store, timezone="UTC")
    import_path(store, results, options=ImportOptions(imported_by="test", site_timezone="UTC"))
    st.cache_data.clear()  # the page's data expired meanwhile: the click's rerun reads the new status first
    at.text_area(key="acknowledge_comment").input("Seen")
    _acknowledge_button(at).click().run()
    assert not at.exception
    [refused] = [e.value.replace("\\", "") for e in at.error]  # (as written: the colon escaped)
    assert refused.startswith("not acknowledged: the patient's flags changed since this page showed them (")
    assert "ANC CTCAE grade 3 -> 4" in refused
    assert refused.endswith("); the flags above are now current: review them and acknowledge again")
    assert any("ANC 0.3 below 1.8 (CTCAE grade 4" in m.value for m in at.markdown)
    assert "Not yet acknowledged since the flags last appeared or worsened." in [c.value for c in at.caption]
    with store() as session:
        assert session.scalar(text("SELECT count(*) FROM acknowledgement")) == 0
    at.run()  # the next interaction: the refusal was said once
    assert not at.error


def test_a_click_as_another_patient_is_chosen_acknowledges_the_patient_shown(imported_store) -> None:
    """The selector changes and the button of the page still shown is clicked in the same run: the
    acknowledgement covers the patient and the flags that page showed, never the patient chosen meanwhile."""
    at = _open_patient(_app().run())
    box = at.selectbox(key="patient_select")
    other = next(label for label in box.options if not label.startswith("MRN1001"))
    box.select(other)
    _acknowledge_button(at).click().run()
    assert not at.exception and not at.error
    with open_store(imported_store, timezone="UTC")() as session:
        covered = session.execute(
            text("SELECT p.mrn, a.flags FROM acknowledgement a JOIN patient p ON p.id = a.patient_id")
        ).all()
    assert [mrn for mrn, _ in covered] == ["MRN1001"] and "neutropenia" in covered[0][1]
    assert at.selectbox(key="patient_select").value is not None
    assert any(other.split(" ")[0] in m.value for m in at.markdown)  # the page now shows the patient chosen


def test_a_patient_range_recomputes_the_grade_and_the_flags(imported_store) -> None:
    at = _open_patient(_app().run())
    at.selectbox(key="range_analyte").select("wbc")
    at.number_input(key="range_low").set_value(3.0)
    at.number_input(key="range_high").set_value(9.66)
    at.text_input(key="range_reason").input("Duffy-null phenotype confirmed")
    at.button(key="FormSubmitter:range_form-Save").click().run()
    assert not at.exception
    flags = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert not any("leukopenia" in f for f in flags)  # WBC 3.1 is not below 3.0
    metrics = {m.label: m for m in at.metric}
    assert (
        "3.0" in metrics["Latest WBC (10^9/L)"].help
        and "patient override" in metrics["Latest WBC (10^9/L)"].help
    )


@pytest.fixture
def treated_store(tmp_path: Path, monkeypatch) -> str:
    """MRN1001 with two docetaxel cycles (24 February, 17 March) around its results."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    events = tmp_path / "events.csv"
    events.write_text(
        "patient_id,kind,start,end,label,details\n"
        "MRN1001,chemotherapy,2026-02-24,,Docetaxel cycle 1,docetaxel\n"
        "MRN1001,chemotherapy,2026-03-17,,Docetaxel cycle 2,docetaxel\n"
    )
    import_path(store, events, options=ImportOptions(imported_by="test", site_timezone="UTC"))
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def test_events_and_the_before_after_comparison_read_as_tables_for_people(treated_store) -> None:
    at = _open_patient(_app().run())
    assert not at.exception
    tables = [frame.value for frame in at.dataframe]
    events = next(t for t in tables if "Kind" in t.columns)
    assert events.columns.tolist() == ["Kind", "Start", "End", "Label", "Details"]
    assert events["Start"].tolist() == ["2026-02-24", "2026-03-17"] and events["End"].tolist() == ["", ""]
    compared = next(t for t in tables if "Count" in t.columns and "Median before" in t.columns)
    wbc = compared.set_index("Count").loc["WBC (10^9/L)"]
    # Around cycle 1 (24 February, 28 days): nothing before, 5.6 and 3.1 after.
    assert (wbc["Results before"], wbc["Results after"], wbc["Median after"]) == (0, 2, 4.35)
    assert (wbc["Lowest after"], wbc["Highest after"]) == (3.1, 5.6)


def test_an_event_added_on_the_page_is_listed_on_the_day_it_was_entered(imported_store, monkeypatch) -> None:
    from datetime import date, time

    monkeypatch.setenv("MONITOR_TIMEZONE", "Pacific/Auckland")  # UTC+13 in March: 09:30 there is 20:30 UTC
    at = _open_patient(_app().run())
    at.selectbox(key="event_kind").select("gcsf")
    at.date_input(key="event_date").set_value(date(2026, 3, 16))
    at.time_input(key="event_time").set_value(time(9, 30))
    at.text_input(key="event_label").input("Filgrastim 5 mcg/kg")
    at.button(key="FormSubmitter:event_form-Add").click().run()
    assert not at.exception
    events = next(frame.value for frame in at.dataframe if "Kind" in frame.value.columns)
    assert events["Kind"].tolist() == ["G-CSF"] and events["Start"].tolist() == ["2026-03-16 09:30"]
    assert at.selectbox(key="patient_compare_event").format_func(0).startswith("2026-03-16 09:30 · G-CSF")


def test_cycles_page_overlays_counts_by_cycle_and_tables_them(treated_store) -> None:
    at = _app().run()
    at.switch_page("app_pages/cycles.py").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in spec["data"] if t["name"].startswith("Cycle")]
    # ANC 3.1 on 2 March is day 6 of cycle 1; ANC 0.9 on 16 March is day 20.
    assert [t["name"] for t in lines] == ["Cycle 1"] and _array(lines[0]["x"]) == [6, 20]
    table = at.dataframe[0].value
    assert table["cycle"].tolist() == [1, 2]
    assert table["length"].tolist() == ["21", ""]  # the last cycle's length is not known yet
    assert table.loc[0, "nadir ANC"].startswith("0.9") and table.loc[0, "on"] == "D21"


def test_the_worklist_is_audited_once_per_session_as_a_view_of_each_patient_listed(imported_store) -> None:
    at = _app().run()
    shown = at.dataframe[0].value["Patient ID"].tolist()
    at.text_input(key="worklist_search").input("2002").run()  # a rerun of the same list, narrowed
    assert not at.exception
    with open_store(imported_store, timezone="UTC")() as session:
        views = session.execute(
            text(
                "SELECT a.username, p.mrn, a.details FROM audit_log a "
                "LEFT JOIN patient p ON p.id = a.patient_id "
                "WHERE a.action = 'view' ORDER BY a.id"
            )
        ).all()
    listed = [row for row in views if "worklist" in (row[2] or "")]
    # Every patient whose name and counts the list showed, once each, under the viewer.
    assert sorted(row[1] for row in listed) == sorted(shown) and len(shown) >= 2
    assert {row[0] for row in listed} == {"admin"}
    assert all(f"({len(shown)} patients)" in row[2] for row in listed)


def test_opening_a_patients_cycles_is_audited_once_not_at_every_rerun(treated_store) -> None:
    at = _app().run()
    at.switch_page("app_pages/cycles.py").run()
    at.segmented_control(key="cycles_analyte").set_value("wbc").run()  # a rerun of the same patient
    assert not at.exception
    with open_store(treated_store, timezone="UTC")() as session:
        views = session.execute(
            text("SELECT username, details FROM audit_log WHERE action = 'view' ORDER BY id")
        ).all()
    cycles = [row for row in views if "treatment cycles" in (row[1] or "")]
    assert [row[0] for row in cycles] == ["admin"]


def test_settings_page_saves_a_regimen_rule_and_recomputes(imported_store) -> None:
    at = _app().run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception
    rules = at.dataframe[0].value.set_index("key")
    assert rules.loc["flags.persistent_min_days", "default"] == "14"
    anc_source = rules.loc["cycles.readiness.anc_min", "source"]
    assert "paclitaxel and docetaxel prescribing information" in anc_source
    assert "docs/clinical-basis.md, Readiness thresholds" in anc_source
    at.text_input(key="regimen_name").input("AC-T")
    at.button(key="FormSubmitter:regimen_form-Save regimen rule").click().run()
    assert not at.exception
    with open_store(imported_store, timezone="UTC")() as session:
        stored = session.execute(text("SELECT value FROM setting WHERE key = 'rules'")).scalar_one()
    assert json.loads(stored)["cycles"]["regimens"]["ac-t"]["anc_min"] == 1.5


def test_settings_page_sets_a_lab_range_under_the_signed_in_admins_name(imported_store) -> None:
    at = _app().run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception
    assert at.selectbox(key="lab_range_lab").options == ["CENTRAL", "NORTH"]  # the labs of the import
    next(field for field in at.number_input if field.label == "Lower limit").set_value(3.9)
    at.button(key="FormSubmitter:lab_range_form-Save lab range").click().run()
    assert not at.exception and not at.error
    with open_store(imported_store, timezone="UTC")() as session:
        ranges = session.execute(text("SELECT analyte, low FROM lab_range")).all()
        audited = session.execute(text("SELECT username FROM audit_log WHERE action = 'lab_range'")).all()
    assert [tuple(row) for row in ranges] == [("wbc", 3.9)]
    assert [tuple(row) for row in audited] == [("admin",)]


def test_import_page_lists_past_imports_and_their_refusals(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    import_path(
        store, DATA / "canonical-bad-row.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = _app().run()
    at.switch_page("app_pages/imports.py").run()
    assert not at.exception
    batches = at.dataframe[0].value
    assert batches["File"].tolist() == ["canonical-bad-row.csv", "canonical-good.csv"]
    assert batches["Rejected"].tolist() == [1, 0]

    def refused_views() -> list[str]:
        with store() as session:
            views = session.execute(text("SELECT details FROM audit_log WHERE action = 'view'")).scalars()
            return [view for view in views if "worklist" not in view]  # the landing page's own view aside

    # Opening the page reads no refused record and audits no view of them: nobody asked to see them.
    assert len(at.dataframe) == 1 and at.selectbox(key="import_batch_rejects").value is None
    assert refused_views() == []
    at.selectbox(key="import_batch_rejects").select(batches["Import"].iloc[0]).run()
    assert not at.exception
    refusals = at.dataframe[1].value
    assert refusals[["location", "reason"]].values.tolist() == [["line 4", "unknown unit 'furlongs' for WBC"]]
    # The refused records hold patient data verbatim: showing them is audited, once per import shown.
    at.run()
    refused = refused_views()
    assert len(refused) == 1 and "refused records of import" in refused[0]


def test_a_misspelt_import_time_zone_is_named_and_blocks_the_import(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'monitor.db'}")
    at = _app().run()
    at.switch_page("app_pages/imports.py").run()
    assert at.text_input(key="import_timezone").value == "UTC" and not at.error
    for typed in ("Europe/Lndon", "Europe"):  # misspelt; half typed (a folder of the zone database)
        at.text_input(key="import_timezone").set_value(typed).run()
        assert not at.exception
        assert f"'{typed}' is not an IANA time zone" in at.error[0].value
        # (No file can be chosen in AppTest, so the buttons are disabled anyway: that a mistyped zone
        # alone disables them, with a file chosen, is checked in Chromium, tests/test_browser.py.)
        assert at.button(key="import_commit").disabled and at.button(key="import_check").disabled


def test_a_misspelt_site_time_zone_is_named_not_a_traceback(imported_store, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_TIMEZONE", "Europe/Lndon")
    at = _app().run()
    assert not at.exception
    assert "MONITOR_TIMEZONE='Europe/Lndon' is not an IANA time zone" in at.error[0].value


def test_a_bad_cache_setting_is_named_not_a_traceback(imported_store, monkeypatch) -> None:
    import importlib

    from ui import data

    monkeypatch.setenv("MONITOR_CACHE_SECONDS", "1 minute")
    importlib.reload(data)  # as a fresh server process would import it: no error at import time
    try:
        at = _app().run()
        assert not at.exception
        assert "MONITOR_CACHE_SECONDS='1 minute' is not a whole number of seconds" in at.error[0].value
    finally:
        monkeypatch.delenv("MONITOR_CACHE_SECONDS")
        importlib.reload(data)


def test_a_store_that_goes_away_is_said_plainly_not_a_traceback(imported_store, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    from db import queries

    def unreachable(*_args, **_kwargs):
        raise OperationalError("SELECT ...", {}, ConnectionError("server closed the connection"))

    at = _app().run()
    assert not at.exception and at.dataframe
    monkeypatch.setattr(queries, "patient_list", unreachable)
    st.cache_data.clear()
    at.run()
    assert not at.exception
    assert "cannot be used just now" in at.error[0].value
    monkeypatch.undo()
    at.run()  # and it recovers when the store is back
    assert not at.exception and not at.error and at.dataframe


def test_a_session_idle_for_too_long_is_signed_out(imported_store) -> None:
    import time

    from db.accounts import IDLE_MINUTES

    at = _app()
    at.session_state["viewer_last_active"] = time.monotonic() - IDLE_MINUTES * 60 - 1
    at.run()
    assert not at.exception
    assert at.title[0].value == "Sign in" and not at.dataframe
    assert f"after {IDLE_MINUTES} minutes without activity" in at.info[0].value


def test_a_read_only_store_shows_no_patient_data_it_cannot_audit(imported_store, monkeypatch) -> None:
    """Opening the worklist or a patient writes an audit row: on a read-only store each page says so
    instead of showing patients unaudited."""
    path = imported_store.removeprefix("sqlite:///")
    _account(ADMIN)  # while the store can still be written
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")
    at = _app().run()
    assert not at.exception and not at.dataframe
    assert "cannot be used just now" in at.error[0].value
    at.switch_page("app_pages/patient.py").run()
    assert not at.exception
    assert "cannot be used just now" in at.error[0].value


def test_an_empty_store_shows_an_empty_worklist_that_says_what_to_do(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    open_store(url, timezone="UTC")
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    monkeypatch.setenv("MONITOR_SEED_DEMO", "0")
    at = _app().run()
    assert not at.exception
    assert "No patients to show yet" in at.info[0].value and not at.dataframe
    at = _app(Viewer("medicine", "clinician", (2,))).run()
    assert not at.exception and "No patients in your teams yet" in at.info[0].value


def test_audit_page_filters_by_every_action_and_finds_a_person_under_each_spelling(imported_store) -> None:
    from datetime import UTC, datetime

    from db.audit import record
    from db.models import AUDIT_ACTIONS

    with open_store(imported_store, timezone="UTC").begin() as session:
        for name in ("alice", "cli:alice", "alice (command line)", "bob"):
            record(session, at=datetime.now(UTC), username=name, action="lab_range")
    at = _app().run()
    at.switch_page("app_pages/audit.py").run()
    assert not at.exception
    options = at.selectbox(key="audit_action").options  # in words, lab_range among them
    assert options == ["All actions", *(action.replace("_", " ") for action in AUDIT_ACTIONS)]
    at.text_input(key="audit_user").input("alice").run()
    assert sorted(at.dataframe[0].value["User"]) == ["alice", "alice (command line)", "cli:alice"]
    at.text_input(key="audit_user").input("").run()
    at.selectbox(key="audit_action").select("import").run()
    assert at.dataframe[0].value["Action"].tolist() == ["import"]


def test_audit_page_shows_details_in_words_not_json(imported_store) -> None:
    from db.audit import record

    with open_store(imported_store, timezone="UTC").begin() as session:
        key = session.scalar(select(Patient.id).limit(1))
        record(
            session,
            at=datetime.now(UTC),
            username="alice",
            action="acknowledge",
            patient_key=key,
            details={"flags": ["neutropenia", "new_onset"], "comment": "repeat CBC {in a week}"},
        )
        record(
            session,
            at=datetime.now(UTC),
            username="bob",
            action="settings",
            details={"cycles.regimens.TAC": {"fn_risk": "high"}},
        )
    at = _app().run()  # the worklist's view is audited: a row with {"what": ...}
    at.switch_page("app_pages/audit.py").run()
    assert not at.exception
    shown = at.dataframe[0].value
    cells = shown.astype(str).stack()
    assert not cells.str.contains(r"^\s*[{\[].*[}\]]\s*$", regex=True).any(), "a cell shows raw JSON"
    assert not cells.str.contains('":', regex=False).any()
    # Each kind of detail in a column of its own; a setting's key with its value in "Other details".
    by = shown.set_index("User")
    assert (by.loc["alice", "Comment"], by.loc["alice", "Flags"]) == (
        "repeat CBC {in a week}",
        "neutropenia, new_onset",
    )
    assert by.loc["bob", "Other details"] == "cycles.regimens.TAC: fn_risk high"
    assert shown.loc[shown["Action"] == "view", "What"].str.startswith("worklist").any()
    assert list(shown.columns[:5]) == ["When (UTC)", "User", "Action", "Patient", "What"]
    assert not shown["Patient"].eq("None").any()


def _exports(url: str) -> list[tuple[str, str]]:
    with open_store(url, timezone="UTC")() as session:
        rows = session.execute(
            text("SELECT username, details FROM audit_log WHERE action = 'export' ORDER BY id")
        ).all()
    return [(who, json.loads(details)["what"]) for who, details in rows]


def test_a_download_is_audited_when_the_file_is_made_and_refused_once_signed_out(
    imported_store, offered_downloads
) -> None:
    at = _app().run()
    assert not at.exception
    make = offered_downloads["Download this list (CSV)"]
    assert callable(make) and _exports(imported_store) == []  # drawing the button exports nothing
    made = make()  # what Streamlit runs when the file is asked for, with or without the button's click
    made = made.decode() if isinstance(made, bytes) else made
    assert made.startswith("Priority,Why,Patient ID,") and "MRN1001" in made
    assert _exports(imported_store) == [("admin", f"worklist CSV ({len(made.splitlines()) - 1} patients)")]
    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Sign in"
    with pytest.raises(PermissionError):  # the file asked for after signing out: nothing made
        make()
    assert len(_exports(imported_store)) == 1


def test_a_childs_page_shows_age_in_months_and_an_anc_below_the_interval_for_age(
    tmp_path, monkeypatch
) -> None:
    from datetime import UTC, date, datetime, timedelta

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    today = datetime.now(UTC).date()
    back = today.year * 12 + today.month - 1 - 6  # the first of the month six months ago
    born = date(back // 12, back % 12 + 1, 1)
    taken = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT08:00:00Z")
    kid = date(today.year - 5, 1, 10)
    text = (
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status,birth_date\n"
        f"KID5,{taken},anc,2.0,10^9/L,,,NORTH,K-1,final,{kid}\n"
        f"BABY,{taken},anc,1.2,10^9/L,,,NORTH,B-1,final,{born}\n"
    )
    path = tmp_path / "children.csv"
    path.write_text(text, encoding="utf-8")
    import_path(
        open_store(url, timezone="UTC"), path, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = _open_patient(_app().run(), "KID5 · (no name)")
    assert not at.exception
    anc = next(m for m in at.metric if m.label.startswith("Latest ANC"))
    assert anc.value == "2.00 · G1 · below the reference interval for age, not neutropenia"
    assert any(" · 5 y · " in m.value for m in at.markdown)
    at = _open_patient(at, "BABY · (no name)")
    months = (today.year - born.year) * 12 + today.month - born.month
    assert any(f" · {months} mo · " in m.value for m in at.markdown)
    assert (
        "below the reference interval for age"
        in next(m for m in at.metric if m.label.startswith("Latest ANC")).value
    )


def _views(url: str) -> list[tuple[str, str | None, str]]:
    """The trail's views: who, which patient (identifier, or None for a view of no one patient), what."""
    with open_store(url, timezone="UTC")() as session:
        rows = session.execute(
            text(
                "SELECT a.username, p.mrn, a.details FROM audit_log a "
                "LEFT JOIN patient p ON p.id = a.patient_id WHERE a.action = 'view' ORDER BY a.id"
            )
        ).all()
    return [(who, mrn, json.loads(details)["what"]) for who, mrn, details in rows]


def test_the_cycles_pages_list_of_treated_patients_is_audited_as_a_view_of_each(
    treated_store, tmp_path, monkeypatch
) -> None:
    """A clinician who opens Treatment cycles first sees the treated patients' names in its selector."""
    at = _app().run()
    at.switch_page("app_pages/cycles.py").run()
    assert not at.exception
    offered = at.selectbox(key="cycles_patient").options
    at.segmented_control(key="cycles_analyte").set_value("wbc").run()  # a rerun: no new rows
    listed = [(who, mrn) for who, mrn, what in _views(treated_store) if what.startswith("patient list on")]
    assert [mrn for _, mrn in listed] == ["MRN1001"] and offered == ["MRN1001 · (no name)"]


def test_reading_the_audit_trail_is_audited_once_per_filter(imported_store) -> None:
    at = _app().run()
    at.switch_page("app_pages/audit.py").run()
    at.text_input(key="audit_user").input("admin").run()
    at.run()  # a rerun of the same filter
    assert not at.exception
    trail = [what for who, _, what in _views(imported_store) if "audit trail" in what and who == "admin"]
    assert len(trail) == 2 and "user 'admin'" in trail[1] and "rows, last 7 days" in trail[0]


# Markdown and HTML a feed or a form could carry: an image (the browser would fetch it), a link, a coloured
# directive passing for clinical text, HTML tags, LaTeX and a table's pipes.
PAYLOAD = "![i](http://e.x/i)[l](http://e.x):red[STOP]<b>h</b>$\\pi$|a|b|"


def _texts(at: AppTest) -> list[str]:
    """What a page shows as markdown: text elements, alerts and the metrics' help."""
    assert not at.exception
    shown = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title"):
        shown += [element.value for element in at.get(kind)]
    return shown + [metric.help or "" for metric in at.metric]


def test_text_from_feeds_and_forms_is_shown_as_typed_never_as_markdown_or_html(tmp_path, monkeypatch) -> None:
    """The payload as a patient identifier, name and team name, a lab, an event's label and details,
    and an acknowledgement's comment: every page shows it escaped, as text, and plotly's hover too."""
    from ui.text import plain

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    results = tmp_path / "results.csv"
    results.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        f"{PAYLOAD},2026-03-02T08:15:00Z,wbc,5.6,10^9/L,4.0,11.0,{PAYLOAD},{PAYLOAD},final\n"
        f"{PAYLOAD},2026-03-16T08:15:00Z,wbc,2.1,10^9/L,4.0,11.0,{PAYLOAD},A-2,final\n"
        f"{PAYLOAD},2026-03-16T08:15:00Z,anc,0.9,10^9/L,1.8,7.7,{PAYLOAD},A-2,final\n"
    )
    events = tmp_path / "events.csv"
    events.write_text(
        "patient_id,kind,start,end,label,details\n"
        f"{PAYLOAD},chemotherapy,2026-02-24,,{PAYLOAD},{PAYLOAD}\n"
        f"{PAYLOAD},note,2026-03-10,,{PAYLOAD},{PAYLOAD}\n"
    )
    for path in (results, events):
        summary = import_path(store, path, options=ImportOptions(imported_by="test", site_timezone="UTC"))
        assert summary.error is None and not len(summary.rejected), summary
    with store.begin() as session:  # as an HL7 or FHIR feed names them, and an administrator a team
        session.execute(text("UPDATE patient SET name = :p"), {"p": PAYLOAD})
        session.execute(text("INSERT INTO team (code, name) VALUES ('evil', :p)"), {"p": PAYLOAD})
        session.execute(
            text("INSERT INTO patient_team (patient_id, team_id) SELECT p.id, t.id FROM patient p, team t")
        )
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = _app().run()
    at.switch_page("app_pages/patient.py").run()
    at.text_area(key="acknowledge_comment").input(PAYLOAD)
    _acknowledge_button(at).click().run()
    shown = _texts(at)
    header = next(text for text in shown if text.startswith("**"))
    assert header.count(plain(PAYLOAD)) == 3, header  # identifier, name, team
    shown += _texts(at.switch_page("app_pages/cycles.py").run())
    shown += _texts(at.switch_page("app_pages/patients.py").run())
    # Once every escaped payload is taken out, no piece of one is left: nothing was shown unescaped.
    left = [text.replace(plain(PAYLOAD), "") for text in shown]
    raw = [text for text in left if any(piece in text for piece in ("![", "](", ":red[", "<b>", "$\\pi$"))]
    assert not raw, raw
    # Plotly renders a subset of HTML in hover: the lab, the accession and the events' labels as text.
    at = _app().run()
    at.switch_page("app_pages/patient.py").run()
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    strings = [
        str(value)
        for trace in traces
        for field in ("customdata", "text")
        for value in np.ravel(np.array(trace.get(field, []), dtype=object))
    ]
    assert not [value for value in strings if "<b>h</b>" in value]
    hovered = [value for value in strings if "&lt;b&gt;h&lt;/b&gt;" in value]
    assert len(hovered) >= 4  # the lab and accession of a result, and the events' labels


@pytest.mark.parametrize("rows", [[99], [-1], ["0"], [True], [0, 1], None, {"0": 0}])
def test_a_tampered_worklist_selection_opens_no_patient_rather_than_failing(rows) -> None:
    """The table's selection arrives from the browser as JSON: only one row number of the list shown opens
    a patient."""
    import pandas as pd

    from ui.worklist import selected_patient

    shown = pd.DataFrame({"patient_key": [7, 9]})
    assert selected_patient(shown, rows) is None
    assert selected_patient(shown, [1]) == 9


def test_an_unexpected_error_shows_no_details_in_the_browser(imported_store, monkeypatch) -> None:
    """A bug's exception reaches the page as a generic message: never its text (SQL, a host, a port) nor a
    traceback (client.showErrorDetails, .streamlit/config.toml); the server's log keeps them."""
    import services.worklist

    def broken(*_args, **_kwargs):
        raise RuntimeError("SELECT mrn FROM patient on db.internal.example:5432 failed")

    monkeypatch.setattr(services.worklist, "worklist", broken)
    at = _app().run()
    assert at.exception and not at.dataframe
    shown = " ".join(f"{error.message} {' '.join(error.stack_trace)}" for error in at.exception)
    assert not [word for word in ("SELECT", "db.internal", "5432", "RuntimeError", ".py") if word in shown], (
        shown
    )


def test_a_store_error_at_sign_in_shows_no_details(imported_store, monkeypatch) -> None:
    """The store failing as someone signs in: the page says nothing of the driver's message (a host, a
    port, SQL)."""
    from sqlalchemy.exc import OperationalError

    from ui import identity

    def unreachable(*_args, **_kwargs):
        raise OperationalError(
            "SELECT password_hash FROM app_user", {}, ConnectionError("db.internal.example:5432 refused")
        )

    monkeypatch.setattr(identity, "sign_in", unreachable)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="sign_in_username").input("admin")
    at.text_input(key="sign_in_password").input("demo")
    at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()
    shown = [error.value for error in at.error] + [
        f"{error.message} {' '.join(error.stack_trace)}" for error in at.exception
    ]
    assert shown and at.title[0].value == "Sign in"
    leaked = [text for text in shown if any(word in text for word in ("db.internal", "5432", "SELECT"))]
    assert not leaked, leaked
    assert [error.value for error in at.error] == [identity.STORE_UNAVAILABLE] and not at.exception


def test_the_sign_in_page_says_how_to_create_an_administrator_when_there_is_none(
    imported_store, monkeypatch
) -> None:
    """A store whose administrators are all disabled (as after the demo and its accounts are removed):
    whoever opens the dashboard learns what to run."""
    from services.accounts import SYSTEM, add_user, disable_user

    store, now = open_store(imported_store, timezone="UTC"), datetime.now(UTC)
    add_user(
        store, viewer=SYSTEM, username="chief", role="admin", teams=[], password="a long passphrase", now=now
    )
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert at.title[0].value == "Sign in" and not any("administrator" in info.value for info in at.info)
    disable_user(store, viewer=SYSTEM, username="chief", now=now)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any("python -m monitor users add NAME --role admin" in info.value for info in at.info)


def test_a_store_the_dashboard_cannot_use_is_named_without_its_path(tmp_path, monkeypatch) -> None:
    """An empty store file (a failed copy, a full disk) is not silently made a new store: the page says
    what is wrong and what to do, and shows no path of the server."""
    empty = tmp_path / "monitor.db"
    empty.write_bytes(b"")
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{empty}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    [error] = [error.value for error in at.error]
    assert "the file is empty: move it away or delete it to start a new store" in error
    assert str(tmp_path) not in error and empty.stat().st_size == 0


def test_a_store_that_cannot_be_reached_at_start_shows_no_host_port_or_path(tmp_path, monkeypatch) -> None:
    """The cause of a failed start (a host and port refusing, a folder missing) goes to the server's log;
    the page says what kind of thing is wrong in fixed words."""
    for url, secret in (
        ("postgresql+psycopg://monitor:pw@127.0.0.1:9/nowhere", "127.0.0.1"),
        (f"sqlite:///{tmp_path}/no-folder/deeper/monitor.db", str(tmp_path)),
    ):
        monkeypatch.setenv("MONITOR_DATABASE_URL", url)
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        [error] = [error.value for error in at.error]
        assert error.startswith("The dashboard cannot start: its store cannot be reached or opened.")
        assert secret not in error and ":9" not in error and "pw" not in error


def _numpy_booleans(view):
    """The patient's status row as a frame's row holds it (numpy booleans, not Python's)."""
    status = view.status.map(lambda value: np.bool_(value) if isinstance(value, bool) else value)
    return dataclasses.replace(view, status=status)


@pytest.mark.parametrize("status", ["as served", "numpy booleans"])
def test_the_patient_page_says_whether_its_flags_are_acknowledged(
    imported_store, monkeypatch, status
) -> None:
    import services.patients

    store = open_store(imported_store, timezone="UTC")
    key = services.patients.find_patient(store, viewer=ADMIN, patient_id="MRN1001")
    clinician = Viewer("doc", "clinician", None)
    _account(clinician)
    acknowledge(store, viewer=clinician, patient_key=key, comment="Seen", now=datetime.now(UTC))
    if status == "numpy booleans":
        served = services.patients.patient_view
        monkeypatch.setattr(
            services.patients, "patient_view", lambda *a, **k: _numpy_booleans(served(*a, **k))
        )
    not_yet = "Not yet acknowledged since the flags last appeared or worsened."
    at = _open_patient(_app().run())
    captions = [caption.value for caption in at.caption]
    assert any(caption.startswith("Acknowledged 20") for caption in captions) and not_yet not in captions
    at = _open_patient(at, "MRN2002 · (no name)")
    captions = [caption.value for caption in at.caption]
    assert not_yet in captions and not any(caption.startswith("Acknowledged") for caption in captions)


def test_import_page_shows_the_live_feed_from_the_store(tmp_path, monkeypatch) -> None:
    from datetime import UTC, datetime

    from db.feed import listener_seen
    from services.feed import FeedOptions, FeedWriter, Received
    from tests.test_listener import cbc

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    now = datetime.now(UTC)
    writer = FeedWriter(store, FeedOptions(address="127.0.0.1:2575", site_timezone="UTC"), started_at=now)
    answers = writer.write(
        [
            Received(cbc(1).encode()),
            Received(cbc(2, wbc="abc").encode()),
            Received(cbc(3, kind="ADT^A01").encode()),
        ]
    )
    assert [answer.code for answer in answers] == ["AA", "AE", "AR"]
    with store.begin() as session:
        listener_seen(session, "127.0.0.1:2575", pid=4242, host_name="lis-gw", started_at=now, now=now)
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    at = _app().run()
    at.switch_page("app_pages/imports.py").run()
    assert not at.exception
    # (The address is escaped for Markdown, which shows it as it is.)
    assert "Listener on 127.0.0.1:2575: listening" in at.success[0].value.replace("\\", "")
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {
        "Messages today": "3",
        "Stored (AA)": "1",
        "Some records refused (AE)": "1",
        "Not processed (AR)": "1",
    }
    refusals = at.dataframe[0].value  # in the expander above the past imports
    assert refusals["Control ID"].tolist() == ["C000003", "C000002"]
    assert "value 'abc' is not a number" in refusals["What the ACK said"].iloc[1]
    # The feed's day is one import among the past ones, its refused records kept there for review.
    assert "MLLP feed on 127.0.0.1:2575" in at.dataframe[1].value["File"].iloc[0]
