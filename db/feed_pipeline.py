"""A live feed's common group written on PostgreSQL in two round trips: one statement reads what the
writing depends on, one statement writes everything and the commit goes with it (psycopg's pipeline mode).

A listener writes hundreds of small groups a second (a message or so from each connection). Through the
ORM, each of a group's nine statements cost the listener more time than it cost the database, and each
waited for the server's answer before the next was sent. Here the statements are built from the same
tables and compiled once; the rows travel as one JSON parameter per table (``json_to_recordset`` reads them
back in the columns' types), and the inserts ride as data-modifying WITH queries on the batch's count
update. `services.feed.FeedWriter` sends a group this way only when it is of the common case (new panels of
known patients and labs, nothing to complete, nothing refused); anything else is written by ``db.ingest``
as a file import writes it.

PostgreSQL's documentation of data-modifying statements in WITH:
https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING ; psycopg's of the
pipeline mode: https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    String,
    any_,
    bindparam,
    column,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.sql import ClauseElement

from db.feed import pending_first_panel
from db.models import Base, FeedMessage, ImportBatch, Panel, Patient, PatientTeam, Result, StatusPending, Team
from db.types import UTCDateTime

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined]

# The patients asked for, by (assigning authority, identifier): the pairs as two arrays read side by side.
_WANTED = (
    func.unnest(bindparam("authorities", type_=ARRAY(String)), bindparam("mrns", type_=ARRAY(String)))
    .table_valued("authority", "mrn")
    .render_derived(name="wanted")
)
# Each stored patient asked for, with each of its panels collected at one of the times asked for (a row
# without a panel when none), and on every row the message keys answered before and the new panels' ids
# (subqueries without a reference to the row: the server computes them once).
_LOOK = (
    select(
        Patient.assigning_authority,
        Patient.mrn,
        Patient.id,
        Patient.birth_date,
        Patient.sex,
        Panel.collected_at,
        Panel.lab_id,
        Panel.accession,
        select(func.array_agg(FeedMessage.message_key))
        .where(FeedMessage.message_key == any_(bindparam("keys", type_=ARRAY(String))))
        .scalar_subquery(),
        select(
            func.array_agg(
                func.nextval(func.pg_get_serial_sequence(literal_column("'panel'"), literal_column("'id'")))
            )
        )
        .select_from(func.generate_series(literal_column("1"), bindparam("count", type_=Integer)))
        .scalar_subquery(),
        # The patient's memberships of the teams asked for.
        select(func.count())
        .select_from(PatientTeam)
        .join(Team, Team.id == PatientTeam.team_id)
        .where(
            PatientTeam.patient_id == Patient.id, Team.code == any_(bindparam("teams", type_=ARRAY(String)))
        )
        .scalar_subquery(),
    )
    .select_from(_WANTED)
    .join(Patient, (Patient.assigning_authority == _WANTED.c.authority) & (Patient.mrn == _WANTED.c.mrn))
    .outerjoin(
        Panel,
        (Panel.patient_id == Patient.id)
        & (Panel.collected_at == any_(bindparam("times", type_=ARRAY(UTCDateTime)))),
    )
)
_MODELS: dict[str, type[Base]] = {
    model.__tablename__: model for model in (Panel, Result, FeedMessage, StatusPending)
}
_ADD_TO_BATCH = (
    update(ImportBatch)
    .where(ImportBatch.id == bindparam("batch_id"))
    .values(accepted=ImportBatch.accepted + bindparam("accepted", type_=Integer))
)


@cache
def _sql(statement: ClauseElement) -> str:
    """A statement's SQL for psycopg (named ``%(name)s`` parameters), compiled once."""
    return str(statement.compile(dialect=_DIALECT))


def _insert(table_name: str, columns: tuple[str, ...]) -> Any:
    """An INSERT of rows of ``columns`` handed over as one JSON array (parameter ``<table>_rows``), each
    read back in its column's type. Into ``status_pending``, a patient already waiting has its time moved
    on."""
    model = _MODELS[table_name]
    table = model.__table__
    given = (
        func.json_to_recordset(bindparam(f"{table_name}_rows", type_=JSON))
        .table_valued(*(column(name, table.c[name].type) for name in columns))
        .render_derived(name=f"given_{table_name}", with_types=True)
    )
    rows = select(*(given.c[name] for name in columns))
    if table_name != "status_pending":
        return insert(model).from_select(list(columns), rows)
    statement = postgresql_insert(model).from_select(list(columns), rows)
    return statement.on_conflict_do_update(
        index_elements=["patient_id"],
        set_={
            "since": statement.excluded.since,
            "first_panel": pending_first_panel(statement.excluded.first_panel),
        },
    )


