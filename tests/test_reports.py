"""Printed reports: a patient's summary and a team's handover as PDF files, read back as a person reads them.

Each PDF is turned into text by poppler's ``pdftotext`` and its page size read by ``pdfinfo``: the tests
look for what a clinician must find on paper (identifiers, counts, flags, the disclaimer, page numbers)
and for what must never print ("nan", "None", another team's patient).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from db.store import open_store
from monitor.analysis.flags import flag_label
from services.accounts import SYSTEM, assign_patient
from services.patients import PatientNotFound, find_patient
from services.report_html import DISCLAIMER
from services.reports import TeamNotFound, handover, patient_summary
from services.worklist import treated_patients, worklist
from tests.conftest import DATA
from tests.test_cli import monitor

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
    reason="poppler-utils (pdftotext, pdfinfo) is missing: `make printing` installs it",
)

# The demo cohort's anchor: its patients' last counts are days before this.
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
# What a missing value must never print as.
UNPRINTABLE = re.compile(r"\bnan\b|\bNone\b|\bNaT\b|<NA>|\bnull\b")


def pdf_text(pdf: bytes, folder: Path, name: str = "report", mode: str = "-layout") -> str:
    """The PDF's text: as laid out on the page (``-layout``), or in the order it was drawn (``-raw``: a
    cell's wrapped lines one after the other)."""
    path = folder / f"{name}.pdf"
    path.write_bytes(pdf)
    return file_text(path, mode)


def exports(url: str) -> list[tuple[str, str | None, str]]:
    """The audit trail's exports, oldest first: who, which patient (identifier), what."""
    with open_store(url, timezone="UTC")() as session:
        rows = session.execute(
            text(
                "SELECT a.username, p.mrn, a.details FROM audit_log a "
                "LEFT JOIN patient p ON p.id = a.patient_id WHERE a.action = 'export' ORDER BY a.id"
            )
        ).all()
    return [(who, mrn, json.loads(details)["what"]) for who, mrn, details in rows]


