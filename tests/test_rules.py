"""The site's rules and lab ranges as administrators change them (services.rules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM, Viewer
from db.models import AuditLog
from db.queries import patient_list
from services.imports import ImportOptions, import_path
from services.rules import change_settings, lab_range_list, set_lab_range, set_setting, site_rules
from tests.conftest import DATA

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ADMIN = Viewer("admin", "admin", None)
CLINICIAN = Viewer("doc", "clinician", (1,))


def _audited(store: sessionmaker[Session]) -> int:
    with store() as session:
        return int(session.scalar(select(func.count()).select_from(AuditLog)) or 0)


def _flags(store: sessionmaker[Session], patient: str) -> str:
    with store() as session:
        return str(patient_list(session, viewer=SYSTEM).set_index("patient_id").loc[patient, "flags"])


def test_a_changed_rule_is_stored_audited_and_every_status_follows_it(store: sessionmaker[Session]) -> None:
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert "significant_drop" in _flags(store, "MRN1001")
    before = _audited(store)
    # A drop is significant beyond the reference change value: with z = 10 none of these is.
    rules = set_setting(store, "grading.rcv_z", 10.0, viewer=ADMIN, now=NOW, timezone="UTC")
    assert rules.grading.rcv_z == 10.0 and site_rules(store) == rules
    assert _audited(store) == before + 1
    assert "significant_drop" not in _flags(store, "MRN1001")
    restored = change_settings(store, {"grading.rcv_z": None}, viewer=ADMIN, now=NOW, timezone="UTC")
    assert restored.overrides == {} and site_rules(store).grading.rcv_z == 1.645
    assert "significant_drop" in _flags(store, "MRN1001")


def test_only_an_administrator_changes_settings_and_nothing_is_written_otherwise(
    store: sessionmaker[Session],
) -> None:
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    before = _audited(store)
    with pytest.raises(PermissionError, match="clinician accounts cannot change the site's settings"):
        set_setting(store, "flags.persistent_min_days", 21, viewer=CLINICIAN, now=NOW, timezone="UTC")
    with pytest.raises(PermissionError):
        set_lab_range(
            store,
            lab="CENTRAL",
            analyte="wbc",
            low=3.9,
            source="x",
            viewer=CLINICIAN,
            now=NOW,
            timezone="UTC",
        )
    with pytest.raises(ValueError, match="whole number"):
        set_setting(store, "flags.persistent_min_days", 2.5, viewer=ADMIN, now=NOW, timezone="UTC")
    with pytest.raises(ValueError, match="no lab with code 'NOWHERE'"):
        set_lab_range(
            store, lab="NOWHERE", analyte="wbc", low=3.9, source="x", viewer=ADMIN, now=NOW, timezone="UTC"
        )
    assert site_rules(store).overrides == {} and lab_range_list(store).empty
    assert _audited(store) == before


def test_a_lab_range_is_set_audited_and_removed(store: sessionmaker[Session]) -> None:
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert lab_range_list(store).empty
    set_lab_range(
        store,
        lab="CENTRAL",
        analyte="wbc",
        low=3.9,
        high=10.5,
        source="handbook",
        viewer=ADMIN,
        now=NOW,
        timezone="UTC",
    )
    listed = lab_range_list(store)
    assert listed[["lab", "analyte", "low", "high", "source"]].values.tolist() == [
        ["CENTRAL", "wbc", 3.9, 10.5, "handbook"]
    ]
    set_lab_range(
        store,
        lab="CENTRAL",
        analyte="wbc",
        low=None,
        source="handbook",
        viewer=ADMIN,
        now=NOW,
        timezone="UTC",
    )
    assert lab_range_list(store).empty
    with store() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.action == "lab_range")).all()
    assert len(actions) == 2


def test_settings_changed_on_a_page_keep_a_change_saved_meanwhile_elsewhere(
    store: sessionmaker[Session],
) -> None:
    """The Settings page sends only what it changed: a change another instance or the command line saved
    after the page read the rules is kept, not reverted to the page's cached copy."""
    page_read = site_rules(store)  # the page's (cached) copy
    set_setting(store, "flags.persistent_min_days", 21, viewer=ADMIN, now=NOW, timezone="UTC")  # elsewhere
    assert page_read.flags.persistent_min_days != 21
    rules = change_settings(store, {"grading.rcv_z": 2.0}, viewer=ADMIN, now=NOW, timezone="UTC")
    assert rules.grading.rcv_z == 2.0 and rules.flags.persistent_min_days == 21
    restored = change_settings(store, {"grading.rcv_z": None}, viewer=ADMIN, now=NOW, timezone="UTC")
    assert restored.overrides == {"flags": {"persistent_min_days": 21}}
