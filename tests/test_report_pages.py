"""The printed reports from the dashboard: "Print summary (PDF)" on the patient page and the chosen team's
"Handover (PDF)" on the worklist, rendered by AppTest; each PDF made only when asked for, and audited then."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from db.store import open_store
from services.accounts import SYSTEM, assign_patient
from tests.test_dashboard import _app, _clear_caches, _open_patient  # noqa: F401 - the autouse fixture
from tests.test_reports import exports

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils is missing: `make printing` installs it"
)


def _words(pdf: bytes, folder: Path) -> str:
    path = folder / "page.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True).stdout


def test_the_patient_page_prints_its_summary_when_asked(imported_store, offered_downloads, tmp_path) -> None:
    at = _open_patient(_app().run())
    assert not at.exception
    make = offered_downloads["Print summary (PDF)"]
    assert callable(make) and exports(imported_store) == []  # drawing the button prints nothing
    pdf = make()
    assert pdf.startswith(b"%PDF-")
    words = _words(pdf, tmp_path)
    assert "MRN1001" in words and "Latest counts" in words and "Decision support, not a diagnosis" in words
    assert exports(imported_store) == [("admin", "MRN1001", "patient summary (PDF)")]


def test_the_worklist_prints_the_chosen_teams_handover(imported_store, offered_downloads, tmp_path) -> None:
    store = open_store(imported_store, timezone="UTC")
    from datetime import UTC, datetime

    assign_patient(store, viewer=SYSTEM, patient_id="MRN1001", team="oncology", now=datetime.now(UTC))
    at = _app().run()
    assert not at.exception
    assert "Handover of" not in " ".join(offered_downloads)  # all teams: no handover offered
    assert any("choose a team above" in caption.value for caption in at.caption)
    at.selectbox(key="worklist_team").select("Oncology").run()
    assert not at.exception
    make = offered_downloads["Handover of Oncology (PDF)"]
    words = _words(make(), tmp_path)
    assert "Handover: Oncology" in words and "MRN1001" in words
    # Only the team's patients: the other imported patient is in no team.
    assert "MRN2002" not in words
    assert exports(imported_store) == [("admin", "MRN1001", "handover oncology (PDF)")]


def test_a_summary_asked_for_after_signing_out_is_not_printed(imported_store, offered_downloads) -> None:
    at = _open_patient(_app().run())
    make = offered_downloads["Print summary (PDF)"]
    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Sign in"
    with pytest.raises(PermissionError):
        make()
    assert exports(imported_store) == []