def file_text(path: Path, mode: str = "-layout") -> str:
    """A PDF file's text (``pdf_text``)."""
    return subprocess.run(
        ["pdftotext", mode, str(path), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def page_size(path: Path) -> str:
    """The first page's size as pdfinfo prints it ("595.276 x 841.89 pts (A4)")."""
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True, timeout=60)
    return next(line for line in info.stdout.splitlines() if line.startswith("Page size:"))


def flat(words: str) -> str:
    """Text with its line breaks and runs of spaces as one space: a sentence wrapped on paper reads whole."""
    return " ".join(words.split())


@pytest.fixture
def demo(demo_copy):
    return demo_copy(NOW)


def test_summaries_of_demo_patients_of_each_kind_print_what_the_page_shows(demo, tmp_path: Path) -> None:
    listed = worklist(demo, viewer=SYSTEM, timezone="UTC", now=NOW)
    flagged = listed["flags"].map(len).gt(0)
    treated = listed["patient_key"].isin(treated_patients(demo, viewer=SYSTEM))
    kinds = {
        "in chemotherapy": listed[listed["cycle"].notna()].iloc[0],
        "flagged, never treated": listed[flagged & ~treated].iloc[0],
        "no flag": listed[~flagged].iloc[0],
    }
    printed = {}
    for kind, row in kinds.items():
        made = printed[kind] = patient_summary(
            demo,
            viewer=SYSTEM,
            patient_key=int(row["patient_key"]),
            timezone="UTC",
            now=NOW,
            printed_by="dr.tester",
            site="Test hospital",
        )
        assert made.pdf.startswith(b"%PDF-") and 1 <= made.pages <= 2, (kind, made.pages)
        words = pdf_text(made.pdf, tmp_path, kind.replace(" ", "-").replace(",", ""))
        said = flat(words)
        assert row["patient_id"] in said and row["name"] in said, kind
        assert "SYNTHETIC DEMO PATIENT" in said and "Test hospital" in said and "dr.tester" in said
        assert flat(DISCLAIMER) in said and f"Page 1 of {made.pages}" in said
        assert "Latest counts" in said and "Limits that apply" in said and "Grade" in said
        for flag in row["flags"]:
            assert flag_label(flag) in said, (kind, flag)
        if not row["flags"]:
            assert "No flag raised." in said
        assert not UNPRINTABLE.search(words), (kind, UNPRINTABLE.findall(words))
        assert ("Chemotherapy cycles" in said) == (
            row["patient_key"] in set(listed.loc[treated, "patient_key"])
        )
    # The chart is text too: its axes name the counts.
    assert "WBC (x10^9/L)" in said and "ANC (x10^9/L)" in said
    # The first page of the treated patient's summary as an image (the README's, with
    # MONITOR_SCREENSHOT_DIR=docs/screenshots): poppler draws it.
    image = _first_page_png(printed["in chemotherapy"].pdf, tmp_path, "report-summary")
    assert image.read_bytes().startswith(b"\x89PNG")


def _first_page_png(pdf: bytes, tmp_path: Path, name: str) -> Path:
    """The first page drawn by pdftoppm at 80 dpi, into MONITOR_SCREENSHOT_DIR when set."""
    folder = Path(os.environ.get("MONITOR_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(pdf)
    stem = folder / name
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(source), str(stem)],
        check=True,
        timeout=60,
    )
    return stem.with_suffix(".png")


def test_the_latest_wbc_prints_with_its_grade_and_the_limit_that_applies(demo, tmp_path: Path) -> None:
    listed = worklist(demo, viewer=SYSTEM, timezone="UTC", now=NOW)
    row = listed[listed["latest_wbc_grade"].fillna(0).ge(1)].iloc[0]
    made = patient_summary(
        demo, viewer=SYSTEM, patient_key=int(row["patient_key"]), timezone="UTC", now=NOW, printed_by="x"
    )
    line = next(line for line in pdf_text(made.pdf, tmp_path).splitlines() if line.strip().startswith("WBC "))
    value = f"{row['latest_wbc']:g}"
    assert re.search(rf"\b{re.escape(value)} L\b", line), line
    assert f"{row['latest_wbc_lln']:g}–" in line and line.rstrip().endswith(str(int(row["latest_wbc_grade"])))


def test_letter_paper_and_a_since_date(demo, tmp_path: Path) -> None:
    listed = worklist(demo, viewer=SYSTEM, timezone="UTC", now=NOW)
    row = listed[listed["cycle"].notna()].iloc[0]
    key = int(row["patient_key"])
    a4 = patient_summary(demo, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW, printed_by="x")
    letter = patient_summary(
        demo,
        viewer=SYSTEM,
        patient_key=key,
        timezone="UTC",
        now=NOW,
        printed_by="x",
        paper="letter",
        since=datetime(2026, 10, 1, tzinfo=UTC),
    )
    (tmp_path / "a4.pdf").write_bytes(a4.pdf)
    (tmp_path / "letter.pdf").write_bytes(letter.pdf)
    assert "(A4)" in page_size(tmp_path / "a4.pdf") and "(letter)" in page_size(tmp_path / "letter.pdf")
    said = flat(pdf_text(letter.pdf, tmp_path, "letter"))
    assert "WBC and ANC, 2026-10-01 to 2026-11-20" in said
    # The panels and events printed are those from the date on.
    printed_dates = re.findall(r"\b(20\d\d-\d\d-\d\d) \d\d:\d\d\b", re.split(r"Last \d+ panels?", said)[1])
    assert printed_dates and min(printed_dates) >= "2026-10-01", printed_dates
    with pytest.raises(ValueError, match="paper"):
        patient_summary(
            demo, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW, printed_by="x", paper="A3"
        )


def _url(store) -> str:
    return store.kw["bind"].url.render_as_string(hide_password=False)


def _members(store, team: str) -> set[str]:
    with store() as session:
        rows = session.execute(
            text(
                "SELECT p.mrn FROM patient p JOIN patient_team pt ON pt.patient_id = p.id "
                "JOIN team t ON t.id = pt.team_id WHERE t.code = :team"
            ),
            {"team": team},
        )
        return {mrn for (mrn,) in rows}


def test_a_user_outside_the_patients_teams_gets_the_pages_refusal_and_no_file(demo, tmp_path: Path) -> None:
    url = _url(demo)
    oncology_only = sorted(_members(demo, "oncology") - _members(demo, "internal-medicine"))[0]
    out = tmp_path / "refused.pdf"
    refused = monitor("report", oncology_only, "--output", str(out), "--user", "medicine", url=url)
    assert refused.returncode == 2 and "no patient" in refused.stderr and not out.exists()
    unknown = monitor("report", "NO-SUCH-MRN", "--output", str(out), url=url)
    assert unknown.returncode == 2 and "no patient" in unknown.stderr and not out.exists()
    with pytest.raises(PatientNotFound):
        viewer = _viewer(demo, "medicine")
        key = find_patient(demo, viewer=SYSTEM, patient_id=oncology_only)
        patient_summary(demo, viewer=viewer, patient_key=key, timezone="UTC", now=NOW, printed_by="x")


def _viewer(store, username: str):
    from services.accounts import viewer_named

    return viewer_named(store, username=username)


def test_a_printed_summary_is_audited_as_an_export_of_the_patient(demo, tmp_path: Path) -> None:
    url = _url(demo)
    patient = sorted(_members(demo, "oncology"))[0]
    out = tmp_path / "summary.pdf"
    done = monitor(
        "report", patient, "--output", str(out), "--user", "oncology", "--paper", "letter", url=url
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF-") and patient in done.stdout
    assert not list(tmp_path.glob(".*.part")), "the partial file is moved into place"
    rows = [(who, what) for who, mrn, what in exports(url) if mrn == patient]
    nowhere = monitor("report", patient, "--output", str(tmp_path / "no-such-folder" / "x.pdf"), url=url)
    assert nowhere.returncode == 2 and "no folder" in nowhere.stderr
    rows = [(who, what) for who, mrn, what in exports(url) if mrn == patient]
    assert len(rows) == 1  # a refused file was not recorded as exported
    who, what = rows[0]
    assert who.startswith("cli:") and "patient summary (PDF" in what and "(as oncology)" in what


def test_the_handover_lists_the_teams_patients_only_in_order_and_audits_each(demo, tmp_path: Path) -> None:
    url = _url(demo)
    oncology, medicine = _members(demo, "oncology"), _members(demo, "internal-medicine")
    out = tmp_path / "handover.pdf"
    done = monitor("handover", "--team", "oncology", "--output", str(out), "--user", "oncology", url=url)
    assert done.returncode == 0, done.stderr
    assert "(A4 landscape)" in page_size(out) or "841.89 x 595.276" in page_size(out)
    words = file_text(out)
    printed = set(re.findall(r"\bDEMO-\d{4}\b", words))
    assert printed == oncology, (printed - oncology, oncology - printed)
    assert not (medicine - oncology) & printed
    assert not UNPRINTABLE.search(words)
    # In the worklist's order: the first row is the oncology worklist's first patient.
    members = _viewer(demo, "oncology")
    first = worklist(demo, viewer=members, timezone="UTC", now=NOW)["patient_id"].iloc[0]
    assert re.findall(r"\bDEMO-\d{4}\b", words)[0] == first
    exported = [mrn for _, mrn, what in exports(url) if "handover oncology" in what]
    assert set(exported) == oncology and len(exported) == len(oncology)
    _first_page_png(out.read_bytes(), tmp_path, "report-handover")
    refused = monitor("handover", "--team", "oncology", "--output", str(out), "--user", "medicine", url=url)
    assert refused.returncode == 2 and "no team 'oncology'" in refused.stderr
    with pytest.raises(TeamNotFound):
        handover(demo, viewer=SYSTEM, team="no-such-team", timezone="UTC", now=NOW, printed_by="x")


def _bundle(patients: list[tuple[str, str, str]], results: dict[str, list[tuple[str, float]]]) -> dict:
    """A FHIR transaction bundle: each patient (MRN, family, given) and their WBC/ANC results."""
    codes = {"wbc": ("6690-2", "Leukocytes"), "anc": ("751-8", "Neutrophils")}
    entries = []
    for mrn, family, given in patients:
        entries.append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": mrn,
                    "identifier": [{"system": "urn:test:mrn", "value": mrn}],
                    "name": [{"family": family, "given": [given]}],
                    "gender": "female",
                    "birthDate": "1970-01-01",
                }
            }
        )
        for number, (when, wbc) in enumerate(results.get(mrn, [])):
            for analyte, value in (("wbc", wbc), ("anc", round(wbc * 0.55, 2))):
                code, name = codes[analyte]
                entries.append(
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "id": f"{mrn}-{number}-{analyte}",
                            "status": "final",
                            "code": {
                                "coding": [{"system": "http://loinc.org", "code": code, "display": name}]
                            },
                            "subject": {"reference": f"Patient/{mrn}"},
                            "effectiveDateTime": when,
                            "valueQuantity": {"value": value, "unit": "10*3/uL", "code": "10*3/uL"},
                            "referenceRange": [{"low": {"value": 4.0 if analyte == "wbc" else 1.8}}],
                        }
                    }
                )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


