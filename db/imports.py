"""The store's side of an import: earlier imports of the same content and where they refused records, the
batch's counts, an unusable file kept for review, the patients a file names put in teams, and whether a failed
write collided with a concurrent import. Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from db.accounts import assign_patients, without_team
from db.frames import read_frame_in
from db.ingest import keep_rejected, new_batch
from db.models import ImportBatch, Patient, RejectedRecord, Team

_log = logging.getLogger(__name__)

# PostgreSQL: unique violation, deadlock, serialization failure (SQLSTATE).
_CONTENTION_STATES = {"23505", "40P01", "40001"}


@dataclass(frozen=True, slots=True)
class EarlierImport:
    """An import that already brought a file's exact content: a copy, readable after the session ends
    (a dry run rolls its session back, which would leave a stored object unreadable)."""

    id: int
    file_name: str
    format: str
    imported_at: datetime
    # The zone its times without an offset were read in ('' refused, None not recorded).
    timezone: str | None
    # Its records accepted, unchanged or superseding (not those refused).
    records: int


def latest_import_of(session: Session, sha256: str) -> EarlierImport | None:
    """The latest import of content with this SHA-256 (an unusable file's record aside), if any."""
    batch = session.scalars(
        select(ImportBatch)
        .where(ImportBatch.content_sha256 == sha256, ImportBatch.format != "unusable")
        .order_by(ImportBatch.id.desc())
        .limit(1)
    ).first()
    if batch is None:
        return None
    records = batch.accepted + batch.unchanged + batch.superseded
    return EarlierImport(batch.id, batch.file_name, batch.format, batch.imported_at, batch.timezone, records)


def import_exists(session: Session, batch_id: int) -> bool:
    """Whether there is an import numbered ``batch_id``."""
    return session.get(ImportBatch, batch_id) is not None


def refused_locations(session: Session, batch_id: int) -> frozenset[str]:
    """Where in the file an import refused records (line, or message and segment): what reading the same
    content again retries."""
    return frozenset(
        session.scalars(select(RejectedRecord.location).where(RejectedRecord.batch_id == batch_id))
    )


def finish_batch(
    session: Session, batch_id: int, *, accepted: int, unchanged: int, superseded: int, rejected: int
) -> None:
    """Record what became of a batch's records."""
    batch = session.get_one(ImportBatch, batch_id)
    batch.accepted, batch.unchanged, batch.superseded, batch.rejected = (
        accepted,
        unchanged,
        superseded,
        rejected,
    )


def record_unusable(
    session: Session,
    *,
    file_name: str,
    sha256: str,
    beginning: str,
    reason: str,
    imported_by: str,
    now: datetime,
) -> int:
    """Keep an unusable file's beginning and the reason, in a batch of its own; return its number."""
    batch = new_batch(
        session, file_name=file_name, sha256=sha256, fmt="unusable", imported_by=imported_by, now=now
    )
    batch.rejected = 1
    keep_rejected(
        session, batch.id, pd.DataFrame([{"location": "file", "raw_text": beginning, "reason": reason}])
    )
    return batch.id


def unknown_teams(session: Session, codes: Sequence[str]) -> list[str]:
    """The codes among ``codes`` that name no team."""
    return [code for code in codes if session.scalar(select(Team.id).where(Team.code == code)) is None]


def add_to_teams(
    session: Session, naming: Sequence[pd.DataFrame], teams: Sequence[str], *, now: datetime, by: str
) -> tuple[int, int]:
    """Put the stored patients ``naming`` names ((assigning authority, patient identifier) frames) in
    ``teams``; return how many memberships were added and how many of those patients are in no team."""
    named = patients_named(session, naming)
    assigned = sum(assign_patients(session, named, team, now=now, by=by) for team in teams)
    return assigned, without_team(session, named)


def patients_named(session: Session, naming: Sequence[pd.DataFrame]) -> list[int]:
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


def is_contention(error: BaseException) -> bool:
    """A collision with a concurrent writer, as opposed to a genuine error in this file or the store.

    Bulk writes go through the raw driver, so the driver's own errors arrive as well as SQLAlchemy's.
    """
    cause = getattr(error, "orig", None) or error
    if getattr(cause, "sqlstate", None) in _CONTENTION_STATES:
        return True
    text = str(cause).lower()
    unique = "unique constraint failed" in text or "duplicate key" in text
    return unique or "database is locked" in text or "deadlock detected" in text


# PostgreSQL plans its reads from statistics its autovacuum refreshes once a tenth of a table has changed,
# up to a minute later (autovacuum_analyze_scale_factor 0.1, autovacuum_naptime 1 min: PostgreSQL manual,
# "The Autovacuum Daemon"). An import that grew the results by more than that refreshes them at once.
GROWTH_TO_ANALYZE = 0.1
RESULTS_TO_ANALYZE = 10_000


def refresh_statistics(engine: Engine, results: int) -> bool:
    """After an import committed ``results`` new results: on PostgreSQL, when they are at least
    ``RESULTS_TO_ANALYZE`` and more than ``GROWTH_TO_ANALYZE`` of the table it held before, ``ANALYZE``
    the panels and results, so that the next status read (the recompute right after a large first import,
    a page) is planned for the tables as they are now: planned for an empty table, the panel counts of
    2,000 patients took 0.94 s instead of 0.38 s. Outside the import's transaction, so that its lock (one
    ANALYZE of a table at a time) never holds up another import, and waiting at most 2 s for the tables.
    True when it ran; a failure is logged (its kind only: no patient data) and otherwise ignored: the
    import has landed, and autovacuum does the same later."""
    if engine.dialect.name != "postgresql" or results < RESULTS_TO_ANALYZE:
        return False
    try:
        with engine.connect() as connection:
            # The rows the statistics last counted (-1 when never counted): the table before the import.
            counted = connection.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'result'::regclass"))
            held = max(float(counted or 0), 0.0)
            if results <= GROWTH_TO_ANALYZE * held:
                return False
            # Never long behind another analysis or a vacuum: autovacuum catches up later instead.
            connection.execute(text("SET LOCAL lock_timeout = '2s'"))
            connection.execute(text("SET LOCAL statement_timeout = '120s'"))
            connection.execute(text("ANALYZE panel, result"))
            connection.commit()
    except Exception as error:  # noqa: BLE001 - the import has landed whatever happens here
        _log.warning("refreshing the planner's statistics after an import failed: %s", type(error).__name__)
        return False
    return True
