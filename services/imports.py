"""Importing result and event files, and what past imports brought and refused: the use cases of
``python -m monitor import`` and ``imports`` and of the Import page.

Each file is imported in its own transaction: detected (``monitor.formats.registry``), parsed, normalised
and written all or nothing (``services.import_file``). A file whose bytes were imported before changes
nothing (its latest import is reported), unless it is read again (``again``): then only the records that
import refused are read, so that those refused for a cause since put right can land. A file that cannot be
read at all is still recorded, with the reason, so that nothing sent to the store goes unseen. A dry run
does all of it inside a transaction that is then rolled back.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import Viewer, team_list
from db.audit import audit_view
from db.imports import EarlierImport, import_exists, is_contention, record_unusable, refresh_statistics
from db.queries import batch_rejections, import_batches
from monitor.formats.csv_long import UnusableFile
from monitor.formats.parsed import RAW_TEXT_LIMIT
from monitor.formats.registry import FORMAT_NAMES
from services.accounts import require_administrator
from services.admin import demo_account_warnings
from services.import_file import (
    FileContent,
    ImportOptions,
    ImportSummary,
    OnDisk,
    Progress,
    Upload,
    import_file,
)

__all__ = [
    "FORMAT_NAMES",
    "EarlierImport",
    "ImportOptions",
    "ImportSummary",
    "NoSuchImport",
    "Progress",
    "import_content",
    "import_history",
    "import_path",
    "refused_records",
    "team_codes",
]

# Attempts of one file's transaction when concurrent imports collide (see _import).
CONCURRENT_ATTEMPTS = 6


class NoSuchImport(LookupError):
    """No import has the number asked for."""


def import_path(
    store: sessionmaker[Session],
    path: Path,
    *,
    options: ImportOptions,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Import one file from disk, read in blocks, in its own transaction.

    CSV and HL7 files are read, parsed and written a piece at a time, so memory stays bounded for any file
    size; ``progress`` is called with the bytes read so far and the file's size. ``now``: the time the
    import is recorded at (default: the clock, at each attempt).
    """
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        return ImportSummary.not_imported(path.name, options.format, f"cannot read: {error.strerror}")
    return _import(store, OnDisk(path), options, progress, now)


def import_content(
    store: sessionmaker[Session],
    name: str,
    data: bytes,
    *,
    options: ImportOptions,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Import one file's bytes (an upload) in its own transaction (see `import_path`)."""
    return _import(store, Upload(name, data), options, progress, now)


def import_history(store: sessionmaker[Session], *, viewer: Viewer, limit: int = 200) -> pd.DataFrame:
    """The most recent imports, newest first, with what became of their records (administrators only)."""
    require_administrator(viewer, "see past imports")
    with store() as session:
        return import_batches(session, limit=limit)


def team_codes(store: sessionmaker[Session]) -> list[str]:
    """The care teams' codes, for choosing where imported patients go."""
    with store() as session:
        return [str(code) for code in team_list(session)["code"]]


def refused_records(
    store: sessionmaker[Session], batch_id: int, *, viewer: Viewer, now: datetime, where: str = ""
) -> pd.DataFrame:
    """The records import ``batch_id`` refused, verbatim with their reasons (``location``, ``reason``,
    ``raw_text``), for administrators. They hold patient data of every patient in the file, whatever their
    team, so the view is audited in the same transaction; ``where`` names the place it was seen from in the
    trail ("command line").

    Raises
    ------
    PermissionError
        When ``viewer`` is not an administrator (nothing is read or audited).
    NoSuchImport
        When there is no such import (nothing is audited).
    """
    require_administrator(viewer, "see an import's refused records")
    what = f"refused records of import {batch_id}"
    with store.begin() as session:
        if not import_exists(session, batch_id):
            raise NoSuchImport(f"there is no import #{batch_id}")
        refused = batch_rejections(session, batch_id)
        audit_view(session, viewer, None, f"{where}: {what}" if where else what, now=now)
    return refused


def _import(
    store: sessionmaker[Session],
    content: FileContent,
    options: ImportOptions,
    progress: Progress | None,
    now: datetime | None,
) -> ImportSummary:
    """Import one file in its own transaction: a failure part-way leaves the store as it was.

    A dry run does the same work and rolls it back, so it reports exactly what an import would do.
    """
    with content.open() as handle:  # read once: every attempt and the record of an unusable file reuse it
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()

    def within(session: Session) -> ImportSummary:
        stamp = now or _clock()
        summary = import_file(session, content, sha256=sha256, options=options, progress=progress, now=stamp)
        # Real data going into a store whose demo accounts still open with the published password.
        return summary if summary.error else replace(summary, warnings=demo_account_warnings(session))

    try:
        for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
            try:
                if options.dry_run:
                    with store() as session:  # never committed: rolled back when it closes
                        return within(session)
                with store.begin() as session:
                    summary = within(session)
                    bind = session.get_bind()
                break
            except Exception as error:  # noqa: BLE001 - re-raised unless it is a collision (below)
                # Another import wrote the same patient, panel or file first (a unique key), or held the
                # store (SQLite's lock, a PostgreSQL deadlock): this transaction rolled back whole, so the
                # file is simply imported again, now seeing what the other one stored.
                if attempt == CONCURRENT_ATTEMPTS or not is_contention(error):
                    raise
                time.sleep(random.uniform(0.2, 1.0) * attempt)
        else:
            raise AssertionError("unreachable")
    except UnusableFile as error:
        if not options.dry_run:
            with content.open() as handle:
                beginning = handle.read(RAW_TEXT_LIMIT).decode("utf-8", errors="replace")
            with store.begin() as session:
                record_unusable(
                    session,
                    file_name=content.name,
                    sha256=sha256,
                    beginning=beginning,
                    reason=str(error),
                    imported_by=options.imported_by,
                    now=now or _clock(),
                )
        return ImportSummary.not_imported(content.name, options.format, str(error), dry_run=options.dry_run)
    # The import has landed: this only helps the reads after it, and never fails it.
    if isinstance(bind, Engine):
        refresh_statistics(bind, summary.accepted)
    return summary


def _clock() -> datetime:
    return datetime.now(UTC)
