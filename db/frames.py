"""Small helpers between SQLAlchemy rows and pandas frames."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Boolean, Column, Float, Integer, Select, String, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.types import UTCDateTime

T = TypeVar("T")

# Bound parameters per IN list: well under SQLite's limit, and kind to PostgreSQL's planner.
CHUNK = 2_000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_frame(session: Session, statement: Select[Any], *, utc: Iterable[str] = ()) -> pd.DataFrame:
    """Run a select and return its rows as a frame, converting columns by their declared types.

    Rows are fetched from the driver as they are and converted column by column (vectorised): times
    become ``datetime64[us, UTC]``, booleans ``bool``, JSON Python values. ``utc`` names further columns to
    read as UTC.
    """
    connection = session.connection()
    result = connection.execute(statement)
    names = list(result.keys())
    try:
        rows = result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()
    types = {column.name: column.type for column in statement.selected_columns}
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=_empty_dtype(types.get(name))) for name in names})
    frame = pd.DataFrame(rows, columns=names)
    for name in names:
        kind = types.get(name)
        if isinstance(kind, UTCDateTime) or name in utc:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").astype(
                "datetime64[us, UTC]"
            )
        elif isinstance(kind, Boolean):
            frame[name] = (
                frame[name].astype("boolean").astype(bool)
                if frame[name].notna().all()
                else frame[name].astype("boolean")
            )
        elif isinstance(kind, JSON):
            # SQLite gives the JSON text, PostgreSQL's driver the decoded value: decoded as the type would.
            decode = kind.dialect_impl(connection.dialect).result_processor(connection.dialect, None)
            if decode is not None:
                frame[name] = frame[name].map(decode)
        elif isinstance(kind, Float) and frame[name].dtype == object:
            # A number column NULL in every row arrives as None objects: numbers (NaN), so that comparing
            # it with a value is false rather than an error.
            frame[name] = frame[name].astype("float64")
    return frame


def _empty_dtype(kind: Any) -> str:
    """The dtype a column of this SQL type has when rows are present, for a frame with none."""
    if isinstance(kind, UTCDateTime):
        return "datetime64[us, UTC]"
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, Integer):
        return "int64"
    if isinstance(kind, Float):
        return "float64"
    if isinstance(kind, String):
        return "str"
    return "object"


def read_frame_in(
    session: Session, build: Any, keys: Sequence[Any], *, utc: Iterable[str] = ()
) -> pd.DataFrame:
    """``read_frame`` over ``build(chunk)`` for each chunk of ``keys`` (an IN list too long for one query)."""
    utc = tuple(utc)
    parts = [read_frame(session, build(part), utc=utc) for part in chunks(list(keys))]
    if not parts:
        return read_frame(session, build([]), utc=utc)
    return pd.concat(parts, ignore_index=True)


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts for a bulk insert: NaN and NaT become None, numbers and booleans Python objects."""
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")


def _missing(value: Any) -> bool:
    """None, NaN or NA: a missing value in a column of Python objects (lists stay values)."""
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _column_values(values: pd.Series, column: Column[Any], dialect: str) -> list[Any]:
    """One column's values as the database driver takes them (None for missing)."""
    kind = column.type
    if isinstance(kind, JSON):
        # As JSON text, which SQLite stores and PostgreSQL's COPY reads into a json column alike.
        return [None if _missing(value) else json.dumps(value) for value in values.tolist()]
    if isinstance(kind, UTCDateTime):
        moments = pd.to_datetime(values, utc=True)
        # Format each distinct instant once: results of one panel share their collection time.
        codes, uniques = pd.factorize(moments)
        pattern = "%Y-%m-%d %H:%M:%S.%f" if dialect == "sqlite" else "%Y-%m-%d %H:%M:%S.%f+00:00"
        text = pd.DatetimeIndex(uniques).strftime(pattern).to_numpy(dtype=object)
        formatted = text.take(codes) if len(uniques) else np.array([None] * len(codes), dtype=object)
        return np.where(codes < 0, None, formatted).tolist()
    if isinstance(kind, Integer) and not pd.api.types.is_integer_dtype(values):
        # A whole number held as float (a column joined with missing values): as an integer, or an error.
        whole = pd.to_numeric(values).astype("Float64").astype("Int64")
        return whole.astype(object).where(whole.notna(), None).tolist()
    if isinstance(kind, Boolean):
        flags = values.astype("boolean")
        converted = flags.astype("Int64") if dialect == "sqlite" else flags
        return converted.astype(object).where(flags.notna(), None).tolist()
    if not values.hasnans:
        return values.tolist()  # nothing missing: Python values straight from the array
    return values.astype(object).where(values.notna(), None).tolist()


def _left_to_the_database(values: pd.Series, column: Column[Any]) -> bool:
    """A column missing in every row that the database fills with NULL itself: not sent at all.

    Binding a NULL costs the driver as much as binding a value; results carry several columns that most
    feeds never fill (LOINC in a CSV, comparator, raw range, abnormal flag, superseded time), and leaving
    them out of the INSERT made a million-result import about 3 s faster (benchmarks/import_csv.py).
    """
    return column.nullable and column.server_default is None and not values.notna().any()


def bulk_insert(session: Session, table: Table, frame: pd.DataFrame) -> None:
    """Insert a frame's rows into ``table`` in the session's transaction, as fast as the driver allows.

    SQLite: one ``executemany`` of plain tuples; PostgreSQL: ``COPY``. Values are converted column by
    column (vectorised); no ORM objects, no per-row dictionaries.
    """
    if frame.empty:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    names = [name for name in frame.columns if not _left_to_the_database(frame[name], table.c[name])]
    names = names or list(frame.columns)
    values = [_column_values(frame[name], table.c[name], dialect) for name in names]
    rows = zip(*values, strict=True)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if dialect == "postgresql":
        statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    else:
        statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    try:
        if dialect == "postgresql":
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(statement, rows)
    except connection.dialect.loaded_dbapi.Error as error:
        # Written past SQLAlchemy, so its errors arrive raw: wrapped as SQLAlchemy's own (a store error
        # like any other to the entry points), with the statement but never the rows.
        raise DBAPIError.instance(statement, None, error, connection.dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()
