"""Import files: detect the format, parse, normalise, write; all or nothing per file.

A file whose bytes were imported before changes nothing (its earlier batch is reported). A file that
cannot be read at all is still recorded, with the reason, so that nothing sent to the store goes unseen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.ingest import keep_rejected, new_batch, write_results
from db.models import ImportBatch, RejectedRecord
from monitor.csv_long import UnusableFile, looks_like_canonical_csv, parse_canonical_csv
from monitor.records import normalise_results

FORMATS = ("csv",)
RAW_TEXT_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one file brought: counts, the records refused and why, or why the file was unusable."""

    file_name: str
    format: str | None
    batch_id: int | None
    accepted: int
    unchanged: int
    superseded: int
    rejected: pd.DataFrame
    identical_to: ImportBatch | None = None
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """0 every record accepted, 1 some refused (the rest landed), 2 the file was unusable."""
        if self.error:
            return 2
        return 1 if len(self.rejected) else 0


def detect_format(text: str) -> str:
    if not text.strip():
        raise UnusableFile("the file is empty")
    if looks_like_canonical_csv(text):
        return "csv"
    raise UnusableFile("not a recognised format (expected the canonical CSV header)")


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnusableFile(f"not UTF-8 text (byte {error.start} cannot be decoded)") from None
    if "\x00" in text:
        raise UnusableFile(f"contains a NUL byte at character {text.index(chr(0))}: binary, not text")
    return text


def _summary_of_earlier(session: Session, name: str, batch: ImportBatch) -> ImportSummary:
    rejected = pd.DataFrame(
        session.execute(
            select(RejectedRecord.location, RejectedRecord.raw_text, RejectedRecord.reason)
            .where(RejectedRecord.batch_id == batch.id)
            .order_by(RejectedRecord.id)
        ).all(),
        columns=["location", "raw_text", "reason"],
    )
    total = batch.accepted + batch.unchanged + batch.superseded
    return ImportSummary(name, batch.format, batch.id, 0, total, 0, rejected, identical_to=batch)


def import_bytes(
    session: Session,
    content: bytes,
    *,
    file_name: str,
    imported_by: str,
    fmt: str | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Import one file's content inside the caller's transaction."""
    now = now or datetime.now(UTC)
    sha256 = hashlib.sha256(content).hexdigest()
    earlier = session.scalars(
        select(ImportBatch)
        .where(ImportBatch.content_sha256 == sha256, ImportBatch.format != "unusable")
        .order_by(ImportBatch.id)
    ).first()
    if earlier is not None:
        return _summary_of_earlier(session, file_name, earlier)
    text = _decode(content)
    fmt = fmt or detect_format(text)
    records, broken = parse_canonical_csv(text)
    normalised = normalise_results(records)
    batch = new_batch(session, file_name=file_name, sha256=sha256, fmt=fmt, imported_by=imported_by, now=now)
    counts = write_results(session, normalised.results, batch_id=batch.id, now=now)
    rejected = pd.concat([broken, normalised.rejected, counts.rejected], ignore_index=True)
    rejected = _in_file_order(rejected)
    keep_rejected(session, batch.id, rejected)
    batch.accepted, batch.unchanged = counts.accepted, counts.unchanged
    batch.superseded, batch.rejected = counts.superseded, len(rejected)
    return ImportSummary(
        file_name, fmt, batch.id, counts.accepted, counts.unchanged, counts.superseded, rejected
    )


def _in_file_order(rejected: pd.DataFrame) -> pd.DataFrame:
    line = pd.to_numeric(rejected["location"].str.extract(r"(\d+)")[0], errors="coerce")
    return rejected.assign(_line=line).sort_values("_line", kind="stable").drop(columns="_line")


def record_unusable(
    session: Session, content: bytes, *, file_name: str, imported_by: str, reason: str
) -> int:
    """Keep an unusable file's beginning and the reason, in a batch of its own."""
    batch = new_batch(
        session,
        file_name=file_name,
        sha256=hashlib.sha256(content).hexdigest(),
        fmt="unusable",
        imported_by=imported_by,
        now=datetime.now(UTC),
    )
    batch.rejected = 1
    raw = content[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")
    keep_rejected(session, batch.id, pd.DataFrame([{"location": "file", "raw_text": raw, "reason": reason}]))
    return batch.id


def import_path(
    factory: sessionmaker[Session], path: Path, *, imported_by: str, fmt: str | None = None
) -> ImportSummary:
    """Import one file in its own transaction: a failure part-way leaves the store as it was."""
    name = path.name
    empty = pd.DataFrame(columns=["location", "raw_text", "reason"])
    try:
        content = path.read_bytes()
    except OSError as error:
        return ImportSummary(name, fmt, None, 0, 0, 0, empty, error=f"cannot read: {error.strerror}")
    try:
        with factory.begin() as session:
            return import_bytes(session, content, file_name=name, imported_by=imported_by, fmt=fmt)
    except UnusableFile as error:
        with factory.begin() as session:
            batch_id = record_unusable(
                session, content, file_name=name, imported_by=imported_by, reason=str(error)
            )
        return ImportSummary(name, fmt, batch_id, 0, 0, 0, empty, error=str(error))