AWKWARD = [
    ("HTML-1", "<b>Bold</b> & <script>x</script>", "Ann"),
    ("MD-2", "*Star* _under_ #1 [link](x)", "Bo"),
    ("ACCENT-3", "Ñúñez-Çelik", "Zoë"),
    ("RTL-4", "כהן", "שרה"),
    ("ONE-5", "Single", "Result"),
]


def test_awkward_names_and_a_single_result_print_as_written(upgraded: str, tmp_path: Path) -> None:
    weeks = [f"2026-11-{day:02d}T08:00:00Z" for day in (2, 9, 16)]
    results = {mrn: [(when, 3.1 + i / 10) for i, when in enumerate(weeks)] for mrn, _, _ in AWKWARD[:4]}
    results["ONE-5"] = [("2026-11-16T08:00:00Z", 2.4)]
    bundle = tmp_path / "names.json"
    bundle.write_text(json.dumps(_bundle(AWKWARD, results)), encoding="utf-8")
    imported = monitor("import", str(bundle), url=upgraded)
    assert imported.returncode == 0, imported.stderr
    for mrn, family, given in AWKWARD:
        out = tmp_path / f"{mrn}.pdf"
        done = monitor("report", mrn, "--output", str(out), url=upgraded)
        assert done.returncode == 0, (mrn, done.stderr)
        words = file_text(out)
        said = flat(words)
        assert mrn in said and not UNPRINTABLE.search(words), mrn
        if mrn == "RTL-4":
            # Hebrew keeps its letters (their order on the line is the reader's, right to left).
            assert set(family) <= set(said) and set(given) <= set(said)
        else:
            assert family in said and given in said, (mrn, said[:300])
        assert "SYNTHETIC" not in said
    # The handover draws the same names as written, in a team of their own.
    store = open_store(upgraded, timezone="UTC")
    for mrn, _, _ in AWKWARD:
        assign_patient(store, viewer=SYSTEM, patient_id=mrn, team="ward-7", now=NOW)
    listed = handover(store, viewer=SYSTEM, team="ward-7", timezone="UTC", now=NOW, printed_by="x")
    drawn = flat(pdf_text(listed.pdf, tmp_path, "handover", mode="-raw"))
    for mrn, family, given in AWKWARD:
        assert mrn in drawn, mrn
        if mrn == "RTL-4":
            assert set(family) <= set(drawn) and set(given) <= set(drawn)
        else:
            assert family in drawn and given in drawn, mrn
    single = flat(file_text(tmp_path / "ONE-5.pdf"))
    assert "2.4 L" in said or "2.4 L" in single
    assert "Last 1 panel in this period" in single