@cache
def _write_sql(shapes: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """One statement for a group's writes: the batch's count updated, and with it (as data-modifying WITH
    queries) the inserts of ``shapes`` (each a table's name and the columns given), compiled once a shape."""
    inserts = [_insert(name, columns).cte(f"new_{name}") for name, columns in shapes]
    return _sql(_ADD_TO_BATCH.add_cte(*inserts))


def _json_value(value: Any) -> Any:
    """A value JSON has no type for: a time, as ISO 8601 text with its offset (read back exactly)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


@dataclass(frozen=True, slots=True)
class Known:
    """What the store holds that a group's writing depends on."""

    answered: set[str]  # message keys answered before
    # (assigning authority, identifier) -> (patient key, birth date, sex)
    patients: dict[tuple[str, str], tuple[int, date | None, str | None]]
    panels: set[tuple[int, datetime, int, str]]  # natural keys of their panels collected at those times
    panel_ids: list[int]  # ids drawn for the new panels
    outside_teams: bool  # some patient not yet in every team asked for


def look(
    connection: Any,
    *,
    keys: Sequence[str],
    patients: Collection[tuple[str, str]],
    times: Collection[datetime],
    panels: int,
    teams: Sequence[str] = (),
) -> Known | None:
    """One statement: the messages of ``keys`` answered before, the ``patients`` ((assigning authority,
    identifier) pairs) stored, with their panels collected at any of ``times``, ``panels`` new panel ids,
    and whether each patient is in every one of ``teams`` (on a psycopg connection, in its transaction).
    None when no patient of them is stored."""
    pairs = sorted(set(patients))
    wanted_teams = sorted(set(teams))
    parameters: dict[str, Any] = {
        "authorities": [authority for authority, _ in pairs],
        "mrns": [mrn for _, mrn in pairs],
        "times": sorted(set(times)),
        "keys": list(keys),
        "count": panels,
        "teams": wanted_teams,
    }
    rows = connection.execute(_sql(_LOOK), parameters).fetchall()
    if not rows:
        return None
    stored_patients: dict[tuple[str, str], tuple[int, date | None, str | None]] = {}
    stored: set[tuple[int, datetime, int, str]] = set()
    outside = False
    for authority, mrn, key, birth, sex, collected_at, lab_id, accession, _, _, members in rows:
        stored_patients[(str(authority), str(mrn))] = (int(key), birth, sex)
        if collected_at is not None:
            stored.add((int(key), collected_at, int(lab_id), str(accession)))
        outside = outside or members < len(wanted_teams)
    answered, ids = rows[0][8], rows[0][9]
    return Known(set(answered or ()), stored_patients, stored, [int(key) for key in ids], outside)


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
    """One statement and the commit, in one round trip: the new ``panels`` and ``results``
    (`db.ingest.new_panel_rows`), the patients whose status waits (``pending``, as `db.feed.mark_pending`
    marks them), the ``messages`` with their acknowledgements (`db.feed.record_messages`) and the batch's
    count."""
    tables = {
        "panel": panels,
        "result": results,
        "feed_message": messages,
        "status_pending": [
            {"patient_id": key, "since": now, "first_panel": min(row["id"] for row in panels)}
            for key in sorted(set(pending))
        ],
    }
    given = {name: rows for name, rows in tables.items() if rows}
    parameters: dict[str, Any] = {
        f"{name}_rows": json.dumps(rows, default=_json_value, allow_nan=False, ensure_ascii=False)
        for name, rows in given.items()
    }
    parameters.update(batch_id=batch_id, accepted=len(results))
    statement = _write_sql(tuple((name, tuple(rows[0])) for name, rows in given.items()))
    with connection.pipeline():
        connection.execute(statement, parameters)
        connection.commit()
