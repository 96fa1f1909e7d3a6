"""Large files are read in pieces: the outcome is exactly that of reading them whole, memory stays bounded."""

from __future__ import annotations

import codecs
import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Base, Panel, RejectedRecord, Result
from monitor.formats import pieces
from monitor.formats.csv_long import UnusableFile
from monitor.formats.piece import PieceReading
from monitor.formats.pieces import csv_pieces, decoded, hl7_pieces
from monitor.formats.storable import Limits
from services import import_file
from services.imports import import_path
from services.piece_reader import PieceReader, ReaderStopped
from tests.test_import import BY_TEST

HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"


def _stored(store: sessionmaker[Session]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    with store() as session:
        results = pd.DataFrame(
            session.execute(
                select(Panel.accession, Result.analyte, Result.value, Result.derived, Result.version)
                .join(Panel, Panel.id == Result.panel_id)
                .order_by(Panel.accession, Result.analyte, Result.version)
            ).all()
        )
        refused = session.execute(
            select(RejectedRecord.location, RejectedRecord.reason).order_by(RejectedRecord.id)
        ).all()
    return results, [tuple(row) for row in refused]


def _wipe(store: sessionmaker[Session]) -> None:
    """An empty store again (every table emptied, children first; the audit trail cannot be)."""
    with store.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "audit_log":
                session.execute(table.delete())


def _panels(count: int) -> str:
    """Panels of WBC and percentages (absolute counts are derived from the panel's own WBC), every
    seventh with a unit nobody knows."""
    rows = []
    for n in range(count):
        when = f"2026-01-{1 + n % 28:02d}T08:{n % 60:02d}:00Z"
        unit = "furlongs" if n % 7 == 3 else "10^9/L"
        rows += [
            f"P{n % 13},{when},wbc,{3 + n % 5}.1,{unit},4.0,11.0,NORTH,A{n:05d},final",
            f"P{n % 13},{when},neut_pct,{40 + n % 30},%,,,NORTH,A{n:05d},final",
            f"P{n % 13},{when},lymph_pct,{20 + n % 10},%,,,NORTH,A{n:05d},final",
        ]
    return HEADER + "\n".join(rows) + "\n"


def test_a_csv_read_in_small_pieces_lands_exactly_as_read_whole(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "panels.csv"
    path.write_text(_panels(300))
    whole = import_path(store, path, options=BY_TEST)
    whole_results, whole_refused = _stored(store)
    _wipe(store)
    monkeypatch.setattr(pieces, "PIECE_CHARS", 2_000)  # about 30 rows a piece: dozens of pieces
    assert len(list(csv_pieces([path.read_text()]))) > 20
    pieced = import_path(store, path, options=BY_TEST)
    pieced_results, pieced_refused = _stored(store)
    assert (pieced.accepted, pieced.derived, len(pieced.rejected)) == (
        whole.accepted,
        whole.derived,
        len(whole.rejected),
    )
    assert whole.derived > 0 and len(whole.rejected) > 0
    pd.testing.assert_frame_equal(pieced_results, whole_results)
    assert pieced_refused == whole_refused
    # Line numbers are the file's, not the piece's: line 11 is the 10th row, the 4th panel's WBC.
    assert ("line 11", "unknown unit 'furlongs' for WBC") in [
        (where, reason.split(" (")[0]) for where, reason in pieced_refused
    ]


def test_a_piece_is_never_cut_inside_a_panel_or_a_quoted_field() -> None:
    text = HEADER + "".join(
        f'P1,2026-01-0{day}T08:00:00Z,{analyte},4.1,10^9/L,4,11,"NORTH\nWING",A{day},final\n'
        for day in range(1, 8)
        for analyte in ("wbc", "anc", "alc")
    )
    found = list(csv_pieces([text], size=300))  # a panel is 225 characters
    assert len(found) > 3
    assert "".join(piece.removeprefix(HEADER) for piece, _ in found) == text.removeprefix(HEADER)
    for piece, _ in found:
        body = piece.removeprefix(HEADER)
        assert body.count('"') % 2 == 0
        accessions = {line.split(",")[-2] for line in body.replace('"NORTH\nWING"', "x").splitlines()}
        # a piece holds whole panels: each of its accessions has all three rows
        assert body.count("wbc") == body.count("anc") == body.count("alc") == len(accessions)


def test_hl7_pieces_hold_whole_messages_and_count_them() -> None:
    message = (
        "MSH|^~\\&|LAB|X|||20260101||ORU^R01|C{n}|P|2.5\rPID|1||M{n}\rOBR|1||A{n}\rOBX|1|NM|WBC||4.{n}\r"
    )
    text = "".join(message.format(n=n) for n in range(10))
    found = list(hl7_pieces([text], size=120))
    assert "".join(piece for piece, _ in found) == text
    assert [offset for _, offset in found] == sorted({offset for _, offset in found})
    assert all(piece.lstrip("\r").startswith("MSH") for piece, _ in found)
    assert found[-1][1] + found[-1][0].count("MSH") == 10


def test_a_line_that_never_ends_is_refused_not_read_into_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pieces, "PIECE_CHARS", 1_000)
    with pytest.raises(UnusableFile, match="line 2 onwards: no end of a record"):
        list(csv_pieces([HEADER, "x" * 2_000, "y" * 3_000]))


def test_decoding_in_blocks_names_the_byte_that_is_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pieces, "BLOCK_BYTES", 8)
    content = "é".encode() * 20 + b"\xff" + b"abc"
    with pytest.raises(UnusableFile, match=r"byte 40 cannot be decoded"):
        list(decoded(io.BytesIO(content)))
    assert "".join(decoded(io.BytesIO("é".encode() * 20))) == "é" * 20


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("junk", "records cannot be read"), ("one-line", "no end of a record")],
)
def test_a_200_mb_file_is_refused_in_bounded_memory(store, tmp_path: Path, kind: str, reason: str) -> None:
    """Hostile 200 MB files through the command line's path (read from disk in blocks), in bounded memory."""
    path = tmp_path / f"{kind}.csv"
    with path.open("wb") as handle:
        handle.write(HEADER.encode())
        block = (b"X," * 5 + b"\n") * 100_000 if kind == "junk" else b"x" * 1_200_000
        for _ in range(200_000_000 // len(block)):
            handle.write(block)
    summary, peak_mb = _with_peak_memory(lambda: import_path(store, path, options=BY_TEST))
    assert summary.error is not None and reason in summary.error, summary.error
    # Read whole, the file alone would take 200 MB as bytes and as much again as text.
    assert peak_mb < 150, f"the import allocated {peak_mb:.0f} MB at its peak"
    print(f"{kind}: {path.stat().st_size / 1e6:.0f} MB refused; {peak_mb:.0f} MB allocated at the peak")


def test_an_hl7_file_read_in_small_pieces_lands_exactly_as_read_whole(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several messages (corrections, MLLP framing, refusals): pieces of a message or two each."""
    from tests.conftest import DATA

    names = ["local-codes-percentages", "mllp-preliminary-then-final", "correction-and-deletion", "troubles"]
    text = "\r".join((DATA / "hl7" / f"{name}.hl7").read_text() for name in names)
    path = tmp_path / "feed.hl7"
    path.write_text(text)
    whole = import_path(store, path, options=BY_TEST)
    whole_results, whole_refused = _stored(store)
    assert len(whole.rejected) > 0 and whole.accepted > 0

    _wipe(store)
    monkeypatch.setattr(pieces, "PIECE_CHARS", 300)
    assert len(list(hl7_pieces([text]))) >= 4
    pieced = import_path(store, path, options=BY_TEST)
    pieced_results, pieced_refused = _stored(store)
    assert (pieced.accepted, pieced.superseded, pieced.pending, len(pieced.rejected)) == (
        whole.accepted,
        whole.superseded,
        whole.pending,
        len(whole.rejected),
    )
    pd.testing.assert_frame_equal(pieced_results, whole_results)
    assert pieced_refused == whole_refused
    # the file's message numbers (the troubles file's messages come after five others), not the piece's
    assert ("message 6 (MSG0006)", "MSH-9 is 'ADT^A01', not ORU^R01: no results") in pieced_refused


def test_a_fhir_document_too_large_to_read_whole_is_refused_before_it_is_read(store, tmp_path: Path) -> None:
    from monitor.formats.registry import WHOLE_FILE_LIMIT

    path = tmp_path / "huge.json"
    entry = b'{"resource": {"resourceType": "Observation", "status": "final"}},'
    with path.open("wb") as handle:
        handle.write(b'{"resourceType": "Bundle", "type": "collection", "entry": [')
        handle.write(entry * (WHOLE_FILE_LIMIT // len(entry) + 1))
        handle.write(b"{}]}")
    summary, peak_mb = _with_peak_memory(lambda: import_path(store, path, options=BY_TEST))
    assert summary.error is not None and "over 64 MB are refused" in summary.error, summary.error
    assert peak_mb < 16, f"the import allocated {peak_mb:.0f} MB at its peak: the document was read"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("é".encode() * 4 + b"\xff", 8),  # after whole characters
        (b"abc" + "é".encode() + b"\xff", 5),  # the block boundary (8) falls after it
        (b"abcdefg" + "é".encode() + b"x\xff", 10),  # a character cut by the block boundary before it
        (codecs.BOM_UTF8 + b"abcde\xff", 8),  # counted from the file's first byte, mark included
    ],
)
def test_the_byte_named_is_the_file_s_own_position(
    monkeypatch: pytest.MonkeyPatch, content: bytes, where: int
) -> None:
    monkeypatch.setattr(pieces, "BLOCK_BYTES", 8)
    assert content[where] == 0xFF
    with pytest.raises(UnusableFile, match=rf"not UTF-8 text \(byte {where} cannot be decoded\)"):
        list(decoded(io.BytesIO(content)))


def test_a_quoted_header_still_cuts_between_panels() -> None:
    header = '"patient_id","collected_at","analyte","value","unit","lab","accession"\n'
    rows = "".join(
        f"P1,2026-01-0{day}T08:00:00Z,{analyte},4.1,10^9/L,NORTH,A{day}\n"
        for day in range(1, 8)
        for analyte in ("wbc", "neut_pct", "lymph_pct")
    )
    found = [piece for piece, _ in csv_pieces([header + rows], size=250)]
    assert len(found) > 1  # it does cut
    for piece in found:
        body = piece.removeprefix(header)
        assert body.count("wbc") == body.count("neut_pct") == body.count("lymph_pct")


def _with_peak_memory(run):
    """``run()``'s result and the most memory it had allocated at once, in MB (Python and NumPy
    allocations, traced: unlike the process's peak, this does not hide behind earlier tests' peaks)."""
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1e6


def test_a_file_read_ahead_in_a_second_process_lands_exactly_as_read_here(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "panels.csv"
    path.write_text(_panels(300))
    monkeypatch.setattr(pieces, "PIECE_CHARS", 2_000)
    here = import_path(store, path, options=BY_TEST)
    here_results, here_refused = _stored(store)
    _wipe(store)
    monkeypatch.setattr(import_file, "reads_beside", lambda size: True)
    beside = import_path(store, path, options=BY_TEST)
    beside_results, beside_refused = _stored(store)
    assert (beside.accepted, beside.derived, beside.unchanged, len(beside.rejected)) == (
        here.accepted,
        here.derived,
        here.unchanged,
        len(here.rejected),
    )
    pd.testing.assert_frame_equal(beside_results, here_results)
    assert beside_refused == here_refused
    pd.testing.assert_frame_equal(beside.rejected, here.rejected)


def test_the_second_process_raises_its_errors_here_and_is_reported_when_it_dies() -> None:
    reading = PieceReading(
        format_name="no such format",
        zone="UTC",
        limits=Limits(),
        retry=None,
        imported_at=datetime(2026, 1, 1, tzinfo=UTC),
        future_tolerance=timedelta(hours=1),
        chunk=1_000,
    )
    reader = PieceReader(reading)
    try:
        reader.send("anything", 0)
        with pytest.raises(KeyError, match="no such format"):
            reader.receive()
        reader._process.kill()  # as the system would, out of memory
        reader._process.wait()
        with pytest.raises(ReaderStopped, match="stopped"):
            reader.send(HEADER, 0)
            reader.receive()
    finally:
        reader.close()