def test_a_panel_with_nothing_low_says_so_before_the_lineages_it_did_not_measure(
    upgraded: str, tmp_path: Path
) -> None:
    """A normal WBC and ANC: the pattern's line says nothing is low first, so that the lineages the panel did
    not measure are not read as a finding."""
    bundle = tmp_path / "normal.json"
    normal = {"NORM-6": [("2026-11-16T08:00:00Z", 6.0)]}
    bundle.write_text(json.dumps(_bundle([("NORM-6", "Normal", "Nora")], normal)), encoding="utf-8")
    assert monitor("import", str(bundle), url=upgraded).returncode == 0
    out = tmp_path / "normal.pdf"
    assert monitor("report", "NORM-6", "--output", str(out), url=upgraded).returncode == 0
    said = flat(file_text(out))
    assert "No flag raised." in said
    assert "Pattern: no count below its limit; not measured: ALC, Hb, platelets" in said, said


def test_the_shared_sample_files_patients_print(upgraded: str, tmp_path: Path) -> None:
    """Messages written by others (NIST's HL7 v2 CBC, HL7's US Core example) through the importer, then
    printed: their patients' identifiers and counts reach the page."""
    for name in ("nist-lri-cbc.hl7", "us-core-observation-cbc-leukocytes.json"):
        done = monitor("import", str(DATA / "external" / name), url=upgraded)
        # (NIST's message holds a haemoglobin in g/mL that is refused: the rest lands, exit status 1.)
        assert done.returncode in (0, 1) and "accepted" in done.stdout, (name, done.stderr)
    listed = json.loads(monitor("patients", "--format", "json", url=upgraded).stdout)
    assert len(listed) >= 2
    for patient in listed:
        out = tmp_path / "sample.pdf"
        done = monitor("report", patient["patient_id"], "--output", str(out), url=upgraded)
        assert done.returncode == 0, done.stderr
        words = file_text(out)
        said = flat(words)
        assert patient["patient_id"] in said and not UNPRINTABLE.search(words)
        if patient["latest_wbc"] is not None:
            assert f"{patient['latest_wbc']:g}" in said


