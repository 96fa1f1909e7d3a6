"""A live feed's common group written on PostgreSQL in two round trips: its reads in one, its writes and the
commit in the next, through psycopg's pipeline mode.

A listener writes hundreds of small groups a second (a message or so from each connection). Through the
ORM, each of a group's nine statements cost the listener more time than it cost the database, and each
waited for the server's answer before the next was sent. Here the same statements, built from the same
tables and compiled once, are queued on the driver's connection and sent together: the reads (messages
answered before, the patients and their panels in the span, the new panels' ids), then every write and
the commit. `services.feed.FeedWriter` sends a group this way only when it is of the common case (new
panels of known patients and labs, nothing to complete, nothing refused); anything else is written by
``db.ingest`` as a file import writes it.

Psycopg's documentation of the pipeline mode: https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.sql import ClauseElement

from db.models import FeedMessage, ImportBatch, Panel, Patient, Result, StatusPending
from db.types import UTCDateTime

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined]

_ANSWERED = select(FeedMessage.message_key).where(
    FeedMessage.message_key == any_(bindparam("keys", type_=ARRAY(String)))
)
_KNOWN = (
    select(
        Patient.assigning_authority,
        Patient.mrn,
        Patient.id,
        Patient.birth_date,
        Patient.sex,
        Panel.collected_at,
        Panel.lab_id,
        Panel.accession,
    )
    .select_from(Patient)
    .outerjoin(
        Panel,
        (Panel.patient_id == Patient.id)
        & (Panel.collected_at >= bindparam("first", type_=UTCDateTime))
        & (Panel.collected_at <= bindparam("last", type_=UTCDateTime)),
    )
    .where(Patient.mrn == any_(bindparam("mrns", type_=ARRAY(String))))
)
_PANEL_IDS = "SELECT nextval(pg_get_serial_sequence('panel', 'id')) FROM generate_series(1, %(count)s)"
_PENDING_INSERT = postgresql_insert(StatusPending)
_PENDING = _PENDING_INSERT.on_conflict_do_update(
    index_elements=[StatusPending.patient_id], set_={"since": _PENDING_INSERT.excluded.since}
)
_INSERTS = {"panel": insert(Panel), "result": insert(Result), "feed_message": insert(FeedMessage)}
_ADD_TO_BATCH = (
    update(ImportBatch)
    .where(ImportBatch.id == bindparam("batch_id"))
    .values(accepted=ImportBatch.accepted + bindparam("accepted", type_=Integer))
)


@cache
def _sql(statement: ClauseElement, columns: tuple[str, ...] = ()) -> str:
    """A statement's SQL for psycopg (named ``%(name)s`` parameters), compiled once."""
    compiled = statement.compile(dialect=_DIALECT, column_keys=list(columns) or None)
    return str(compiled)


@dataclass(frozen=True, slots=True)
class Known:
    """What the store holds that a group's writing depends on."""

    answered: set[str]  # message keys answered before
    # (assigning authority, identifier) -> (patient key, birth date, sex)
    patients: dict[tuple[str, str], tuple[int, date | None, str | None]]
    panels: set[tuple[int, datetime, int, str]]  # natural keys of their panels collected in the span
    panel_ids: list[int]  # ids drawn for the new panels


def look(
    connection: Any, *, keys: Sequence[str], mrns: Sequence[str], span: tuple[datetime, datetime], panels: int
) -> Known:
    """One round trip: the messages of ``keys`` answered before, the patients of ``mrns`` with their panels
    collected within ``span``, and ``panels`` new panel ids (a psycopg connection, in a transaction)."""
    with connection.pipeline() as pipeline:
        answered = connection.execute(_sql(_ANSWERED), {"keys": list(keys)})
        known = connection.execute(
            _sql(_KNOWN), {"mrns": sorted(set(mrns)), "first": span[0], "last": span[1]}
        )
        ids = connection.execute(_PANEL_IDS, {"count": panels})
        pipeline.sync()
        found_keys = {str(row[0]) for row in answered.fetchall()}
        patients: dict[tuple[str, str], tuple[int, date | None, str | None]] = {}
        stored: set[tuple[int, datetime, int, str]] = set()
        for authority, mrn, key, birth, sex, collected_at, lab_id, accession in known.fetchall():
            patients[(str(authority), str(mrn))] = (int(key), birth, sex)
            if collected_at is not None:
                stored.add((int(key), collected_at, int(lab_id), str(accession)))
        panel_ids = [int(row[0]) for row in ids.fetchall()]
    return Known(found_keys, patients, stored, panel_ids)


def write(
    connection: Any,
    *,
    panels: list[dict[str, Any]],
    results: list[dict[str, Any]],
    pending: Sequence[int],
    messages: list[dict[str, Any]],
    batch_id: int,
    now: datetime,
) -> None:
    """One round trip: the new ``panels`` and ``results`` (`db.ingest.new_panel_rows`), the patients whose
    status waits (``pending``, as `db.feed.mark_pending` marks them), the ``messages`` with their
    acknowledgements (`db.feed.record_messages`) and the batch's count, then the commit."""
    with connection.pipeline():
        cursor = connection.cursor()
        for name, rows in (("panel", panels), ("result", results), ("feed_message", messages)):
            if rows:
                cursor.executemany(_sql(_INSERTS[name], tuple(rows[0])), rows)
        if pending:
            rows = [{"patient_id": key, "since": now} for key in sorted(set(pending))]
            cursor.executemany(_sql(_PENDING, ("patient_id", "since")), rows)
        cursor.execute(_sql(_ADD_TO_BATCH), {"batch_id": batch_id, "accepted": len(results)})
        connection.commit()
