"""One file imported inside the caller's transaction, and the values that travel with it: how to import
it (`ImportOptions`), its content (bytes or a path) and what it brought (`ImportSummary`).

The file is detected and parsed through ``monitor.formats.registry``, normalised, and written through
``db.ingest`` and ``db.events``, a piece at a time for the formats that are cut (memory stays bounded for
any file size). ``services.imports`` owns the transaction around it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from db.events import write_events
from db.imports import (
    EarlierImport,
    add_to_teams,
    finish_batch,
    latest_import_of,
    refused_locations,
    unknown_teams,
)
from db.ingest import WriteCounts, field_limits, keep_rejected, new_batch, write_generations, write_others
from db.queries import batch_rejections
from db.status import BatchResults, refresh_patient_status
from db.status_pool import usable_cores
from monitor.formats.batch import identifiers, in_file_order, refuse_mostly_broken, retried
from monitor.formats.parsed import REJECT_COLUMNS
from monitor.formats.piece import PieceReading, ReadPiece
from monitor.formats.records import FUTURE_TOLERANCE
from monitor.formats.registry import FORMAT_NAMES, FORMATS, Format, format_named, read_text
from monitor.formats.storable import storable
from monitor.timestamps import is_timezone
from services.piece_reader import PieceReader

# Files from this size are read a piece ahead in a second process while this one writes, when a core is
# idle (`reads_beside`, `read_ahead`): a smaller file is read before such a process would have started.
READ_BESIDE_BYTES = 32 * 2**20
READ_BESIDE_CORES = 4
# Results normalised and written at a time: bounds memory for any file size (benchmarks/import_csv.py).
# (CSV and HL7 arrive in pieces of about this many already, see monitor.formats.pieces; this splits FHIR.)
CHUNK_RESULTS = 200_000
_EVENT_FORMATS = frozenset(known.name for known in FORMATS if known.yields == "events")
# What the store keeps of each field: a record it cannot keep is refused before anything is looked up.
_LIMITS = field_limits()

# Called with the bytes read so far and the file's size.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to import a file, and for whom.

    Attributes
    ----------
    imported_by
        Who imports (the audit trail and the import's record name them).
    format
        One of `FORMAT_NAMES`; None detects it from the content.
    timezone
        The zone times without an offset are read in; None follows the format's rule (the site's zone, or
        refused: ``monitor.formats.registry.Format.zone``).
    column_map
        A CSV export's columns renamed first (``{"MRN": "patient_id"}``).
    dry_run
        Report what would land and what would be refused; store nothing.
    again
        Read content imported before once more, retrying only the records it refused then.
    teams
        Codes of existing care teams that receive every patient the file names.
    site_timezone
        The site's zone (``services.config.Config.timezone``), required: a default would read a caller's
        offset-less times in a zone it never chose.
    future_tolerance
        How far after the import a collection time may be before its result is refused as in the future
        (``services.config.Config.future_tolerance``; docs/clinical-basis.md, Plausible collection times).
    """

    imported_by: str
    site_timezone: str
    format: str | None = None
    timezone: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    again: bool = False
    teams: tuple[str, ...] = ()
    future_tolerance: timedelta = FUTURE_TOLERANCE

    def __post_init__(self) -> None:
        # Checked here, so that no caller can read a feed's times in a zone that does not exist.
        for name, zone in (("site_timezone", self.site_timezone), ("timezone", self.timezone)):
            if zone is not None and not is_timezone(zone):
                raise ValueError(f"{name} {zone!r} is not an IANA time zone (e.g. Europe/London)")
        if self.format is not None and self.format not in FORMAT_NAMES:
            raise ValueError(f"no format {self.format!r} (one of {', '.join(FORMAT_NAMES)})")
        if self.future_tolerance < timedelta(0):
            raise ValueError(f"future_tolerance {self.future_tolerance} is negative")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file's bytes held in memory (an upload)."""

    name: str
    data: bytes

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class OnDisk:
    """A file on disk, read in blocks, never whole."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def open(self) -> io.BufferedReader:
        return self.path.open("rb")

    def size(self) -> int:
        return self.path.stat().st_size


FileContent = Upload | OnDisk


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
    # What the importer should know about the store itself (its demo accounts still open, say).
    warnings: tuple[str, ...] = ()

    @classmethod
    def not_imported(
        cls, file_name: str, fmt: str | None, reason: str, *, dry_run: bool = False
    ) -> ImportSummary:
        """A file that was not imported at all, and why (exit status 2)."""
        empty = pd.DataFrame(columns=list(REJECT_COLUMNS))
        return cls(file_name, fmt, None, 0, 0, 0, empty, error=reason, dry_run=dry_run)

    @property
    def brought_events(self) -> bool:
        """Whether the file is of a format that brings clinical events rather than results."""
        return self.format in _EVENT_FORMATS

    @property
    def exit_code(self) -> int:
        """0 every record accepted, 1 some refused (the rest landed), 2 the file was not imported
        (unusable, or refused to be read again in another zone)."""
        if self.error:
            return 2
        return 1 if len(self.rejected) else 0


def import_file(
    session: Session,
    content: FileContent,
    *,
    sha256: str,
    options: ImportOptions,
    progress: Progress | None,
    now: datetime,
) -> ImportSummary:
    """Import one file inside the caller's transaction (``sha256``: its content's).

    ``options.teams`` receive every patient the file's results name, in the same transaction; the summary
    counts them, and the patients left in no team (only administrators see those).

    Content imported before changes nothing and its latest import is reported, unless ``options.again``:
    then the records that import refused (by their place in the file) are read again, so that those refused
    for a reason since put right (their patient was not yet in the store, a CSV's times needed a zone) can
    land. Every other record is left as the store has it (counted unchanged): a later correction or
    withdrawal is never undone, and no record is stored twice. The records are read again in the zone the
    file was last read in (see `_read_elsewhere`).
    """
    unknown = unknown_teams(session, options.teams)
    if unknown:
        reason = f"no team {', '.join(map(repr, unknown))} (python -m monitor teams lists them)"
        return ImportSummary.not_imported(content.name, options.format, reason, dry_run=options.dry_run)
    earlier = latest_import_of(session, sha256)
    if earlier is not None and not options.again:
        return _imported_before(session, content, earlier, options, now)
    retry = refused_locations(session, earlier.id) if earlier is not None else None
    with content.open() as binary:
        fmt, text = read_text(binary, options.format, options.column_map)
        size = content.size()
        fmt.refuse_too_large(size)
        zone = fmt.reading_zone(options.timezone, site=options.site_timezone)
        refusal = _read_elsewhere(earlier, zone) if earlier is not None else None
        if refusal is not None:
            return ImportSummary.not_imported(content.name, fmt.name, refusal, dry_run=options.dry_run)
        batch = new_batch(
            session,
            file_name=content.name,
            sha256=sha256,
            fmt=fmt.name,
            imported_by=options.imported_by,
            now=now,
            timezone=zone,
        )
        reading = _Reading(batch.id, content.name, fmt, zone, retry, options, now)
        report = (lambda: progress(binary.tell(), size)) if progress is not None else None
        if fmt.yields == "events":
            return _write_events(session, reading, fmt.pieces(text), report)
        return _write_results(session, reading, fmt.pieces(text), report, size)


@dataclass(frozen=True, slots=True)
class _Reading:
    """One file being read into its batch."""

    batch_id: int
    file_name: str
    fmt: Format
    zone: str
    # When the file is read again: where its last import refused records (only those are read).
    retry: frozenset[str] | None
    options: ImportOptions
    now: datetime


def _imported_before(
    session: Session, content: FileContent, earlier: EarlierImport, options: ImportOptions, now: datetime
) -> ImportSummary:
    """The earlier import of the same content; its patients put in ``options.teams`` when asked."""
    summary = ImportSummary(
        content.name,
        earlier.format,
        earlier.id,
        0,
        earlier.records,
        0,
        batch_rejections(session, earlier.id)[list(REJECT_COLUMNS)],
        identical_to=earlier,
        dry_run=options.dry_run,
    )
    if not options.teams:
        return summary
    # Not imported again, but read (a piece at a time) for the patients it names, who join the teams.
    zone = format_named(earlier.format).reading_zone(options.timezone, site=options.site_timezone)
    with content.open() as binary:
        fmt, text = read_text(binary, options.format, options.column_map)
        naming = [
            identifiers(frame)
            for piece, before in fmt.pieces(text)
            for parsed in (storable(fmt.parse(piece, zone, before), _LIMITS),)
            for frame in (parsed.records, parsed.others, parsed.events)
        ]
    assigned, teamless = add_to_teams(session, naming, options.teams, now=now, by=options.imported_by)
    return replace(summary, assigned=assigned, teamless=teamless)


def _write_results(
    session: Session,
    reading: _Reading,
    pieces: Iterable[tuple[str, int]],
    report: Callable[[], None] | None,
    size: int,
) -> ImportSummary:
    """Parse, normalise and write each piece of a file of results (numbered as the file's lines or
    messages)."""
    counts = WriteCounts()
    held = BatchResults(reading.batch_id)
    refused: list[pd.DataFrame] = []
    broken = good = others = pending = 0
    first_broken: pd.Series | None = None
    naming: list[pd.DataFrame] = []
    read = PieceReading(
        format_name=reading.fmt.name,
        zone=reading.zone,
        limits=_LIMITS,
        retry=reading.retry,
        imported_at=reading.now,
        future_tolerance=reading.options.future_tolerance,
        chunk=CHUNK_RESULTS,
    )
    for piece in read_ahead(read, pieces, beside=reads_beside(size)):
        if first_broken is None:
            first_broken = piece.first_broken
        broken, good = broken + piece.broken, good + piece.read
        refuse_mostly_broken(first_broken, broken, good)
        # Every patient the file names, written now or not (identifiers only): for teams and the teamless.
        naming.extend(piece.naming)
        counts.unchanged += piece.left
        refused.append(piece.rejected)
        written, refusals, new_others = write_piece(
            session, piece, batch_id=reading.batch_id, now=reading.now, held=held
        )
        counts.add(written)
        refused += refusals
        others += new_others
        pending += piece.pending
        if report is not None:
            report()
    refresh_patient_status(
        session, counts.patient_keys, now=reading.now, timezone=reading.options.site_timezone, written=held
    )
    assigned, teamless = _to_teams(session, reading, naming)
    rejected = _keep_refused(session, reading, refused)
    finish_batch(
        session,
        reading.batch_id,
        accepted=counts.accepted,
        unchanged=counts.unchanged,
        superseded=counts.superseded,
        rejected=len(rejected),
    )
    return ImportSummary(
        reading.file_name,
        reading.fmt.name,
        reading.batch_id,
        counts.accepted,
        counts.unchanged,
        counts.superseded,
        rejected,
        derived=counts.derived,
        others=others,
        pending=pending,
        dry_run=reading.options.dry_run,
        assigned=assigned,
        teamless=teamless,
    )


def write_piece(
    session: Session, piece: ReadPiece, *, batch_id: int, now: datetime, held: BatchResults
) -> tuple[WriteCounts, list[pd.DataFrame], int]:
    """Write one read piece: its results generation by generation, then its observations outside the CBC.
    Returns what the results came to, the refusals of normalising and writing them, and how many other
    observations were new (the live feed writes its groups through this too: ``services.feed``)."""
    counts = WriteCounts()
    refused: list[pd.DataFrame] = []
    for normalised in piece.chunks:
        written = write_generations(
            session, normalised.results, piece.patients, batch_id=batch_id, now=now, held=held
        )
        counts.add(written)
        refused += [normalised.rejected, written.rejected]
    return counts, refused, write_others(session, piece.others, batch_id=batch_id, now=now)


def reads_beside(size: int) -> bool:
    """Whether a second process should read the file ahead: a file of several pieces, on a machine of four
    cores or more with one idle (the last minute's load average leaves one whole).

    On two cores it saved 10-18 % of a 1,000,000-result import when idle and cost a third when busy, and the
    two processes together peaked at 1.8 GB importing 8,000,000 results, over the 1.5 GB an import may take
    (docs/benchmarks.md, 2026-12-04, evening): there the file is read and written in turn.
    """
    if size < READ_BESIDE_BYTES:
        return False
    cores = usable_cores()
    return cores >= READ_BESIDE_CORES and os.getloadavg()[0] < cores - 1


def read_ahead(read: PieceReading, pieces: Iterable[tuple[str, int]], *, beside: bool) -> Iterator[ReadPiece]:
    """Each piece read (``read``), in file order. With ``beside``, a second process reads the next piece
    while the caller writes this one (``services.piece_reader``); the first piece is read here while that
    process starts.
    """
    remaining = iter(pieces)
    if not beside:
        yield from (read(text, before) for text, before in remaining)
        return
    first = next(remaining, None)
    if first is None:
        return
    reader = PieceReader(read)
    try:
        following = next(remaining, None)
        if following is not None:
            reader.send(*following)
        yield read(*first)
        while following is not None:
            piece = reader.receive()
            following = next(remaining, None)
            if following is not None:
                reader.send(*following)
            yield piece
    finally:
        reader.close()


def _write_events(
    session: Session,
    reading: _Reading,
    pieces: Iterable[tuple[str, int]],
    report: Callable[[], None] | None,
) -> ImportSummary:
    """Parse and write a file of clinical events (they name patients already in the store)."""
    refused: list[pd.DataFrame] = []
    naming: list[pd.DataFrame] = []
    added = unchanged = 0
    touched: set[int] = set()
    for text, before in pieces:
        parsed = storable(reading.fmt.parse(text, reading.zone, before), _LIMITS)
        events, rejected = parsed.events, parsed.rejected
        naming.append(identifiers(events))
        if reading.retry is not None:  # read again: only the events refused last time
            events, left = retried(events, reading.retry)
            rejected = rejected[rejected["location"].isin(reading.retry).to_numpy()]
            unchanged += left
        new, unknown, keys = write_events(
            session,
            events,
            batch_id=reading.batch_id,
            imported_by=reading.options.imported_by,
            now=reading.now,
        )
        added, unchanged = added + new, unchanged + len(events) - new - len(unknown)
        touched.update(keys)
        refused += [rejected, unknown]
        if report is not None:
            report()
    # A chemotherapy, G-CSF or fever event changes its patient's cycles, readiness, trend and priority: their
    # status is recomputed in the same transaction, as an import of results does.
    refresh_patient_status(session, sorted(touched), now=reading.now, timezone=reading.options.site_timezone)
    assigned, teamless = _to_teams(session, reading, naming)
    rejected = _keep_refused(session, reading, refused)
    finish_batch(
        session, reading.batch_id, accepted=added, unchanged=unchanged, superseded=0, rejected=len(rejected)
    )
    return ImportSummary(
        reading.file_name,
        reading.fmt.name,
        reading.batch_id,
        added,
        unchanged,
        0,
        rejected,
        events=added,
        dry_run=reading.options.dry_run,
        assigned=assigned,
        teamless=teamless,
    )


def _to_teams(session: Session, reading: _Reading, naming: list[pd.DataFrame]) -> tuple[int, int]:
    options = reading.options
    return add_to_teams(session, naming, options.teams, now=reading.now, by=options.imported_by)


def _keep_refused(session: Session, reading: _Reading, refused: list[pd.DataFrame]) -> pd.DataFrame:
    """Every refusal of the file, in file order, kept in the store for review."""
    rejected = in_file_order(pd.concat(refused, ignore_index=True))
    keep_rejected(session, reading.batch_id, rejected)
    return rejected


def _read_elsewhere(latest: EarlierImport, zone: str) -> str | None:
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
