"""The audit trail: who saw or changed what, which patient, when. Rows are only ever added (the store
refuses changes); details carry identifiers of what was done and what a user typed (a comment, a
patient range and its reason), never a password or a patient's result.

What is recorded is one of ``db.models.AUDIT_ACTIONS``; who did it is a signed-in username, or for the
command line ``cli:`` and the login that ran it (``command_line_actor``).

The trail is a hash chain: each row's ``row_hash`` is the SHA-256 of the previous row's hash (``GENESIS``
before the first) and the row's own content (``chain_hash``), and its time is the store's clock, read when
the row is written. Writers take the chain in turn (a lock on PostgreSQL, the write lock on SQLite), so
that two transactions never chain to the same row; ``verify_chain`` recomputes the chain and names the
first row that does not follow.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection, event, func, literal_column, select, text
from sqlalchemy.orm import Session

from db.frames import bulk_insert, read_frame, settle
from db.models import AUDIT_ACTIONS, AUDIT_DETAILS_LIMIT, AuditAction, AuditLog, Patient

if TYPE_CHECKING:
    from db.accounts import Viewer

# How the command line names who ran it: this prefix and their login.
COMMAND_LINE_PREFIX = "cli:"
# How account and team changes made on the command line named the login before the prefix was the only
# spelling (settings and lab-range changes named the login alone). Rows keep what they were written with.
_FORMER_COMMAND_LINE_SUFFIX = " (command line)"


def command_line_actor(login: str) -> str:
    """The trail's name for someone who ran a command under ``login``.

    >>> command_line_actor("alice")
    'cli:alice'
    """
    return f"{COMMAND_LINE_PREFIX}{login}"


def actor_spellings(name: str) -> tuple[str, ...]:
    """Every name the trail may hold for the person ``name`` (given bare or in any of these spellings).

    >>> actor_spellings("alice")
    ('alice', 'cli:alice', 'alice (command line)')
    >>> actor_spellings("cli:alice") == actor_spellings("alice (command line)") == actor_spellings("alice")
    True
    """
    bare = name.strip().removeprefix(COMMAND_LINE_PREFIX).removesuffix(_FORMER_COMMAND_LINE_SUFFIX).strip()
    return (bare, command_line_actor(bare), f"{bare}{_FORMER_COMMAND_LINE_SUFFIX}")


def _checked(action: str) -> str:
    if action not in AUDIT_ACTIONS:  # the store refuses it too; this names it
        raise ValueError(f"{action!r} is not an audit action (db.models.AUDIT_ACTIONS)")
    return action


# The hash the first row chains to (migration 0017 chained the rows already stored from it too).
GENESIS = "0" * 64
# The key of the PostgreSQL advisory lock writers of the trail take in turn (any number of this project's).
CHAIN_LOCK = 0x6D6F6E69746F72  # "monitor"
# How many broken rows ``verify_chain`` names (it counts them all), and how many rows it reads at a time.
NAMED_BREAKS = 20
VERIFY_CHUNK = 50_000
# From how many rows a write goes through ``bulk_insert`` (a frame costs more than it saves for a few).
BULK_FROM = 100
# A string as JSON writes it (``ensure_ascii=False``), remembered: users, actions and details repeat.
_json_string = functools.lru_cache(maxsize=8192)(json.encoder.encode_basestring)


def canonical_time(at: datetime) -> str:
    """A row's time as the chain hashes it: UTC, to the microsecond.

    >>> canonical_time(datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    '2026-12-02T09:30:00.000000Z'
    """
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(
    previous: str, *, id: int, at: str, username: str, action: str, patient_id: int | None, details: str
) -> str:
    """The hash of a row: SHA-256 over the previous row's hash and this row's content (``at`` as
    ``canonical_time`` gives it), written as one compact JSON list so that no two contents read alike.

    >>> chain_hash(GENESIS, id=1, at="2026-12-02T09:30:00.000000Z", username="alice", action="view",
    ...            patient_id=None, details="{}")[:16]
    '2fd621a2dd7001f9'
    """
    # json.dumps([id, at, username, action, patient_id, details], ensure_ascii=False, separators=(",", ":")),
    # written out: the same text at half the cost (tests/test_audit_chain.py compares the two).
    patient = "null" if patient_id is None else int(patient_id)
    content = (
        f"[{int(id)},{_json_string(at)},{_json_string(username)},{_json_string(action)},{patient},"
        f"{_json_string(details)}]"
    )
    return hashlib.sha256((previous + content).encode("utf-8")).hexdigest()


def _details_text(details: dict[str, Any] | None) -> str:
    text_ = json.dumps(details or {}, sort_keys=True, default=str)
    size = len(text_.encode("utf-8"))
    if size > AUDIT_DETAILS_LIMIT:  # a reason or a label pasted a million times over: refused, not cut
        raise ValueError(
            f"what would be recorded in the audit trail is too long ({size:,} bytes; at most "
            f"{AUDIT_DETAILS_LIMIT:,}): shorten the text typed"
        )
    return text_


def _take_the_chain(connection: Connection, count: int) -> tuple[list[int], datetime, str]:
    """Ids for ``count`` new rows, the store's clock and the last row's hash, read while holding the
    trail's write lock (so no other transaction can chain to the same row until this one ends)."""
    # The row of the greatest id, found through the primary key (not a scan ordered backwards).
    newest = select(func.max(AuditLog.id)).scalar_subquery()
    last = select(AuditLog.row_hash).where(AuditLog.id == newest).scalar_subquery()
    if connection.dialect.name == "postgresql":
        # The lock first, in a statement of its own: the next one then sees every row committed before it.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
        # now(): the transaction's time, which the store's trigger writes into every row it adds.
        sequence = literal_column("nextval(pg_get_serial_sequence('audit_log', 'id'))")
        ids_ = select(func.array_agg(sequence)).select_from(func.generate_series(1, count)).scalar_subquery()
        now, previous, ids = connection.execute(select(func.now(), last, ids_)).one()
        return sorted(ids), now, previous or GENESIS
    # A write first takes SQLite's write lock (a read alone would not): the last row read below is then
    # the last row there is until this transaction ends. The statement changes no row.
    connection.execute(text("UPDATE audit_log SET id = id WHERE 0"))
    clock, previous, last_id = connection.execute(
        select(
            func.strftime("%Y-%m-%d %H:%M:%f", "now"),
            last,
            select(func.max(AuditLog.id)).scalar_subquery(),
        )
    ).one()
    first = (last_id or 0) + 1
    now = datetime.fromisoformat(clock).replace(tzinfo=UTC)
    return list(range(first, first + count)), now, previous or GENESIS


# A row waiting for its transaction's commit: who, what, which patient, details as JSON.
Pending = tuple[str, str, int | None, str]
_PENDING = "audit_pending"


def _queue(session: Session, rows: list[Pending]) -> None:
    session.info.setdefault(_PENDING, []).extend(rows)


def _write_pending(session: Session) -> None:
    """Chain and insert the rows the transaction recorded, in one pass, just before it commits: the trail's
    lock is then held for the moment of the commit, not for the whole transaction (an import of a
    million results must not keep every page view waiting for it)."""
    rows: list[Pending] = session.info.pop(_PENDING, [])
    if not rows:
        return
    ids, now, previous = _take_the_chain(session.connection(), len(rows))
    at = canonical_time(now)
    hashes = []
    for row_id, (username, action, patient_key, details) in zip(ids, rows, strict=True):
        previous = chain_hash(
            previous,
            id=row_id,
            at=at,
            username=username,
            action=action,
            patient_id=patient_key,
            details=details,
        )
        hashes.append(previous)
    names = ("username", "action", "patient_id", "details")
    if len(rows) < BULK_FROM:
        records = [
            {"id": row_id, "at": now, "row_hash": row_hash, **dict(zip(names, row, strict=True))}
            for row_id, row, row_hash in zip(ids, rows, hashes, strict=True)
        ]
        session.connection().execute(AuditLog.__table__.insert(), records)
        return
    frame = pd.DataFrame.from_records(rows, columns=list(names))
    frame = frame.assign(
        id=ids, at=now, row_hash=hashes, patient_id=pd.array(frame["patient_id"].tolist(), dtype="Int64")
    )
    bulk_insert(session, AuditLog.__table__, frame)


def _forget_pending(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)


# Every session writes what it recorded as it commits, and forgets it if it rolls back.
event.listen(Session, "before_commit", _write_pending)
event.listen(Session, "after_rollback", _forget_pending)


def record(
    session: Session,
    *,
    at: datetime | None = None,
    username: str,
    action: AuditAction,
    patient_key: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row to the audit trail in the caller's transaction: written, chained, as it commits.

    The row's time is the store's clock at the transaction's commit (PostgreSQL: its start), not ``at``
    (the caller's, accepted and not used). Details longer than ``AUDIT_DETAILS_LIMIT`` as JSON are refused
    here (``ValueError``), before anything is written.
    """
    _queue(session, [(username, _checked(action), patient_key, _details_text(details))])


def record_for_patients(
    session: Session,
    *,
    at: datetime | None = None,
    username: str,
    action: AuditAction,
    patient_keys: Sequence[int],
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row per patient to the audit trail, written in bulk as the caller's transaction commits
    (the time is the store's clock, as for ``record``)."""
    if not len(patient_keys):
        return
    action, text_ = _checked(action), _details_text(details)
    _queue(session, [(username, action, int(key), text_) for key in patient_keys])


def audit_view(
    session: Session, viewer: Viewer, patient_key: int | None, what: str, *, now: datetime
) -> None:
    """Record that ``viewer`` looked at a patient (a page or a command), without any clinical value; or,
    with no ``patient_key``, at records that hold several patients' data (an import's refused records)."""
    record(
        session,
        at=now,
        username=viewer.username,
        action="view",
        patient_key=patient_key,
        details={"what": what},
    )


def audit_export(
    session: Session, viewer: Viewer, what: str, patient_key: int | None, *, now: datetime
) -> None:
    """Record that ``viewer`` exported something (a worklist, a flowsheet)."""
    record(
        session,
        at=now,
        username=viewer.username,
        action="export",
        patient_key=patient_key,
        details={"what": what},
    )


def audit_trail(
    session: Session,
    *,
    since: datetime | None = None,
    username: str | None = None,
    action: str | None = None,
    patient_id: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """The audit trail, newest first, filtered; with the patient's identifier where there is one.

    ``username`` finds the person under every name the trail has held for them (``actor_spellings``).
    """
    statement = (
        select(
            AuditLog.at,
            AuditLog.username,
            AuditLog.action,
            Patient.mrn.label("patient_id"),
            AuditLog.details,
        )
        .outerjoin(Patient, Patient.id == AuditLog.patient_id)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(AuditLog.at >= since)
    if username:
        statement = statement.where(AuditLog.username.in_(actor_spellings(username)))
    if action:
        statement = statement.where(AuditLog.action == action)
    if patient_id:
        statement = statement.where(Patient.mrn == patient_id)
    return read_frame(session, statement, utc=["at"])


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """A row that does not follow from the one before it, and why."""

    id: int
    at: datetime
    problem: str


@dataclass(frozen=True, slots=True)
class ChainState:
    """What ``verify_chain`` found: the rows read, the last one, and the rows that break the chain (the
    first ``NAMED_BREAKS`` of ``broken`` in all)."""

    rows: int
    last_id: int | None
    last_at: datetime | None
    head: str
    breaks: tuple[ChainBreak, ...]
    broken: int

    @property
    def intact(self) -> bool:
        return self.broken == 0


def _rows_after(session: Session, after_id: int) -> list[tuple[Any, ...]]:
    """Up to ``VERIFY_CHUNK`` rows after ``after_id`` in id order, as the driver gives them (plain tuples:
    a million rows are read in seconds), their times as ``canonical_time`` writes them."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    at = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" if postgres else "at"
    marker = "%s" if postgres else "?"
    settle(connection.info)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"SELECT id, {at}, username, action, patient_id, details, row_hash FROM audit_log "
            f"WHERE id > {marker} ORDER BY id LIMIT {VERIFY_CHUNK}",
            (after_id,),
        )
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    finally:
        cursor.close()
    if postgres:
        return rows
    # SQLite keeps the text it was given: the application's own (UTC, to the microsecond) is rewritten in
    # place; any other is read as an instant and written out again, all such rows of the chunk at once.
    rows = [
        (row[0], f"{row[1][:10]}T{row[1][11:]}Z", *row[2:])
        if len(row[1]) == 26 and row[1][10] == " "
        else row
        for row in rows
    ]
    others = [n for n, row in enumerate(rows) if not row[1].endswith("Z")]
    if others:
        moments = pd.to_datetime(pd.Series([rows[n][1] for n in others]), utc=True, format="ISO8601")
        for n, at_text in zip(others, moments.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), strict=True):
            rows[n] = (rows[n][0], at_text, *rows[n][2:])
    return rows


def _instant(at_text: str) -> datetime:
    return datetime.fromisoformat(at_text.replace("Z", "+00:00"))


def verify_chain(session: Session, *, after: ChainState | None = None) -> ChainState:
    """Recompute the trail's hash chain, row by row in id order, against the hashes stored; with
    ``after`` (an earlier result), only the rows added since, once the last row it verified is found
    unchanged.

    A row is broken when it has no hash (written around the application) or when its hash is not that of
    the row before it and its own content: it, or the row before it, was changed, or a row between them
    was removed. Each row is checked against the hash the row before it holds, so a change shows at the
    rows it touched, not at every row after.
    """
    rows, broken, breaks = 0, 0, []
    previous, last_id, last_at = GENESIS, 0, None
    if after is not None and after.last_id is not None:
        rows, broken, breaks = after.rows, after.broken, list(after.breaks)
        previous, last_id, last_at = after.head, after.last_id, after.last_at
        now_stored = session.execute(select(AuditLog.row_hash).where(AuditLog.id == after.last_id)).scalar()
        if now_stored != after.head:
            broken += 1
            breaks.append(ChainBreak(after.last_id, after.last_at, "it changed after it was verified"))
    while chunk := _rows_after(session, last_id):
        for row_id, at_text, username, action, patient_id, details, stored in chunk:
            problem = None
            if stored is None:
                problem = "it has no hash: it was written around the application"
            elif stored != chain_hash(
                previous,
                id=row_id,
                at=at_text,
                username=username,
                action=action,
                patient_id=patient_id,
                details=details,
            ):
                problem = (
                    "its hash does not follow from its content and the row before it: this row or the one "
                    "before it was changed, or a row between them was removed"
                )
            if problem is not None:
                broken += 1
                if len(breaks) < NAMED_BREAKS:
                    breaks.append(ChainBreak(row_id, _instant(at_text), problem))
            previous = stored or GENESIS
        rows += len(chunk)
        last_id, last_at = chunk[-1][0], _instant(chunk[-1][1])
    return ChainState(
        rows=rows,
        last_id=last_id or None,
        last_at=last_at,
        head=previous,
        breaks=tuple(breaks[:NAMED_BREAKS]),
        broken=broken,
    )
