"""Import files: detect the format, parse, normalise, write; all or nothing per file.

A file whose bytes were imported before changes nothing (its latest batch is reported), unless it is read
again (``again``): then only the records that batch refused are read, so that those refused for a cause
since put right can land. A file that cannot be read at all is still recorded, with the reason, so that
nothing sent to the store goes unseen. A dry run does all of it inside a transaction that is then rolled
back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import assign_patients, without_team
from db.config import display_timezone
from db.events import write_events
from db.frames import read_frame_in
from db.ingest import WriteCounts, keep_rejected, new_batch, write_others, write_results
from db.models import ImportBatch, Patient, RejectedRecord, Team
from db.status import BatchResults, refresh_patient_status
from monitor.formats.csv_long import UnusableFile, looks_like_canonical_csv, parse_canonical_csv
from monitor.formats.csv_wide import looks_like_wide_csv, parse_wide_csv, rename_columns
from monitor.formats.derive import derive_absolute_counts
from monitor.formats.events import looks_like_events_csv, parse_events
from monitor.formats.fhir import looks_like_fhir, parse_fhir
from monitor.formats.hl7v2 import looks_like_hl7, parse_hl7
from monitor.formats.parsed import RAW_TEXT_LIMIT, REJECT_COLUMNS, Parsed
from monitor.formats.pieces import csv_pieces, decoded, hl7_pieces
from monitor.formats.records import normalise_results

# Results normalised and written at a time: bounds memory for any file size (benchmarks/import_csv.py).
# (CSV and HL7 arrive in pieces of about this many already, see monitor.formats.pieces;
# this splits FHIR documents.)
CHUNK_RESULTS = 200_000


@dataclass(frozen=True, slots=True)
class EarlierImport:
    """The import that already brought a file's exact content: a copy, readable after the session ends
    (a dry run rolls its session back, which would leave a stored object unreadable)."""

    id: int
    file_name: str
    imported_at: datetime


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
    identical_to: EarlierImport | None = None
    error: str | None = None
    derived: int = 0
    others: int = 0
    pending: int = 0
    events: int = 0
    dry_run: bool = False
    # Patients of the file's results newly put in the teams asked for, and those left in no team.
    assigned: int = 0
    teamless: int = 0

    @classmethod
    def not_imported(
        cls, file_name: str, fmt: str | None, reason: str, *, dry_run: bool = False
    ) -> ImportSummary:
        """A file that was not imported at all, and why (exit status 2)."""
        empty = pd.DataFrame(columns=list(REJECT_COLUMNS))
        return cls(file_name, fmt, None, 0, 0, 0, empty, error=reason, dry_run=dry_run)

    @property
    def exit_code(self) -> int:
        """0 every record accepted, 1 some refused (the rest landed), 2 the file was not imported
        (unusable, or refused to be read again in another zone)."""
        if self.error:
            return 2
        return 1 if len(self.rejected) else 0


def detect_format(text: str) -> str:
    """The format of a file's content: hl7, fhir, csv (canonical long), wide or events."""
    if not text.strip():
        raise UnusableFile("the file is empty")
    for name, looks_like in (
        ("hl7", looks_like_hl7),
        ("fhir", looks_like_fhir),
        ("csv", looks_like_canonical_csv),
        ("events", looks_like_events_csv),
        ("wide", looks_like_wide_csv),
    ):
        if looks_like(text):
            return name
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    if header.count(";") >= 2 and "," not in header:
        raise UnusableFile(
            "the first line is separated by semicolons: the CSV formats read here are comma-separated "
            "(export with commas as separators and a point as the decimal mark)"
        )
    raise UnusableFile(
        "not a recognised format (HL7 v2, FHIR JSON/NDJSON, the canonical or wide CSV, or an events CSV); "
        "name the format (--format, or the Import page's Format), or rename a lab export's columns "
        "(--map, or Rename CSV columns)"
    )


@dataclass(slots=True)
class FileContent:
    """One file's bytes: held in memory (an upload) or on disk (read in blocks, never whole).

    Not frozen only so that the digest, read once, is remembered; nothing else changes after creation.
    """

    name: str
    data: bytes | None = None
    path: Path | None = None
    _digest: str | None = field(default=None, compare=False, repr=False)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self.path.open("rb")  # type: ignore[union-attr]

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size  # type: ignore[union-attr]

    def sha256(self) -> str:
        """The content's SHA-256 (read once; retries and the record of an unusable file reuse it)."""
        if self._digest is None:
            with self.open() as handle:
                self._digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return self._digest  # type: ignore[return-value]

    def beginning(self, size: int) -> bytes:
        with self.open() as handle:
            return handle.read(size)


