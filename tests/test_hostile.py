"""Hostile files: refused with a clear reason (never an internal error), the store unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from db.migrate import head_revision
from db.models import RejectedRecord, Result
from db.session import make_engine
from services.config import Config
from services.imports import ImportOptions, import_content
from services.store import StoreUnusable, open_store
from tests.conftest import DATA, ROOT

HEADER = b"patient_id,collected_at,analyte,value,unit\n"


@pytest.mark.parametrize(
    ("content", "fmt", "reason"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "fhir", "nested too deeply"),
        (os.urandom(200_000), None, "not UTF-8 text"),
        ("patient_id,collected_at\nJosé,2026\n".encode("latin-1"), None, "not UTF-8 text"),
        (b"MSH|" + b"\x00" * 100, None, "NUL byte"),
        (b"", None, "the file is empty"),
    ],
    ids=["deep-json", "binary", "latin-1", "nul", "empty"],
)
def test_a_hostile_file_is_refused_with_a_reason_and_nothing_lands(store, content, fmt, reason) -> None:
    summary = import_content(
        store, "hostile", content, options=ImportOptions(imported_by="test", site_timezone="UTC", format=fmt)
    )
    assert summary.error is not None and reason in summary.error
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_an_identifier_longer_than_the_store_keeps_is_refused_not_cut(store) -> None:
    content = HEADER + b"A" * 1_000_000 + b",2026-01-01T08:00:00Z,wbc,4,10^9/L\n"
    summary = import_content(
        store, "long.csv", content, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.accepted == 0
    assert summary.rejected["reason"].tolist() == ["patient_id is longer than 64 characters"]
    quoted = HEADER + b'"' + b"A" * 200_000 + b'",2026-01-01T08:00:00Z,wbc,4,10^9/L\n'
    summary = import_content(
        store, "quoted.csv", quoted, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.error is not None and "line 2: cannot be read as CSV" in summary.error


def test_a_utf16_export_with_its_byte_order_mark_is_read(store) -> None:
    text = "patient_id,collected_at,analyte,value,unit\nA1,2026-01-01T08:00:00Z,wbc,4.2,10^9/L\n"
    summary = import_content(
        store,
        "utf16.csv",
        text.encode("utf-16"),
        options=ImportOptions(imported_by="test", site_timezone="UTC"),
    )
    assert summary.error is None and summary.accepted == 1


# Measured in a process of its own, which holds nothing but the file, the store and the code: the peak
# resident memory of this one (``ru_maxrss``) may have been raised by any earlier test.
JUNK_IMPORT = """
import json, resource, sys

from db.store import open_store
from services.imports import ImportOptions, import_content

