"""Who may see what: accounts, sign-in and its throttle, the team scope of each patient query, both stores."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select

from db.accounts import (
    CLIENT_THROTTLE,
    REFUSED,
    SYSTEM,
    AccountError,
    Viewer,
    assign_patient,
    assign_patients,
    authenticate,
    create_user,
    disable_user,
    viewer_named,
)
from db.models import AppUser, AuditLog
from db.queries import (
    PatientNotFound,
    find_patient,
    patient_events,
    patient_list,
    patient_results,
    treated_patients,
)
from services.patient_actions import add_event
from services.patients import patient_cycles
from services.worklist import alerts
from tests.test_cli import monitor

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def demo(demo_copy):
    """The demo cohort (with its accounts) in a fresh store of each kind."""
    return demo_copy(NOW)


def _teams_of(session, viewer: Viewer) -> set[str]:
    listed = patient_list(session, viewer=viewer)
    return {team for teams in listed["teams"] for team in teams.split(", ") if team}


def test_a_clinician_sees_only_their_teams_patients_in_every_query(demo) -> None:
    with demo() as session:
        medicine = viewer_named(session, "medicine")
        oncology = viewer_named(session, "oncology")
        everyone = patient_list(session, viewer=SYSTEM)
        mine = patient_list(session, viewer=medicine)
        assert 0 < len(mine) < len(everyone)
        assert mine["teams"].str.contains("Internal medicine").all()
        # An oncology-only patient (a chemotherapy patient) is invisible to the medicine clinician everywhere.
        onco_only = everyone[everyone["teams"] == "Oncology"]["patient_id"].iloc[0]
        key = int(everyone.set_index("patient_id").loc[onco_only, "patient_key"])
        assert onco_only not in set(mine["patient_id"])
        with pytest.raises(PatientNotFound):
            find_patient(session, onco_only, viewer=medicine)
        for read in (patient_results, patient_events):
            with pytest.raises(PatientNotFound):
                read(session, key, viewer=medicine)
        with pytest.raises(PatientNotFound):
            patient_cycles(demo, viewer=medicine, patient_key=key, timezone="UTC")
        assert key not in treated_patients(session, viewer=medicine)
        assert key in treated_patients(session, viewer=oncology)
        since = NOW - timedelta(days=3650)
        seen = alerts(demo, viewer=medicine, since=since, timezone="UTC", now=NOW)
        assert onco_only not in set(seen["patient_id"])
        assert find_patient(session, onco_only, viewer=oncology).mrn == onco_only


def test_an_admin_sees_every_patient_and_a_patient_in_no_team_only_admins_see(demo) -> None:
    with demo.begin() as session:
        admin = viewer_named(session, "admin")
        assert admin.sees_everyone
        assert len(patient_list(session, viewer=admin)) == len(patient_list(session, viewer=SYSTEM))
        hidden = patient_list(session, viewer=SYSTEM)["patient_key"].iloc[0]
        assert assign_patient(session, int(hidden), "haematology", now=NOW, by="test")
        assert not assign_patient(session, int(hidden), "haematology", now=NOW, by="test")


def test_a_viewer_cannot_add_events_and_a_clinician_cannot_outside_their_teams(demo) -> None:
    with demo.begin() as session:
        create_user(
            session,
            username="reader",
            role="viewer",
            teams=["oncology"],
            password="correct horse 42",
            now=NOW,
        )
        reader, medicine, oncology = (viewer_named(session, n) for n in ("reader", "medicine", "oncology"))
        everyone = patient_list(session, viewer=SYSTEM)
    onco_only = int(everyone[everyone["teams"] == "Oncology"]["patient_key"].iloc[0])
    event = {
        "patient_key": onco_only,
        "kind": "note",
        "start": NOW,
        "end": None,
        "label": "Reviewed",
        "details": "",
        "now": NOW,
        "timezone": "UTC",
    }
    with pytest.raises(PermissionError, match="viewer accounts cannot"):
        add_event(demo, viewer=reader, **event)
    with pytest.raises(PatientNotFound):
        add_event(demo, viewer=medicine, **event)
    add_event(demo, viewer=oncology, **event)


def test_repeated_failures_slow_sign_in_down_and_a_disabled_account_is_refused(store) -> None:
    with store.begin() as session:
        create_user(
            session,
            username="jsmith",
            role="clinician",
            teams=["oncology"],
            password="Ward 7 rounds!",
            now=NOW,
        )
    for _ in range(CLIENT_THROTTLE.free):
        with store.begin() as session:
            assert authenticate(session, "jsmith", "wrong", now=NOW) == REFUSED
    with store.begin() as session:  # too soon after them: refused, the right password or not
        assert authenticate(session, "jsmith", "Ward 7 rounds!", now=NOW) == REFUSED
    with store.begin() as session:  # the delay passes; nothing is locked
        signed = authenticate(session, "jsmith", "Ward 7 rounds!", now=NOW + timedelta(minutes=1))
        assert isinstance(signed, Viewer) and signed.role == "clinician"
        disable_user(session, "jsmith", now=NOW)
    with store.begin() as session:
        assert authenticate(session, "jsmith", "Ward 7 rounds!", now=NOW) == REFUSED
        assert authenticate(session, "nobody", "x", now=NOW) == REFUSED
    with store() as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        stored = session.scalar(select(AppUser.password_hash).where(AppUser.username == "jsmith"))
        details = " ".join(session.scalars(select(AuditLog.details)).all())
    assert actions.count("sign_in_failed") == CLIENT_THROTTLE.free + 3 and "sign_in" in actions
    assert stored.startswith("$argon2id$") and "Ward 7" not in stored and "Ward 7" not in details


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short", "at least 12"), ("jsmith-is-my-name", "username"), ("aaaaaaaaaaaaaa", "4 different")],
)
def test_the_password_policy(store, password: str, problem: str) -> None:
    with store.begin() as session, pytest.raises(AccountError, match=problem):
        create_user(session, username="jsmith", role="viewer", teams=["x"], password=password, now=NOW)


def test_users_and_teams_on_the_command_line(db_url: str) -> None:
    assert monitor("db", "upgrade", url=db_url).returncode == 0
    assert monitor("demo", url=db_url).returncode == 0
    added = monitor_with_input(
        db_url, "A long passphrase 1\n", "users", "add", "nurse1", "--role", "viewer", "--team", "oncology"
    )
    assert added.returncode == 0, added.stderr
    weak = monitor_with_input(
        db_url, "short\n", "users", "add", "nurse2", "--role", "viewer", "--team", "oncology"
    )
    assert weak.returncode == 2 and "at least 12" in weak.stderr
    listed = json.loads(monitor("users", "list", "--format", "json", url=db_url).stdout)
    names = {user["username"]: user for user in listed}
    assert set(names) >= {"admin", "oncology", "medicine", "nurse1"}
    assert names["nurse1"]["teams"] == "oncology" and "password_hash" not in names["nurse1"]
    everyone = json.loads(monitor("patients", "--format", "json", url=db_url).stdout)
    seen = json.loads(monitor("patients", "--format", "json", "--user", "medicine", url=db_url).stdout)
    assert 0 < len(seen) < len(everyone)
    assert all("Internal medicine" in p["teams"] for p in seen)
    onco_only = next(p["patient_id"] for p in everyone if p["teams"] == "Oncology")
    refused = monitor("results", onco_only, "--user", "medicine", url=db_url)
    assert refused.returncode == 2 and "no patient" in refused.stderr
    assert monitor("assign", onco_only, "internal-medicine", url=db_url).returncode == 0
    assert monitor("results", onco_only, "--user", "medicine", url=db_url).returncode == 0
    teams = json.loads(monitor("teams", "--format", "json", url=db_url).stdout)
    assert {t["code"] for t in teams} >= {"oncology", "internal-medicine"}
    assert monitor("users", "disable", "nurse1", url=db_url).returncode == 0
    unknown = monitor("patients", "--user", "nurse1", url=db_url)
    assert unknown.returncode == 2 and "no active user" in unknown.stderr
    assert monitor("settings", "set", "flags.persistent_min_days", "21", url=db_url).returncode == 0
    assert monitor("lab-ranges", "set", "DEMO-CENTRAL", "wbc", "3.8", "10.4", url=db_url).returncode == 0
    # No command lets its caller write another name into the trail.
    named = monitor("lab-ranges", "set", "DEMO-CENTRAL", "anc", "1.8", "--by", "j.smith", url=db_url)
    assert named.returncode == 2 and "No such option '--by'" in named.stderr
    named = monitor("settings", "set", "flags.persistent_min_days", "21", "--by", "j.smith", url=db_url)
    assert named.returncode == 2 and "No such option '--by'" in named.stderr
    # One spelling for whoever ran a command: cli: and the login.
    engine = create_engine(db_url)
    with engine.connect() as connection:
        actors = connection.execute(
            select(AuditLog.action, AuditLog.username).where(
                AuditLog.action.in_(("user_add", "user_disable", "assign_team", "settings", "lab_range"))
            )
        ).all()
    engine.dispose()
    login = f"cli:{getpass.getuser()}"
    by_action = {(action, name) for action, name in actors if name != "system"}
    assert by_action == {
        ("user_add", login),
        ("user_disable", login),
        ("assign_team", login),
        ("settings", login),
        ("lab_range", login),
    }
    assert "j.smith" not in {name for _, name in actors}
    # What a command showed is audited under the login that ran it, even when it answered as another account.
    engine = create_engine(db_url)
    with engine.connect() as connection:
        views = connection.execute(
            select(AuditLog.username, AuditLog.details).where(AuditLog.action == "view").order_by(AuditLog.id)
        ).all()
    engine.dispose()
    assert {name for name, _ in views} == {login}
    shown = [str(details) for _, details in views]
    assert any("patient list" in text and "(as medicine)" in text for text in shown)
    assert any("results (as medicine)" in text for text in shown)


def monitor_with_input(db_url: str, text: str, *args: str):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_single_sign_on_maps_a_verified_identity_to_an_account(store) -> None:
    from db.accounts import sign_in_by_identity

    with store.begin() as session:
        create_user(
            session,
            username="j.smith@example.org",
            role="clinician",
            teams=["oncology"],
            password="Ward 9 night shift",
            now=NOW,
        )
        viewer = sign_in_by_identity(session, "j.smith@example.org", now=NOW)
        assert isinstance(viewer, Viewer) and viewer.role == "clinician"
        refused = sign_in_by_identity(session, "stranger@example.org", now=NOW)
        assert isinstance(refused, str) and "no active account" in refused


def test_every_kind_of_action_leaves_an_audit_row(store, tmp_path) -> None:
    from db.audit import audit_export, audit_view
    from services.imports import ImportOptions, import_path
    from services.patient_actions import acknowledge, set_patient_range
    from services.rules import change_settings, set_lab_range
    from tests.conftest import DATA

    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="importer", site_timezone="UTC")
    )
    with store.begin() as session:
        create_user(
            session, username="doc", role="clinician", teams=["ward"], password="Ward 9 night shift", now=NOW
        )
        key = find_patient(session, "MRN1001", viewer=SYSTEM).id
        assign_patient(session, key, "ward", now=NOW, by="admin")
        doc = viewer_named(session, "doc")
        audit_view(session, doc, key, "patient timeline", now=NOW)
        audit_export(session, doc, "flowsheet CSV", key, now=NOW)
    acknowledge(store, viewer=doc, patient_key=key, comment="seen", now=NOW)
    add_event(
        store,
        viewer=doc,
        patient_key=key,
        kind="note",
        start=NOW,
        end=None,
        label="Reviewed",
        details="",
        now=NOW,
        timezone="UTC",
    )
    set_patient_range(
        store,
        viewer=doc,
        patient_key=key,
        analyte="anc",
        low=1.2,
        high=5.4,
        reason="Duffy-null",
        now=NOW,
        timezone="UTC",
    )
    with store.begin() as session:
        authenticate(session, "doc", "wrong", now=NOW)
        authenticate(session, "doc", "Ward 9 night shift", now=NOW)
        disable_user(session, "doc", now=NOW, by="admin")
    admin = Viewer("admin", "admin", None)
    change_settings(store, {"flags.chronic_min_days": 120}, viewer=admin, now=NOW, timezone="UTC")
    set_lab_range(
        store, lab="CENTRAL", analyte="wbc", low=3.9, source="handbook", viewer=admin, now=NOW, timezone="UTC"
    )
    with store() as session:
        rows = session.execute(select(AuditLog.action, AuditLog.username, AuditLog.details)).all()
    actions = {action for action, _, _ in rows}
    assert [action for action, _, _ in rows].count("lab_range") == 1  # one change, one row
    assert actions >= {
        "import",
        "user_add",
        "assign_team",
        "view",
        "export",
        "acknowledge",
        "add_event",
        "set_patient_range",
        "settings",
        "lab_range",
        "sign_in_failed",
        "sign_in",
        "user_disable",
    }
    # No password, and no clinical value, in the trail.
    text = " ".join(details for _, _, details in rows)
    assert "Ward 9" not in text and "0.9" not in text


@pytest.mark.parametrize(
    "change", ["UPDATE audit_log SET username = 'someone else'", "DELETE FROM audit_log"]
)
def test_the_store_refuses_to_change_or_delete_audit_rows(store, change: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from db.audit import record

    with store.begin() as session:
        record(session, at=datetime.now(UTC), username="admin", action="view", patient_key=1)
    with pytest.raises(DBAPIError, match="the audit trail is append-only"), store.begin() as session:
        session.execute(text(change))
    with store() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 1
        assert session.scalar(select(AuditLog.username)) == "admin"


def test_account_use_cases_run_in_their_own_transactions_and_are_audited_under_the_viewer(demo) -> None:
    from db.queries import PatientNotFound as NotFound
    from services import accounts

    admin = accounts.viewer_named(demo, username="admin")
    with demo() as session:  # the trail's rows before this test's (their time is the store's clock)
        before = session.scalar(select(func.max(AuditLog.id))) or 0
    accounts.add_user(
        demo,
        viewer=admin,
        username="nurse2",
        role="viewer",
        teams=["oncology"],
        password="A long passphrase 2",
        now=NOW,
    )
    users = accounts.list_users(demo, viewer=admin).set_index("username")
    assert users.loc["nurse2", "teams"] == "oncology" and "password_hash" not in users.columns
    signed = accounts.sign_in(demo, username="nurse2", password="A long passphrase 2", now=NOW)
    assert isinstance(signed, Viewer) and signed.role == "viewer"
    assert accounts.sign_in(demo, username="nurse2", password="wrong", now=NOW) == accounts.REFUSED
    assert isinstance(accounts.sign_in_with_identity(demo, username="nurse2", now=NOW), Viewer)
    with pytest.raises(PermissionError, match="an administrator can"):
        accounts.disable_user(demo, viewer=signed, username="admin", now=NOW)
    with pytest.raises(PermissionError):
        accounts.assign_patient(demo, viewer=signed, patient_id="DEMO-0001", team="oncology", now=NOW)
    everyone = patient_list_of(demo)
    onco_only = everyone[everyone["teams"] == "Oncology"]["patient_id"].iloc[0]
    assert accounts.assign_patient(demo, viewer=admin, patient_id=onco_only, team="haematology", now=NOW)
    assert not accounts.assign_patient(demo, viewer=admin, patient_id=onco_only, team="haematology", now=NOW)
    with pytest.raises(NotFound):
        accounts.assign_patient(demo, viewer=admin, patient_id="NOBODY", team="haematology", now=NOW)
    first = everyone["patient_id"].head(3).tolist()
    added = [
        accounts.assign_patient(demo, viewer=admin, patient_id=one, team="haematology", now=NOW)
        for one in first
    ]
    assert sum(added) >= 2
    # Several patients at once go only into a team that exists (an import's --team, checked before it reads).
    keys = everyone["patient_key"].head(3).map(int).tolist()
    with pytest.raises(AccountError, match="no team 'haematolgy'"), demo.begin() as session:
        assign_patients(session, keys, "haematolgy", now=NOW, by="admin")
    teams = accounts.list_teams(demo).set_index("code")
    assert teams.loc["haematology", "patients"] == 3
    accounts.disable_user(demo, viewer=admin, username="nurse2", now=NOW)
    assert accounts.sign_in(demo, username="nurse2", password="A long passphrase 2", now=NOW) == (
        accounts.REFUSED
    )
    with demo() as session:
        trail = session.execute(
            select(AuditLog.action, AuditLog.username).where(AuditLog.id > before).order_by(AuditLog.id)
        ).all()
    by_admin = [action for action, name in trail if name == "admin"]
    assert by_admin[0] == "user_add" and by_admin[-1] == "user_disable"
    assert by_admin.count("assign_team") >= 3
    assert [action for action, name in trail if name == "nurse2"] == [
        "sign_in",
        "sign_in_failed",
        "sign_in",
        "sign_in_failed",
    ]


def patient_list_of(store):
    with store() as session:
        return patient_list(session, viewer=SYSTEM)


def test_the_trail_finds_a_person_under_every_name_it_has_held_for_them(store) -> None:
    from db.audit import record
    from services.audit import read_trail, record_export, record_view

    with store.begin() as session:
        for name in ("alice", "cli:alice", "alice (command line)", "bob", "cli:alicia", "malice"):
            record(session, at=NOW, username=name, action="settings")
    alice = Viewer("alice", "admin", None)
    record_view(store, viewer=alice, patient_key=None, what="refused records of import 1", now=NOW)
    record_export(store, viewer=alice, what="audit CSV (7 rows)", now=NOW)
    since = NOW - timedelta(days=1)
    for typed in ("alice", " cli:alice ", "alice (command line)"):
        found = read_trail(store, viewer=alice, since=since, username=typed)
        assert sorted(found["username"]) == sorted(
            ["alice", "alice", "alice", "cli:alice", "alice (command line)"]
        ), typed
    assert read_trail(store, viewer=alice, since=since, action="export")["username"].tolist() == ["alice"]
    assert len(read_trail(store, viewer=alice, since=since)) == 8
    with pytest.raises(PermissionError, match="clinician accounts cannot read the audit trail"):
        read_trail(store, viewer=Viewer("alice", "clinician", (1,)), since=since)


def test_a_view_is_recorded_only_of_a_patient_the_viewer_may_see(demo) -> None:
    from services.audit import record_view

    with demo() as session:
        medicine = viewer_named(session, "medicine")
        everyone = patient_list(session, viewer=SYSTEM).set_index("patient_id")
        mine = patient_list(session, viewer=medicine)
    onco_only = int(everyone[everyone["teams"] == "Oncology"]["patient_key"].iloc[0])
    with pytest.raises(PatientNotFound):
        record_view(demo, viewer=medicine, patient_key=onco_only, what="patient timeline", now=NOW)
    with pytest.raises(PatientNotFound):  # nor of a patient that does not exist
        record_view(demo, viewer=medicine, patient_key=10**6, what="patient timeline", now=NOW)
    seen = int(mine["patient_key"].iloc[0])
    record_view(demo, viewer=medicine, patient_key=seen, what="patient timeline", now=NOW)
    with demo() as session:
        views = session.execute(
            select(AuditLog.username, AuditLog.patient_id).where(AuditLog.action == "view")
        ).all()
    assert [tuple(view) for view in views] == [("medicine", seen)]


def test_an_action_outside_the_vocabulary_is_refused_by_the_code_and_by_the_store(store) -> None:
    from sqlalchemy.exc import IntegrityError

    from db.audit import record

    with store.begin() as session, pytest.raises(ValueError, match="'download' is not an audit action"):
        record(session, at=NOW, username="alice", action="download")  # type: ignore[arg-type]
    with pytest.raises(IntegrityError), store.begin() as session:
        session.add(AuditLog(at=NOW, username="alice", action="download", details=""))