def test_an_identifier_cannot_rewrite_the_page_it_prints_on(upgraded: str, tmp_path: Path) -> None:
    """An identifier goes into the page's running footer (CSS): one holding "</style>" and a rule that
    hides the counts prints as written, and the counts, the disclaimer and the page numbers still print."""
    hostile = "X</style><style>.low{display:none}</style><style>"
    bundle = tmp_path / "hostile.json"
    bundle.write_text(
        json.dumps(_bundle([(hostile, "Doe", "Jo")], {hostile: [("2026-11-16T08:00:00Z", 1.9)]})),
        encoding="utf-8",
    )
    assert monitor("import", str(bundle), url=upgraded).returncode == 0
    out = tmp_path / "hostile.pdf"
    done = monitor("report", hostile, "--output", str(out), url=upgraded)
    assert done.returncode == 0, done.stderr
    said = flat(file_text(out))
    assert "1.9 L" in said and "1.04 L" in said  # the WBC and ANC the rule would have hidden
    assert flat(DISCLAIMER) in said and "Page 1 of" in said and hostile in said


def test_events_after_the_last_count_print_and_a_bare_since_date_is_the_sites_midnight(
    upgraded: str, tmp_path: Path
) -> None:
    from services.patient_actions import add_event

    results = {"LATE-1": [("2026-11-02T08:00:00Z", 3.4), ("2026-11-09T08:00:00Z", 2.9)]}
    bundle = tmp_path / "late.json"
    bundle.write_text(json.dumps(_bundle([("LATE-1", "Late", "Ed")], results)), encoding="utf-8")
    assert monitor("import", str(bundle), url=upgraded).returncode == 0
    store = open_store(upgraded, timezone="UTC")
    key = find_patient(store, viewer=SYSTEM, patient_id="LATE-1")
    add_event(
        store,
        viewer=SYSTEM,
        patient_key=key,
        kind="chemotherapy",
        start=datetime(2026, 11, 18, 10, tzinfo=UTC),
        end=None,
        label="Docetaxel 75 mg/m2, cycle 1",
        details="",
        now=NOW,
        timezone="UTC",
    )
    made = patient_summary(store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW, printed_by="x")
    said = flat(pdf_text(made.pdf, tmp_path))
    assert "Docetaxel 75 mg/m2, cycle 1" in said and "2026-11-18 10:00" in said
    # --since 2026-11-05 in New York is 05:00 UTC that day: the chart starts on the site's 5 November.
    out = tmp_path / "since.pdf"
    done = monitor(
        "report",
        "LATE-1",
        "--since",
        "2026-11-05",
        "--output",
        str(out),
        url=upgraded,
        zone="America/New_York",
    )
    assert done.returncode == 0, done.stderr
    words = flat(file_text(out))
    assert "WBC and ANC, 2026-11-05 to" in words
    future = monitor("report", "LATE-1", "--since", "2026-12-30", "--output", str(out), url=upgraded)
    assert future.returncode == 0
    words = flat(file_text(out))
    assert "No WBC or ANC from 2026-12-30" in words