store = open_store(sys.argv[1], timezone="UTC")
row = b"X," * 5 + b"\\n"
content = b"patient_id,collected_at,analyte,value,unit\\n" + row * (100_000_000 // len(row))
with open("/proc/self/statm") as statm:  # resident now (the peak so far counts the file's making twice)
    resident = int(statm.read().split()[1]) * resource.getpagesize()
options = ImportOptions(imported_by="test", site_timezone="UTC")
summary = import_content(store, "junk.csv", content, options=options)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({"error": summary.error, "grown_mb": (peak - resident) / 2**20}))
"""


def test_a_100_mb_csv_of_junk_lines_keeps_memory_bounded(db_url: str, store) -> None:
    """About 100 MB of unparseable rows: refused row by row, in bounded memory (reported, not timed)."""
    run = subprocess.run(
        [sys.executable, "-c", JUNK_IMPORT, db_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    error, grown_mb = measured["error"], measured["grown_mb"]
    assert error is not None and "records cannot be read" in error
    assert "line 2: expected 5 fields as in the header, found 6" in error
    assert grown_mb < 800, f"peak memory grew by {grown_mb:.0f} MB"
    print(f"peak memory grew by {grown_mb:.0f} MB")


# --- Values the store cannot keep: refused with their record on every store alike (SQLite would keep any
# length, PostgreSQL failed the whole import) ---

OPTIONS = ImportOptions(imported_by="test", site_timezone="UTC")


def _hl7(control: str, patient: str, name: str, value: str) -> str:
    return (
        f"MSH|^~\\&|LIS|LAB|EHR|WARD|20260310081500+0000||ORU^R01|{control}|P|2.5.1\r"
        f"PID|1||{patient}^^^CITY^MR||{name}^Anna\r"
        "OBR|1||ACC-1|CBC|||20260310073000+0000\r"
        f"OBX|1|NM|6690-2^WBC^LN||{value}|10*9/L|4.0-11.0||||F\r"
    )


def _fhir(patient: str, code: str = "6690-2") -> str:
    return json.dumps(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"identifier": {"value": patient}},
            "effectiveDateTime": "2026-03-10T07:30:00Z",
            "valueQuantity": {"value": 4.2, "unit": "10*9/L"},
        }
    )


CSV_GOOD = "P1,2026-03-10T07:30:00Z,wbc,4.2,10^9/L\n"
UNSTORABLE = {
    "hl7-long-name": (
        _hl7("M1", "P1", "Smith", "4.2") + _hl7("M2", "P2", "N" * 201, "4.2"),
        "patient name is longer than 200 characters",
    ),
    "hl7-nul-escape": (
        _hl7("M1", "P1", "Smith", "4.2") + _hl7("M2", "P2", "Jones", "4\\X00\\.2"),
        "value contains a NUL character",
    ),
    "csv-long-number": (
        HEADER.decode() + CSV_GOOD + "P2,2026-03-10T07:30:00Z,wbc," + "0" * 100 + "4.2,10^9/L\n",
        "value is longer than 100 characters",
    ),
    "csv-long-range": (
        HEADER.decode().replace("unit", "unit,ref_low,ref_high")
        + CSV_GOOD.replace("\n", ",4,11\n")
        + "P2,2026-03-10T07:30:00Z,wbc,4.2,10^9/L,"
        + "0" * 60
        + "4,"
        + "0" * 60
        + "11\n",
        "ref_raw is longer than 100 characters",
    ),
    "fhir-nul-patient": (
        _fhir("P1") + "\n" + _fhir("P\x002") + "\n",
        "patient_id contains a NUL character",
    ),
    "fhir-nul-other-code": (
        _fhir("P1") + "\n" + _fhir("P2", code="2345\x00-7") + "\n",
        "code contains a NUL character",
    ),
    "events-long-identifier": (
        "patient_id,kind,start,label\nP1,fever,2026-03-10,38.5\n" + "P" * 65 + ",fever,2026-03-10,38.5\n",
        "patient_id is longer than 64 characters",
    ),
}


@pytest.mark.parametrize(("content", "reason"), UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_a_value_the_store_cannot_keep_refuses_its_record_and_the_good_ones_land(
    store, content, reason
) -> None:
    if content.startswith("patient_id,kind"):  # events name patients already stored
        import_content(store, "p1.csv", (HEADER.decode() + CSV_GOOD).encode(), options=OPTIONS)
    summary = import_content(store, "mixed", content.encode(), options=OPTIONS)
    assert summary.error is None
    assert summary.rejected["reason"].tolist() == [reason]
    assert summary.accepted + summary.others >= 1  # the good record landed
    with store() as session:
        kept = session.scalars(
            select(RejectedRecord.reason).where(RejectedRecord.batch_id == summary.batch_id)
        )
        assert kept.all() == [reason]


def test_a_refused_records_location_and_text_are_cut_to_what_the_store_keeps(store) -> None:
    # A wide export whose column name makes the place of its cells longer than the store keeps, and a line
    # longer than the text kept of a refused record.
    column = "WBC (" + "x" * 150 + ")"
    content = f"patient_id,collected_at,{column},Comment\nW-1,2026-05-04T08:00:00Z,3.2,{'c' * 3000}\n"
    summary = import_content(store, "wide.csv", content.encode(), options=OPTIONS)
    assert summary.error is None
    assert summary.rejected["reason"].tolist() == ["unit is longer than 50 characters"]
    with store() as session:
        kept = session.execute(
            select(RejectedRecord.location, RejectedRecord.raw_text).where(
                RejectedRecord.batch_id == summary.batch_id
            )
        ).one()
    assert len(kept.location) == 100 and kept.location.startswith("line 2, column WBC (xxx")
    assert kept.location.endswith("…")
    assert kept.raw_text.endswith("... (cut at 2,000 characters)") and kept.raw_text.startswith("W-1,")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("patient_id,collected_at,analyte,value,unit,Unit", "names column 'Unit' twice (columns 5 and 6)"),
        (
            "patient_id,collected_at,analyte,value,unit,,",
            "names a column without a name twice (columns 6 and 7)",
        ),
        (
            "patient_id,collected_at,analyte,value,unit,x\ry",
            "holds a line break (a carriage return) inside it",
        ),
    ],
    ids=["duplicate", "two-unnamed", "cr"],
)
def test_a_csv_header_that_cannot_be_read_refuses_the_file_naming_the_problem(store, header, problem) -> None:
    content = f"{header}\nP1,2026-03-10T07:30:00Z,wbc,4.2,10^9/L,x,y\n"
    summary = import_content(store, "header.csv", content.encode(), options=OPTIONS)
    assert summary.error is not None and summary.error.startswith(f"line 1 (the header) {problem}"[:40])
    assert problem in summary.error
    assert summary.exit_code == 2


def test_the_command_line_names_the_file_and_its_header_problem_exit_2(tmp_path, upgraded: str) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(
        "patient_id,collected_at,analyte,value,unit,unit\nP1,2026-03-10T07:30:00Z,wbc,4,10^9/L,x\n"
    )
    run = _monitor("import", str(path), url=upgraded)
    assert run.returncode == 2, run.stderr
    assert "dup.csv: not imported: line 1 (the header) names column 'unit' twice" in run.stderr


# --- A store that cannot be used as it is: named, with what is wrong, exit 3 (never re-created) ---


def _monitor(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty: move it away or delete it to start a new store"),
        (
            b"patient_id,collected_at\n" * 200,
            "not a SQLite database: restore the store from a backup, or move the file away to start a new "
            "store",
        ),
    ],
    ids=["empty", "not-sqlite"],
)
def test_an_unusable_sqlite_file_is_named_and_left_as_it_is(tmp_path, content, problem) -> None:
    path = tmp_path / "monitor.db"
    path.write_bytes(content)
    for command in (("patients",), ("db", "upgrade"), ("import", str(DATA / "canonical-good.csv"))):
        run = _monitor(*command, url=f"sqlite:///{path}")
        assert run.returncode == 3, (command, run.stderr)
        assert run.stderr.strip() == f"error: the store could not be used: store {path}: {problem}"
        assert "Traceback" not in run.stderr
    assert path.read_bytes() == content  # not re-created, nor seeded with demo accounts


def test_the_dashboard_gets_an_error_naming_an_empty_store(tmp_path) -> None:
    path = tmp_path / "monitor.db"
    path.touch()
    config = Config.from_environment(database=f"sqlite:///{path}")
    with pytest.raises(StoreUnusable, match="the file is empty"):
        open_store(config)
    assert path.stat().st_size == 0


def test_a_schema_newer_than_the_code_is_refused_exit_3(upgraded: str) -> None:
    engine = make_engine(upgraded)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()
    for command in (("patients",), ("db", "upgrade")):
        run = _monitor(*command, url=upgraded)
        assert run.returncode == 3, run.stderr
        newer = f"schema revision 9999_from_the_future is newer than this code's {head_revision()}"
        assert f"{newer}: upgrade the code" in run.stderr


# --- Events naming a patient the store knows under an assigning authority the file does not give ---


def test_an_events_file_without_authorities_says_the_patient_is_known_under_one(store) -> None:
    results = (
        "patient_id,assigning_authority,collected_at,analyte,value,unit\n"
        "P1,CITY,2026-03-10T07:30:00Z,wbc,4,10^9/L\n"
    )
    import_content(store, "results.csv", results.encode(), options=OPTIONS)
    events = "patient_id,kind,start,label\nP1,fever,2026-03-10,38.5\nP9,fever,2026-03-10,38.5\n"
    summary = import_content(store, "events.csv", events.encode(), options=OPTIONS)
    assert summary.rejected["reason"].tolist() == [
        "no assigning_authority given: patient 'P1' is known under authority 'CITY' (add an "
        "assigning_authority column, or fill it in)",
        "patient 'P9' is not in the store, and no assigning_authority is given while every stored patient "
        "has one (add an assigning_authority column)",
    ]
    with_authority = "patient_id,assigning_authority,kind,start,label\nP1,TOWN,fever,2026-03-10,38.5\n"
    summary = import_content(store, "events2.csv", with_authority.encode(), options=OPTIONS)
    assert summary.rejected["reason"].tolist() == [
        "patient 'P1' is not in the store under authority 'TOWN': it is known under authority 'CITY'"
    ]


def test_a_time_whose_offset_the_pattern_misses_is_refused_not_an_internal_error(store) -> None:
    """An hour of one digit with an offset (``T8:15:00Z``): not read as a local time (found by fuzzing)."""
    content = (
        HEADER.decode() + "A,2026-03-02T8:15:00Z,wbc,4,10^9/L\nB,2026-03-02T08:15:00,wbc,4,10^9/L\n"
    ).encode()
    for zone in (None, "Europe/Paris"):
        options = ImportOptions(imported_by="test", site_timezone="UTC", timezone=zone, again=True)
        summary = import_content(store, "times.csv", content, options=options)
        assert summary.error is None
        assert summary.rejected["reason"].iloc[0] == (
            "collected_at '2026-03-02T8:15:00Z' is not an ISO 8601 date-time (e.g. 2026-03-16T09:40:00+01:00)"
        )
    assert summary.accepted == 1  # read again in a zone: B's local time lands


def test_a_time_at_the_calendars_edge_is_refused_in_every_format_and_the_good_records_land(store) -> None:
    """0001-01-01 with a positive offset is in year 0 and 9999-12-31 with a negative one in year 10000:
    beyond what a date can hold (an internal error before); any time outside 1900-2999 is a typing error."""
    csv = (
        HEADER.decode() + "Y0,0001-01-01T00:00:00+14:00,wbc,5.6,10^9/L\n"
        "Y1,9999-12-31T23:59:59-12:00,wbc,5.6,10^9/L\nY2,1899-12-31T23:00:00Z,wbc,5.6,10^9/L\n"
        "OK,2026-11-30T08:00:00Z,wbc,5.6,10^9/L\n"
    ).encode()
    options = ImportOptions(imported_by="test", site_timezone="UTC")
    summary = import_content(store, "edges.csv", csv, options=options)
    assert summary.error is None and summary.accepted == 1
    assert summary.rejected["reason"].tolist() == [
        f"collected_at '{when}' is outside the years 1900-2999 (in UTC)"
        for when in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1899-12-31T23:00:00Z")
    ]
    fhir = json.dumps(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
            "subject": {"reference": "Patient/P1"},
            "effectiveDateTime": "0001-01-01T00:00:00+05:00",
            "valueQuantity": {"value": 5.6, "unit": "10*3/uL", "system": "http://unitsofmeasure.org"},
        }
    ).encode()
    summary = import_content(store, "edge.json", fhir, options=options)
    assert summary.error is None and summary.accepted == 0 and len(summary.rejected) == 1
    events = b"patient_id,kind,start,label\nOK,chemotherapy,0001-01-01T00:00:00+05:00,x\n"
    summary = import_content(store, "edge-events.csv", events, options=options)
    assert summary.error is None
    assert summary.rejected["reason"].tolist() == [
        "start '0001-01-01T00:00:00+05:00' is not an ISO 8601 date or date-time in the years 1900-2999"
    ]
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 1


def test_an_identifier_with_an_invisible_or_reordering_character_is_refused_naming_it(store) -> None:
    """A right-to-left override or a zero-width space would make two identifiers look alike on a page."""
    content = (
        HEADER.decode() + "MRN\u202e1001,2026-03-02T08:15:00Z,wbc,4,10^9/L\n"
        "MRN\u200b1001,2026-03-02T08:15:00Z,wbc,4,10^9/L\n"
        "MRN1001\t,2026-03-02T08:15:00Z,wbc,4,10^9/L\n"
    ).encode()
    summary = import_content(
        store, "ids.csv", content, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.error is None and summary.accepted == 1
    assert summary.rejected["reason"].tolist() == [
        "patient_id contains an invisible or control character (U+202E)",
        "patient_id contains an invisible or control character (U+200B)",
    ]


# --- Collection times in the future (docs/clinical-basis.md, Plausible collection times) ---

IMPORTED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AFTER_IMPORT = "more than 1 hour after the import at 2026-11-30T12:00:00Z"


def _refused_in_store(store, batch_id: int) -> list[tuple[str, str]]:
    with store() as session:
        kept = session.execute(
            select(RejectedRecord.location, RejectedRecord.reason)
            .where(RejectedRecord.batch_id == batch_id)
            .order_by(RejectedRecord.id)
        )
        return [tuple(row) for row in kept]


def test_a_csv_row_collected_in_the_future_is_refused_with_its_line_and_the_good_row_lands(store) -> None:
    content = (
        HEADER.decode() + "P1,2099-01-01T00:00:00Z,wbc,9.9,10^9/L\nP1,2026-11-30T08:00:00Z,wbc,3.1,10^9/L\n"
    )
    summary = import_content(store, "future.csv", content.encode(), options=OPTIONS, now=IMPORTED)
    reason = f"collected_at '2099-01-01T00:00:00Z' is in the future ({AFTER_IMPORT})"
    assert summary.error is None and summary.accepted == 1
    assert summary.rejected[["location", "reason"]].values.tolist() == [["line 2", reason]]
    assert _refused_in_store(store, summary.batch_id) == [("line 2", reason)]
    with store() as session:
        assert session.scalars(select(Result.value)).all() == [3.1]


def test_a_time_within_the_tolerance_lands_and_the_tolerance_is_an_import_option(store) -> None:
    content = HEADER.decode() + "P1,2026-11-30T12:59:00Z,wbc,3.1,10^9/L\n"
    assert import_content(store, "clock.csv", content.encode(), options=OPTIONS, now=IMPORTED).accepted == 1
    strict = ImportOptions(imported_by="test", site_timezone="UTC", future_tolerance=timedelta(minutes=30))
    content = content.replace("P1,", "P2,")  # other content: the same would be 'unchanged', not read
    summary = import_content(store, "clock.csv", content.encode(), options=strict, now=IMPORTED)
    assert summary.rejected["reason"].tolist() == [
        "collected_at '2026-11-30T12:59:00Z' is in the future "
        "(more than 30 minutes after the import at 2026-11-30T12:00:00Z)"
    ]


def test_a_wide_csv_panel_collected_in_the_future_is_refused(store) -> None:
    content = (
        "patient_id,collected_at,WBC (10^9/L)\nW1,2099-01-01T00:00:00Z,4.0\nW1,2026-11-30T08:00:00Z,3.0\n"
    )
    summary = import_content(store, "wide.csv", content.encode(), options=OPTIONS, now=IMPORTED)
    assert summary.accepted == 1
    assert summary.rejected["reason"].tolist() == [
        f"collected_at '2099-01-01T00:00:00Z' is in the future ({AFTER_IMPORT})"
    ]


def test_hl7_collection_and_observation_times_in_the_future_or_before_1900_are_refused_by_field(
    store,
) -> None:
    message = (
        "MSH|^~\\&|LIS|LAB|EHR|WARD|20261130081500+0000||ORU^R01|M1|P|2.5.1\r"
        "PID|1||P1^^^CITY^MR||Smith^Anna\r"
        "OBR|1||ACC-1|CBC|||20990101000000+0000\r"
        "OBX|1|NM|6690-2^WBC^LN||4.2|10*9/L|4.0-11.0||||F\r"
        "OBR|2||ACC-2|CBC\r"
        "OBX|1|NM|6690-2^WBC^LN||4.2|10*9/L|4.0-11.0||||F|||20990101000000\r"
        "OBR|3||ACC-3|CBC|||18991231080000\r"
        "OBX|1|NM|6690-2^WBC^LN||4.2|10*9/L|4.0-11.0||||F\r"
        "OBR|4||ACC-4|CBC|||20261130073000\r"
        "OBX|1|NM|6690-2^WBC^LN||3.1|10*9/L|4.0-11.0||||F\r"
    )
    summary = import_content(store, "future.hl7", message.encode(), options=OPTIONS, now=IMPORTED)
    assert summary.accepted == 1
    refused = [
        [
            "message 1 (M1), OBR 1, OBX 1",
            f"OBR-7 collection time '20990101000000+0000' is in the future ({AFTER_IMPORT})",
        ],
        [
            "message 1 (M1), OBR 2, OBX 1",
            f"OBX-14 observation time '20990101000000' is in the future ({AFTER_IMPORT})",
        ],
        [
            "message 1 (M1), OBR 3, OBX 1",
            "OBR-7 collection time '18991231080000' is outside the years 1900-2999 (in UTC)",
        ],
    ]
    assert summary.rejected[["location", "reason"]].values.tolist() == refused
    assert [list(row) for row in _refused_in_store(store, summary.batch_id)] == refused


def test_a_fhir_observation_effective_in_the_future_or_before_1900_is_refused_naming_the_element(
    store,
) -> None:
    def observation(when: str) -> str:
        return json.dumps(json.loads(_fhir("P1")) | {"effectiveDateTime": when})

    content = "\n".join(observation(when) for when in ("2099-01-01T00:00:00Z", "1899-06-01", "2026-11-30"))
    summary = import_content(store, "future.ndjson", content.encode(), options=OPTIONS, now=IMPORTED)
    assert summary.accepted == 1
    assert summary.rejected["reason"].tolist() == [
        f"effectiveDateTime '2099-01-01T00:00:00Z' is in the future ({AFTER_IMPORT})",
        "effectiveDateTime '1899-06-01' is outside the years 1900-2999 (in UTC)",
    ]


def test_a_csv_row_dated_1899_is_refused_and_the_good_row_lands(store) -> None:
    content = (
        HEADER.decode() + "P1,1899-03-02T08:00:00Z,wbc,3.1,10^9/L\nP1,2026-11-30T08:00:00Z,wbc,3.1,10^9/L\n"
    )
    summary = import_content(store, "old.csv", content.encode(), options=OPTIONS, now=IMPORTED)
    assert summary.accepted == 1
    assert summary.rejected[["location", "reason"]].values.tolist() == [
        ["line 2", "collected_at '1899-03-02T08:00:00Z' is outside the years 1900-2999 (in UTC)"]
    ]