# Formats read whole (a JSON document; NDJSON, whose Observations may name a Patient on any line; events):
# beyond this size they are refused, since their memory grows with the file.
WHOLE_FILE_LIMIT = 64_000_000
# Text the format is detected from.
HEAD_CHARS = 1 << 20


def _summary_of_earlier(session: Session, name: str, batch: ImportBatch, dry_run: bool) -> ImportSummary:
    rejected = pd.DataFrame(
        session.execute(
            select(RejectedRecord.location, RejectedRecord.raw_text, RejectedRecord.reason)
            .where(RejectedRecord.batch_id == batch.id)
            .order_by(RejectedRecord.id)
        ).all(),
        columns=list(REJECT_COLUMNS),
    )
    total = batch.accepted + batch.unchanged + batch.superseded
    return ImportSummary(
        name,
        batch.format,
        batch.id,
        0,
        total,
        0,
        rejected,
        identical_to=EarlierImport(batch.id, batch.file_name, batch.imported_at),
        dry_run=dry_run,
    )


def reading_zone(fmt: str, timezone: str | None) -> str:
    """The zone a file's times without an offset are read in ('' when they are refused instead).

    HL7, FHIR and events files: the zone named, else the site's (a feed's time without an offset is the
    sending site's local time; events are written by the care team). The canonical and wide CSV: only a
    zone named; without one such times are refused.
    """
    if timezone:
        return timezone
    return "" if fmt in ("csv", "wide") else display_timezone()


def _parse(text: str, fmt: str, zone: str, before: int) -> Parsed:
    """One piece of a file parsed; ``before``: the lines (CSV) or messages (HL7) of the file before it;
    ``zone``: see `reading_zone`."""
    parsers: dict[str, Callable[[], Parsed]] = {
        "hl7": lambda: parse_hl7(text, timezone=zone, messages_before=before),
        "fhir": lambda: parse_fhir(text, timezone=zone),
        "csv": lambda: parse_canonical_csv(text, timezone=zone or None, lines_before=before),
        "wide": lambda: parse_wide_csv(text, timezone=zone or None, lines_before=before),
    }
    return parsers[fmt]()


def _read_elsewhere(latest: ImportBatch, zone: str) -> str | None:
    """Why a file may not be read again in ``zone`` (None when it may): its latest reading took times
    without an offset in another zone, and records retried now must be read as their siblings were."""
    if not latest.timezone or latest.timezone == zone:
        return None
    now_reading = f"in {zone}" if zone else "without a zone"
    return (
        f"not read again: import #{latest.id} of {latest.imported_at:%Y-%m-%d %H:%M} UTC read this "
        f"content's times without an offset in {latest.timezone}; the records it refused would be read "
        f"{now_reading}, at other times than the rest of the file (read it again in {latest.timezone}: "
        f"--timezone {latest.timezone}, or the Import page's time zone)"
    )


def _text_of(
    binary: BinaryIO, fmt: str | None, column_map: dict[str, str] | None
) -> tuple[str, Iterator[str]]:
    """A file's format (detected from its beginning unless named) and its text, read in blocks."""
    blocks = decoded(binary)
    head = ""
    for block in blocks:
        head += block
        if len(head) >= HEAD_CHARS:
            break
    head = rename_columns(head, column_map or {})
    return fmt or detect_format(head), itertools.chain([head], blocks)


def _pieces(text: Iterator[str], fmt: str) -> Iterable[tuple[str, int]]:
    """(piece, lines or messages before it): CSV and HL7 in pieces (``formats.pieces``), others whole."""
    cut = {"csv": csv_pieces, "wide": csv_pieces, "hl7": hl7_pieces}.get(fmt)
    return cut(text) if cut is not None else [("".join(text), 0)]