def test_a_handover_cell_never_runs_into_the_next_column() -> None:
    """A long identifier or name without spaces is broken to fit its column; a name in a script the list's
    font lacks says so rather than printing empty boxes."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from services.report_handover import SIZE, _cell_lines, _register_fonts

    _register_fonts()
    width = 90.0
    lines = _cell_lines("A" * 60 + "\n" + "MRN-" + "9" * 50 + ", 40 F", width, rtl=True)
    assert len(lines) > 2 and all(stringWidth(line, "DejaVuSans", SIZE) <= width - 5 for line in lines)
    assert "".join(lines).startswith("A" * 60)
    cjk = _cell_lines("山田 太郎\nJP-1, 40 F", 300.0, rtl=True)
    assert "script this list's font lacks" in cjk[0] and cjk[-1] == "JP-1, 40 F"


FIRST = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
SAFE-1,2026-11-10T08:00:00Z,wbc,3.0,10^9/L,4.0,11.0,CENTRAL,S-1,final
SAFE-1,2026-11-10T08:00:00Z,anc,0.4,10^9/L,1.8,7.7,CENTRAL,S-1,final
SAFE-1,2026-11-10T08:00:00Z,plt,60,10^9/L,150,450,CENTRAL,S-1,final
SAFE-1,2026-11-18T08:00:00Z,wbc,3.2,10^9/L,4.0,11.0,CENTRAL,S-2,preliminary
SAFE-1,2026-11-18T08:00:00Z,alc,5.2,10^9/L,1.0,4.8,CENTRAL,S-2,final
SAFE-1,2026-11-19T08:00:00Z,temp,38.1,degC,,,WARD,V-1,final
SAFE-1,2026-11-19T12:00:00Z,temp,37.8,degC,,,WARD,V-2,final
"""
# The lab corrects the first panel's ANC.
CORRECTION = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
SAFE-1,2026-11-10T08:00:00Z,anc,0.45,10^9/L,1.8,7.7,CENTRAL,S-1,corrected
"""


def test_what_a_reader_must_not_miss_prints(upgraded: str, tmp_path: Path) -> None:
    """Temperatures, a preliminary count, a corrected one with the value it replaced, a count not repeated
    in the last CBC, and a medication begun before the period printed."""
    from services.patient_actions import add_event

    for name, text_ in (("first.csv", FIRST), ("correction.csv", CORRECTION)):
        path = tmp_path / name
        path.write_text(text_, encoding="utf-8")
        done = monitor("import", str(path), url=upgraded)
        assert done.returncode == 0, done.stderr
    store = open_store(upgraded, timezone="UTC")
    key = find_patient(store, viewer=SYSTEM, patient_id="SAFE-1")
    add_event(
        store,
        viewer=SYSTEM,
        patient_key=key,
        kind="medication",
        start=datetime(2026, 10, 1, tzinfo=UTC),
        end=None,
        label="Clozapine 200 mg",
        details="",
        now=NOW,
        timezone="UTC",
    )
    for day in (1, 22):  # two doses before the period: moments, never "ongoing"
        add_event(
            store,
            viewer=SYSTEM,
            patient_key=key,
            kind="chemotherapy",
            start=datetime(2026, 10, day, 9, tzinfo=UTC),
            end=None,
            label=f"Docetaxel dose of 2026-10-{day:02d}",
            details="",
            now=NOW,
            timezone="UTC",
        )
    made = patient_summary(
        store,
        viewer=SYSTEM,
        patient_key=key,
        timezone="UTC",
        now=NOW,
        printed_by="x",
        since=datetime(2026, 11, 15, tzinfo=UTC),
    )
    said = flat(pdf_text(made.pdf, tmp_path, mode="-raw"))  # notes wrap in their cells: drawn order
    assert (
        "last chemotherapy before this period: 2026-10-22, Docetaxel dose of 2026-10-22 (1 earlier dose)"
        in said
    )
    assert "chemotherapy from" not in said
    assert "Temperatures, last 72 hours (highest 38.1 °C at 2026-11-19 08:00)" in said
    assert "preliminary: final awaited" in said
    assert "5.2 H" in said  # above the upper limit, marked in the latest counts as in the flowsheet
    assert "corrected by the lab from 0.4" in said and "not in the last CBC" in said
    assert "Before this period" in said and "Clozapine 200 mg" in said and "(ongoing)" in said
    assert "1 earlier panel not printed" in said


def test_a_spike_does_not_squash_the_nadir_on_the_chart() -> None:
    """A WBC of 48 on G-CSF beside a nadir of 0.3: the scale stays the band's, the spike is drawn at the top
    edge with its value."""
    from services.report_chart import chart_svg

    times = pd.to_datetime(["2026-11-01T08:00Z", "2026-11-05T08:00Z", "2026-11-09T08:00Z"], utc=True)
    results = pd.DataFrame(
        {
            "collected_at": times,
            "analyte": "wbc",
            "value": [5.0, 48.0, 0.3],
            "lln": 4.0,
            "uln": 11.0,
            "below_limit": [False, False, True],
            "status": "final",
        }
    )
    svg = chart_svg(
        results,
        pd.DataFrame(columns=["kind", "start_at"]),
        start=times[0] - pd.Timedelta(days=1),
        end=times[-1] + pd.Timedelta(days=1),
        timezone="UTC",
    )
    assert ">48</text>" in svg and "<polygon" in svg
    ticks = [float(t) for t in re.findall(r'text-anchor="end" fill="#555555">([\d.]+)<', svg)]
    assert max(ticks) <= 40, ticks  # not 50 or 60: the nadir keeps its height


CHILD = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status,birth_date
BABY-1,2026-11-16T08:00:00Z,wbc,7.0,10^9/L,,,NORTH,B-1,final,2026-03-01
BABY-1,2026-11-16T08:00:00Z,anc,1.2,10^9/L,,,NORTH,B-1,final,2026-03-01
"""


def test_a_childs_anc_below_the_interval_for_age_says_it_is_not_neutropenia(
    upgraded: str, tmp_path: Path
) -> None:
    path = tmp_path / "child.csv"
    path.write_text(CHILD, encoding="utf-8")
    assert monitor("import", str(path), url=upgraded).returncode == 0
    store = open_store(upgraded, timezone="UTC")
    key = find_patient(store, viewer=SYSTEM, patient_id="BABY-1")
    made = patient_summary(store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=NOW, printed_by="x")
    said = flat(pdf_text(made.pdf, tmp_path, mode="-raw"))  # a note wraps in its cell: read in drawn order
    assert "2026-03-01, 8 months" in said
    assert "below the interval for age, not neutropenia (cut-off 1)" in said
    assert "(default for the age)" in said
