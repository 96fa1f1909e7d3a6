"""The patient services on both stores: the derived view, the audited look, the actions, the lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Acknowledgement, AuditLog
from services.accounts import SYSTEM, Viewer
from services.audit import record_view
from services.imports import ImportOptions, import_path
from services.patient_actions import acknowledge, add_event, set_patient_range
from services.patients import (
    PatientNotFound,
    around_event,
    find_patient,
    patient_cycles,
    patient_view,
)
from services.worklist import alerts, patient_list, treated_patients, worklist
from tests.conftest import DATA

NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
CLINICIAN = Viewer("doc", "clinician", None)


@pytest.fixture
def treated(store: sessionmaker[Session], tmp_path: Path) -> sessionmaker[Session]:
    """MRN1001 with two docetaxel cycles (24 February, 17 March) around its results; MRN2002 untreated."""
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
    return store


def _audited(store: sessionmaker[Session]) -> list[str]:
    with store() as session:
        return list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def test_the_patient_view_holds_everything_the_patient_pages_show(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    view = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="Europe/Paris", now=NOW)
    assert (view.patient_key, view.timezone) == (key, "Europe/Paris")
    assert view.status["patient_id"] == "MRN1001" and view.status["flags"][:2] == [
        "leukopenia",
        "neutropenia",
    ]
    assert view.status["days_since_cbc"] == 4  # 16 March to 20 March in Paris
    wbc = view.results[view.results["analyte"] == "wbc"]
    assert wbc["value"].tolist() == [5.6, 3.1] and wbc["grade"].tolist() == [0, 1]
    assert wbc["below_limit"].tolist() == [False, True] and wbc["significant_fall"].tolist() == [pd.NA, True]
    assert len(view.history) == len(view.results)  # nothing corrected
    assert view.events["label"].tolist() == ["Docetaxel cycle 1", "Docetaxel cycle 2"]
    assert view.cycles.cycles["cycle"].tolist() == [1, 2] and view.cycles.table["start"].tolist() == [
        "2026-02-24",
        "2026-03-17",
    ]
    assert view.cycles.placed.query("analyte == 'anc'")["day"].tolist() == [6, 20]
    episodes = view.episodes[["count", "nadir", "ongoing"]].values.tolist()
    assert sorted(episodes) == [["ANC", 0.9, True], ["WBC", 3.1, True]]  # both since 16 March
    assert view.ranges.empty and view.acknowledgements.empty
    assert _audited(treated) == ["import", "import"]  # reading is not a view: record_view is


def test_a_patient_outside_the_viewers_teams_is_not_found_by_any_read(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    stranger = Viewer("other", "clinician", (999,))
    with pytest.raises(PatientNotFound):
        find_patient(treated, viewer=stranger, patient_id="MRN1001")
    with pytest.raises(PatientNotFound):
        patient_view(treated, viewer=stranger, patient_key=key, timezone="UTC", now=NOW)
    with pytest.raises(PatientNotFound):
        patient_cycles(treated, viewer=stranger, patient_key=key, timezone="UTC")
    assert patient_list(treated, viewer=stranger, timezone="UTC", now=NOW).empty
    assert treated_patients(treated, viewer=stranger) == [] and treated_patients(treated, viewer=SYSTEM) == [
        key
    ]


def test_before_and_after_an_event_compares_the_counts_around_it(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    view = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW)
    compared = around_event(view, event=0, window_days=28).set_index("analyte")
    # Around cycle 1 (24 February, 28 days): nothing before, 5.6 and 3.1 after; haemoglobin kept too.
    assert (compared.loc["wbc", "n_before"], compared.loc["wbc", "n_after"]) == (0, 2)
    assert compared.loc["wbc", "median_after"] == 4.35
    assert set(compared.index) == {"wbc", "anc", "hgb", "plt"}


def test_a_look_at_a_patient_is_one_audit_row_naming_what_was_seen(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    record_view(treated, viewer=CLINICIAN, patient_key=key, what="patient timeline", now=NOW)
    with treated() as session:
        row = session.execute(
            select(AuditLog.username, AuditLog.details).where(AuditLog.action == "view")
        ).one()
    assert row.username == "doc" and "patient timeline" in row.details


def test_an_acknowledgement_is_written_with_its_audit_row_and_clears_the_worklist_state(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    before = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW)
    assert before.status["acknowledged"] is False
    assert worklist(treated, viewer=SYSTEM, timezone="UTC", now=NOW)["acknowledged"].eq(False).all()
    # (after the import's status, which was computed at the clock's time)
    done = datetime.now(UTC)
    flags = acknowledge(treated, viewer=CLINICIAN, patient_key=key, comment="  Seen; repeat CBC  ", now=done)
    assert "neutropenia" in flags
    view = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=done)
    assert view.status["acknowledged"] is True
    assert view.acknowledgements[["username", "comment"]].values.tolist() == [["doc", "Seen; repeat CBC"]]
    assert _audited(treated)[-1] == "acknowledge"


def _acknowledge_as_shown(store, key: int, flags, changed_at, now: datetime | None = None) -> str:
    """An acknowledgement from a page that showed ``flags``, a flag last appearing or worsening at
    ``changed_at``."""
    return acknowledge(
        store,
        viewer=CLINICIAN,
        patient_key=key,
        comment="seen",
        now=now or datetime.now(UTC),
        seen=flags,
        seen_changed_at=changed_at,
    )


def test_flags_changed_since_they_were_shown_are_not_acknowledged(treated) -> None:
    """A recompute (a new result analysed) between the page and the click: nothing is acknowledged, and
    the person is told to look again."""
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    status = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW).status
    shown, changed = list(status["flags"]), status["flags_changed_at"]
    for seen, seen_changed_at in ((shown[1:], changed), (shown, None), (shown, changed - timedelta(hours=1))):
        with pytest.raises(ValueError, match="flags changed since this page showed them"):
            _acknowledge_as_shown(treated, key, seen, seen_changed_at, now=NOW)
    with treated() as session:
        assert session.scalar(select(func.count()).select_from(Acknowledgement)) == 0
    assert _audited(treated) == ["import", "import"]
    # (the time as the store gives it, or as the page read it)
    assert "neutropenia" in _acknowledge_as_shown(treated, key, shown, changed.to_pydatetime())


def test_a_grade_that_rose_with_the_same_flags_is_not_acknowledged_unseen(treated, tmp_path: Path) -> None:
    """The page showed ANC grade 3; a new count at grade 4 raises no other flag, but it is a worsening
    nobody saw: the acknowledgement made from that page is refused; made from the new page, it lands."""
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")

    def count_on(day: str, anc: str, name: str) -> None:
        results = tmp_path / name
        results.write_text(
            "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
            f"MRN1001,{day}T08:00:00Z,751-8,{anc},K/uL,1.8,7.7,CENTRAL,ACC-{name},final\n"
        )
        import_path(treated, results, options=ImportOptions(imported_by="test", site_timezone="UTC"))

    count_on("2026-03-18", "0.55", "a.csv")  # grade 3, as before
    shown = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW).status
    count_on("2026-03-19", "0.48", "b.csv")  # grade 4
    now = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW).status
    assert (shown["latest_anc_grade"], now["latest_anc_grade"]) == (3, 4)
    assert now["flags"] == shown["flags"], "the same flags: only the grade rose"
    assert now["flags_changed_at"] > shown["flags_changed_at"]
    with pytest.raises(
        ValueError, match=r"since this page showed them \(ANC CTCAE grade 3 -> 4\); the flags"
    ):
        _acknowledge_as_shown(treated, key, shown["flags"], shown["flags_changed_at"], now=NOW)
    with treated() as session:
        assert session.scalar(select(func.count()).select_from(Acknowledgement)) == 0
    _acknowledge_as_shown(treated, key, now["flags"], now["flags_changed_at"])
    after = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW).status
    assert after["acknowledged"] is True


@pytest.mark.parametrize(
    ("viewer", "fields", "error"),
    [
        (Viewer("reader", "viewer", None), {"comment": "seen"}, PermissionError),
        (Viewer("other", "clinician", (999,)), {"comment": "seen"}, PatientNotFound),
        (CLINICIAN, {"comment": "x" * 2001}, ValueError),
    ],
)
def test_a_refused_acknowledgement_writes_nothing(treated, viewer, fields, error) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    with pytest.raises(error):
        acknowledge(treated, viewer=viewer, patient_key=key, now=NOW, **fields)
    with treated() as session:
        assert session.scalar(select(func.count()).select_from(Acknowledgement)) == 0
    assert _audited(treated) == ["import", "import"]


def test_a_chemotherapy_added_starts_a_cycle_and_a_bad_one_is_refused(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN2002")
    event = {
        "kind": "chemotherapy",
        "start": NOW - timedelta(days=2),
        "end": None,
        "details": "",
        "now": NOW,
        "timezone": "UTC",
    }
    with pytest.raises(ValueError, match="label of 1 to"):
        add_event(treated, viewer=CLINICIAN, patient_key=key, label="  ", **event)
    with pytest.raises(ValueError, match="cannot end before it starts"):
        add_event(
            treated,
            viewer=CLINICIAN,
            patient_key=key,
            label="C1",
            **{**event, "end": NOW - timedelta(days=3)},
        )
    add_event(treated, viewer=CLINICIAN, patient_key=key, label=" Docetaxel C1 ", **event)
    view = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW)
    assert view.events["label"].tolist() == ["Docetaxel C1"]
    assert (view.status["cycle"], view.status["cycle_day"]) == (1, 2)  # the status was recomputed
    assert key in treated_patients(treated, viewer=SYSTEM)
    assert _audited(treated)[-1] == "add_event"


def test_a_patient_range_recomputes_the_limit_and_ending_it_keeps_the_record(treated) -> None:
    key = find_patient(treated, viewer=SYSTEM, patient_id="MRN1001")
    range_of = {
        "analyte": "wbc",
        "high": 9.66,
        "reason": "Duffy-null phenotype confirmed",
        "now": NOW,
        "timezone": "UTC",
    }
    with pytest.raises(ValueError, match="needs a reason"):
        set_patient_range(treated, viewer=CLINICIAN, patient_key=key, low=3.0, **{**range_of, "reason": " "})
    set_patient_range(treated, viewer=CLINICIAN, patient_key=key, low=3.0, **range_of)
    status = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW).status
    assert status["latest_wbc_lln"] == 3.0 and "leukopenia" not in status["flags"]
    set_patient_range(treated, viewer=CLINICIAN, patient_key=key, low=None, **range_of)
    view = patient_view(treated, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW)
    assert view.status["latest_wbc_lln"] == 4.0 and "leukopenia" in view.status["flags"]
    assert view.ranges["is_active"].tolist() == [False]
    assert _audited(treated)[-2:] == ["set_patient_range", "end_patient_range"]


def test_the_patient_list_counts_days_in_the_sites_zone(treated) -> None:
    # The last CBC: 16 March 08:40 UTC, 21:40 in Auckland. At 12:00 UTC it is 17 March there.
    noon = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    days = {
        zone: patient_list(treated, viewer=SYSTEM, timezone=zone, now=noon)
        .set_index("patient_id")
        .loc["MRN1001", "days_since_cbc"]
        for zone in ("UTC", "Pacific/Auckland")
    }
    assert days == {"UTC": 0, "Pacific/Auckland": 1}


def test_alerts_list_the_flags_that_appeared_since_a_time_and_still_hold(treated) -> None:
    found = alerts(
        treated, viewer=SYSTEM, since=datetime.now(UTC) - timedelta(days=1), timezone="UTC", now=NOW
    )
    assert found["patient_id"].tolist()[0] == "MRN1001" and found.loc[0, "grade"] == 3
    assert alerts(
        treated, viewer=SYSTEM, since=datetime.now(UTC) + timedelta(days=1), timezone="UTC", now=NOW
    ).empty