def _identifiers(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct (assigning authority, patient identifier) pairs rows name, as the store keeps them."""
    pairs = rows[["assigning_authority", "patient_id"]].drop_duplicates().fillna("").astype(str)
    return pairs.apply(lambda column: column.str.strip()).drop_duplicates()


def _to_teams(
    session: Session, naming: list[pd.DataFrame], teams: tuple[str, ...], *, now: datetime, by: str
) -> tuple[int, int]:
    """Put the stored patients ``naming`` (`_identifiers` frames) names in ``teams``; return how many
    memberships were added and how many of those patients are in no team."""
    named = _patients_named(session, naming)
    assigned = sum(assign_patients(session, named, team, now=now, by=by) for team in teams)
    return assigned, without_team(session, named)


def _patients_named(session: Session, naming: list[pd.DataFrame]) -> list[int]:
    """The stored patients among (assigning authority, patient identifier) pairs."""
    named = [frame for frame in naming if len(frame)]
    if not named:
        return []
    pairs = pd.concat(named, ignore_index=True).drop_duplicates()
    found = read_frame_in(
        session,
        lambda part: select(Patient.id, Patient.assigning_authority, Patient.mrn.label("patient_id")).where(
            Patient.mrn.in_(part)
        ),
        pairs["patient_id"].unique().tolist(),
    )
    keys = pairs.merge(found, on=["assigning_authority", "patient_id"])["id"]
    return sorted(int(key) for key in keys.unique())


def _refused_locations(session: Session, batch_id: int) -> frozenset[str]:
    """Where in the file an import refused records (line, or message and segment): what reading the same
    content again retries."""
    rows = session.scalars(select(RejectedRecord.location).where(RejectedRecord.batch_id == batch_id))
    return frozenset(rows)


# A file with more structurally broken records than this (and more than it has good ones) is refused as a
# whole, with its first refusals named: it is not the lab file it claims to be, and keeping millions of
# junk lines as "records for review" would only exhaust memory and the store.
MAX_BROKEN_RECORDS = 100_000


def _refuse_mostly_broken(first: pd.Series | None, broken: int, good: int) -> None:
    """Refuse the file once its unreadable records outnumber both the limit and its readable ones *so far*.

    Judged after each piece (about 200,000 records), so that a file of junk is refused after its first
    piece instead of being held in memory whole: a file whose first pieces are mostly unreadable is refused
    even if readable records were to follow (it is not the lab export it claims to be).
    """
    if first is not None and broken > MAX_BROKEN_RECORDS and broken > good:
        raise UnusableFile(
            f"{broken:,} records cannot be read (more than {MAX_BROKEN_RECORDS:,}, and more than the "
            f"{good:,} readable ones); the first: {first['location']}: {first['reason']}"
        )


def import_file(
    session: Session,
    content: FileContent,
    *,
    imported_by: str,
    fmt: str | None = None,
    timezone: str | None = None,
    column_map: dict[str, str] | None = None,
    dry_run: bool = False,
    again: bool = False,
    teams: tuple[str, ...] = (),
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import one file inside the caller's transaction.

    ``teams`` (codes of existing teams) receive every patient the file's results name, in the same
    transaction; the summary counts them, and the patients left in no team (only administrators see those).

    Content imported before changes nothing and its latest import is reported, unless ``again``: then
    the records that import refused (by their place in the file) are read again, so that those refused
    for a reason since put right (their patient was not yet in the store, a CSV's times needed a zone) can
    land. Every other record is left as the store has it (counted unchanged): a later correction or
    withdrawal is never undone, and no record is stored twice. The records are read again in the zone the
    file was last read in (see `_read_elsewhere`).

    ``timezone`` reads times that carry no offset (HL7, FHIR and events files default to the site's zone,
    ``MONITOR_TIMEZONE``, as the Import page does; the canonical CSV refuses them unless a zone is given).
    ``column_map`` renames a CSV export's columns first. CSV and HL7 files
    are read, parsed and written a piece at a time (``formats.pieces``), so memory stays bounded for any
    file size; ``progress`` is called with the bytes read so far and the file's size.
    """
    now = now or datetime.now(UTC)
    file_name = content.name
    unknown_teams = [
        team for team in teams if session.scalar(select(Team.id).where(Team.code == team)) is None
    ]
    if unknown_teams:
        reason = f"no team {', '.join(map(repr, unknown_teams))} (python -m monitor teams lists them)"
        return ImportSummary.not_imported(file_name, fmt, reason, dry_run=dry_run)
    sha256 = content.sha256()
    earlier = session.scalars(
        select(ImportBatch)
        .where(ImportBatch.content_sha256 == sha256, ImportBatch.format != "unusable")
        .order_by(ImportBatch.id)
    ).all()
    if earlier and not again:
        summary = _summary_of_earlier(session, file_name, earlier[-1], dry_run)
        if not teams:
            return summary
        # Not imported again, but read (a piece at a time) for the patients it names, who join the teams.
        zone = reading_zone(summary.format or "csv", timezone)
        with content.open() as binary:
            found, text = _text_of(binary, fmt, column_map)
            if found == "events":
                naming = [_identifiers(parse_events("".join(text), timezone=zone)[0])]
            else:
                parsed = (_parse(piece, found, zone, offset) for piece, offset in _pieces(text, found))
                naming = [_identifiers(f) for p in parsed for f in (p.records, p.others)]
        assigned, teamless = _to_teams(session, naming, teams, now=now, by=imported_by)
        return dataclasses.replace(summary, assigned=assigned, teamless=teamless)
    retry = _refused_locations(session, earlier[-1].id) if earlier else None
    with content.open() as binary:
        fmt, text = _text_of(binary, fmt, column_map)
        if fmt in ("fhir", "events") and content.size > WHOLE_FILE_LIMIT:
            raise UnusableFile(
                f"{content.size / 1e6:,.0f} MB: a {'FHIR' if fmt == 'fhir' else 'clinical events'} file is "
                f"read whole, and files of this format over {WHOLE_FILE_LIMIT / 1e6:,.0f} MB are refused "
                "to keep memory bounded; split the export into smaller files"
            )
        zone = reading_zone(fmt, timezone)
        refusal = _read_elsewhere(earlier[-1], zone) if earlier else None
        if refusal is not None:
            return ImportSummary.not_imported(file_name, fmt, refusal, dry_run=dry_run)
        batch = new_batch(
            session,
            file_name=file_name,
            sha256=sha256,
            fmt=fmt,
            imported_by=imported_by,
            now=now,
            timezone=zone,
        )
        if fmt == "events":
            return _import_events(
                session, "".join(text), batch, zone, imported_by, now, dry_run, retry, teams
            )
        return _import_pieces(
            session,
            _pieces(text, fmt),
            batch,
            fmt=fmt,
            zone=zone,
            now=now,
            dry_run=dry_run,
            retry=retry,
            teams=teams,
            imported_by=imported_by,
            report=(lambda: progress(binary.tell(), content.size)) if progress else None,
        )


def _import_events(
    session: Session,
    text: str,
    batch: ImportBatch,
    zone: str,
    imported_by: str,
    now: datetime,
    dry_run: bool,
    retry: frozenset[str] | None,
    teams: tuple[str, ...],
) -> ImportSummary:
    events, refused = parse_events(text, timezone=zone)
    assigned, teamless = _to_teams(session, [_identifiers(events)], teams, now=now, by=imported_by)
    left = 0
    if retry is not None:  # read again: only the events refused last time
        events, left = _retried(events, retry)
        refused = refused[refused["location"].isin(retry).to_numpy()]
    added, unknown = write_events(session, events, batch_id=batch.id, imported_by=imported_by, now=now)
    rejected = _in_file_order(pd.concat([refused, unknown], ignore_index=True))
    keep_rejected(session, batch.id, rejected)
    batch.accepted, batch.rejected = added, len(rejected)
    batch.unchanged = left + len(events) - added - len(unknown)
    return ImportSummary(
        batch.file_name,
        "events",
        batch.id,
        added,
        batch.unchanged,
        0,
        rejected,
        events=added,
        dry_run=dry_run,
        assigned=assigned,
        teamless=teamless,
    )


def _import_pieces(
    session: Session,
    pieces: Iterable[tuple[str, int]],
    batch: ImportBatch,
    *,
    fmt: str,
    zone: str,
    now: datetime,
    dry_run: bool,
    retry: frozenset[str] | None,
    teams: tuple[str, ...],
    imported_by: str,
    report: Callable[[], None] | None,
) -> ImportSummary:
    """Parse, normalise and write each piece of a file (numbered as the file's lines or messages).

    ``retry``: when the file is read again, where its last import refused records; only those are read.
    """
    counts = WriteCounts()
    held = BatchResults(batch.id)
    refused: list[pd.DataFrame] = []
    broken = good = others = pending = 0
    first_broken: pd.Series | None = None
    naming: list[pd.DataFrame] = []
    for text, offset in pieces:
        parsed = _parse(text, fmt, zone, offset)
        records, rejected, other = parsed.records, parsed.rejected, parsed.others
        if first_broken is None and len(rejected):
            first_broken = rejected.iloc[0]
        broken, good = broken + len(rejected), good + len(records)
        _refuse_mostly_broken(first_broken, broken, good)
        # Every patient the file names, written now or not (identifiers only): for teams and the teamless.
        naming.extend(_identifiers(frame) for frame in (records, other))
        if retry is not None:
            records, left = _retried(records, retry)
            other, _ = _retried(other, retry)
            rejected = rejected[rejected["location"].isin(retry).to_numpy()]
            counts.unchanged += left
        refused.append(rejected)
        for start, stop in panel_chunks(records, CHUNK_RESULTS):
            normalised = normalise_results(records.iloc[start:stop])
            written = _write_generations(
                session, normalised.results, parsed.patients, batch_id=batch.id, now=now, held=held
            )
            counts.add(written)
            refused += [normalised.rejected, written.rejected]
        others += write_others(session, other, batch_id=batch.id, now=now)
        pending += parsed.pending
        if report is not None:
            report()
    refresh_patient_status(session, counts.patient_keys, now=now, timezone=display_timezone(), written=held)
    assigned, teamless = _to_teams(session, naming, teams, now=now, by=imported_by)
    rejected = _in_file_order(pd.concat(refused, ignore_index=True))
    keep_rejected(session, batch.id, rejected)
    batch.accepted, batch.unchanged = counts.accepted, counts.unchanged
    batch.superseded, batch.rejected = counts.superseded, len(rejected)
    return ImportSummary(
        batch.file_name,
        fmt,
        batch.id,
        counts.accepted,
        counts.unchanged,
        counts.superseded,
        rejected,
        derived=counts.derived,
        others=others,
        pending=pending,
        dry_run=dry_run,
        assigned=assigned,
        teamless=teamless,
    )


def _retried(frame: pd.DataFrame, retry: frozenset[str]) -> tuple[pd.DataFrame, int]:
    """The rows at the places an earlier import refused, and how many others are left as stored."""
    chosen = frame["location"].isin(retry).to_numpy()
    return frame[chosen].reset_index(drop=True), int((~chosen).sum())


def _write_generations(
    session: Session,
    results: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    batch_id: int,
    now: datetime,
    held: BatchResults,
) -> WriteCounts:
    """Write results generation by generation (a preliminary, then its final, ...), derived counts last.

    Counts are derived from the latest generation of each value in the file.
    """
    if results.empty:
        return write_results(
            session, results, batch_id=batch_id, now=now, patients=patients, refresh_status=False
        )
    latest_first = results.sort_values("generation", ascending=False, kind="stable")
    derived = derive_absolute_counts(latest_first).assign(generation=int(results["generation"].max()))
    everything = pd.concat([results, derived], ignore_index=True) if len(derived) else results
    total = WriteCounts()
    for _, part in everything.groupby("generation", sort=True):
        counts = write_results(
            session,
            part.drop(columns="generation"),
            batch_id=batch_id,
            now=now,
            patients=patients,
            refresh_status=False,
            held=held,
        )
        total.add(counts)
    return total


def panel_chunks(records: pd.DataFrame, size: int) -> list[tuple[int, int]]:
    """Row ranges of about ``size`` rows that never split a panel (derived counts need all of one).

    >>> panel_chunks(pd.DataFrame({"patient_id": list("aabbbc"), "collected_at": "t", "accession": ""}), 2)
    [(0, 2), (2, 5), (5, 6)]
    """
    if len(records) <= size:
        return [(0, len(records))] if len(records) else []
    key = records["patient_id"] + "\x1f" + records["collected_at"] + "\x1f" + records["accession"]
    starts = np.flatnonzero(key.ne(key.shift()).to_numpy())
    cuts = sorted(
        {
            int(starts[min(np.searchsorted(starts, target), len(starts) - 1)])
            for target in range(size, len(records), size)
        }
        - {0}
    )
    bounds = [0, *cuts, len(records)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _in_file_order(rejected: pd.DataFrame) -> pd.DataFrame:
    """Refusals sorted by where they stand in the file (line, or message and segment)."""
    numbers = rejected["location"].astype(str).str.findall(r"\d+")
    first = pd.to_numeric(numbers.str[0], errors="coerce")
    second = pd.to_numeric(numbers.str[1], errors="coerce")
    third = pd.to_numeric(numbers.str[2], errors="coerce")
    ordered = rejected.assign(_a=first, _b=second, _c=third).sort_values(["_a", "_b", "_c"], kind="stable")
    return ordered.drop(columns=["_a", "_b", "_c"]).reset_index(drop=True)


def record_unusable(session: Session, content: FileContent, *, imported_by: str, reason: str) -> int:
    """Keep an unusable file's beginning and the reason, in a batch of its own."""
    batch = new_batch(
        session,
        file_name=content.name,
        sha256=content.sha256(),
        fmt="unusable",
        imported_by=imported_by,
        now=datetime.now(UTC),
    )
    batch.rejected = 1
    raw = content.beginning(RAW_TEXT_LIMIT).decode("utf-8", errors="replace")
    keep_rejected(session, batch.id, pd.DataFrame([{"location": "file", "raw_text": raw, "reason": reason}]))
    return batch.id


def import_path(
    factory: sessionmaker[Session], path: Path, *, imported_by: str, **options: Any
) -> ImportSummary:
    """Import one file from disk, read in blocks (see `import_file`), in its own transaction."""
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        return ImportSummary.not_imported(path.name, options.get("fmt"), f"cannot read: {error.strerror}")
    return _import(factory, FileContent(path.name, path=path), imported_by=imported_by, **options)


def import_content(
    factory: sessionmaker[Session], name: str, content: bytes, *, imported_by: str, **options: Any
) -> ImportSummary:
    """Import one file's bytes (an upload) in its own transaction (see `import_file`)."""
    return _import(factory, FileContent(name, data=content), imported_by=imported_by, **options)


# Attempts of one file's transaction when concurrent imports collide (see _import).
CONCURRENT_ATTEMPTS = 6


# PostgreSQL: unique violation, deadlock, serialization failure (SQLSTATE).
_CONTENTION_STATES = {"23505", "40P01", "40001"}


def _is_contention(error: Exception) -> bool:
    """A collision with a concurrent writer, as opposed to a genuine error in this file or the store.

    Bulk writes go through the raw driver, so the driver's own errors arrive as well as SQLAlchemy's.
    """
    cause = getattr(error, "orig", None) or error
    if getattr(cause, "sqlstate", None) in _CONTENTION_STATES:
        return True
    text = str(cause).lower()
    unique = "unique constraint failed" in text or "duplicate key" in text
    return unique or "database is locked" in text or "deadlock detected" in text


def _import(
    factory: sessionmaker[Session],
    content: FileContent,
    *,
    imported_by: str,
    fmt: str | None = None,
    timezone: str | None = None,
    column_map: dict[str, str] | None = None,
    dry_run: bool = False,
    again: bool = False,
    teams: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import one file in its own transaction: a failure part-way leaves the store as it was.

    A dry run does the same work and rolls it back, so it reports exactly what an import would do.
    """
    options = {
        "fmt": fmt,
        "timezone": timezone,
        "column_map": column_map,
        "dry_run": dry_run,
        "again": again,
        "teams": teams,
        "progress": progress,
    }
    try:
        for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
            try:
                with factory() as session:
                    summary = import_file(session, content, imported_by=imported_by, **options)
                    if dry_run:
                        session.rollback()
                    else:
                        session.commit()
                    return summary
            except Exception as error:  # noqa: BLE001 - re-raised unless it is a collision (below)
                # Another import wrote the same patient, panel or file first (a unique key), or held the
                # store (SQLite's lock, a PostgreSQL deadlock): this transaction rolled back whole, so the
                # file is simply imported again, now seeing what the other one stored.
                if attempt == CONCURRENT_ATTEMPTS or not _is_contention(error):
                    raise
                time.sleep(random.uniform(0.2, 1.0) * attempt)
        raise AssertionError("unreachable")
    except UnusableFile as error:
        if not dry_run:
            with factory.begin() as session:
                record_unusable(session, content, imported_by=imported_by, reason=str(error))
        return ImportSummary.not_imported(content.name, fmt, str(error), dry_run=dry_run)
