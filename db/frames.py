"""Small helpers between SQLAlchemy rows and pandas frames."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import csv
from sqlalchemy import JSON, Boolean, Column, Float, Integer, Select, String, Table
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


def read_copied(
    session: Session,
    statement: Select[Any],
    *,
    whole: Iterable[str] = (),
    numbers: Iterable[str] = (),
    times: Iterable[str] = (),
) -> pd.DataFrame:
    """PostgreSQL: a select's rows read as one ``COPY (...) TO STDOUT`` of CSV text that pyarrow parses,
    with no Python object per value (hundreds of thousands of rows in about a third of the time of
    fetching them as rows: docs/benchmarks.md).

    ``whole`` columns become int64, ``numbers`` float64, ``times`` ``datetime64[us, UTC]`` (copied as whole
    microseconds since 1970 UTC, so that neither the server's DateStyle nor its time zone matters), the
    others text (``str``, or ``object`` when every value is NULL); NULL stays missing and an empty text
    stays empty. It runs in the session's transaction, after any write left running behind it.
    """
    connection = session.connection()
    settle(connection.info)
    names = list(statement.selected_columns.keys())
    times = set(times)
    kinds = {
        name: pa.int64()
        if name in whole or name in times
        else pa.float64()
        if name in numbers
        else pa.string()
        for name in names
    }
    # Bound, not written into the text: psycopg merges the parameters into the COPY on the client, quoting
    # them (a "%" in a value stays one), and an error names the statement without the patients' keys.
    inner = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    parameters = dict(inner.params)
    for value in parameters.values():
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise ValueError("a time bound into a read has no time zone; refusing to guess")
    picked = ", ".join(
        f'(extract(epoch FROM q."{name}") * 1000000)::bigint' if name in times else f'q."{name}"'
        for name in names
    )
    copy = f"COPY (SELECT {picked} FROM ({inner}) AS q) TO STDOUT (FORMAT csv)"
    data = bytearray()
    errors = connection.dialect.loaded_dbapi.Error
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(copy, parameters) as blocks:
            for block in blocks:
                data += block
    except errors as error:
        raise _wrapped(copy, error, errors) from error
    finally:
        cursor.close()
    if data:
        table = csv.read_csv(
            pa.py_buffer(data),
            read_options=csv.ReadOptions(column_names=names),
            # A text may hold a line break (quoted by PostgreSQL): pyarrow then reads the CSV in blocks it
            # cuts only between rows.
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types=kinds,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    else:
        table = pa.table({name: pa.array([], type=kind) for name, kind in kinds.items()})
    columns: dict[str, Any] = {}
    for name in names:
        values = table.column(name)
        if name in times:
            values = values.cast(pa.timestamp("us", tz="UTC"))
        elif kinds[name] == pa.string() and values.null_count == len(values) and len(values):
            columns[name] = pd.Series([None] * len(values), dtype=object)
            continue
        columns[name] = values.to_pandas()
    return pd.DataFrame(columns)


def conflict_insert(session: Session, table: Any) -> SqliteInsert | PostgresqlInsert:
    """An INSERT into ``table`` (a Table or a mapped class) in the store's dialect, which takes ``ON CONFLICT
    DO NOTHING / DO UPDATE`` (both stores spell it alike)."""
    if session.get_bind().dialect.name == "sqlite":
        return sqlite_insert(table)
    return postgresql_insert(table)


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


# From how many rows SQLite writes through a staging table rather than into the table itself.
STAGED_ROWS = 2_000
# Bytes of COPY data sent to PostgreSQL at a time.
COPY_BLOCK = 1 << 20


def bulk_insert(session: Session, table: Table, frame: pd.DataFrame, *, behind: bool = False) -> None:
    """Insert a frame's rows into ``table`` in the session's transaction, as fast as the driver allows.

    PostgreSQL: one ``COPY`` of the rows as CSV text, written by pyarrow from the columns (no Python object
    per value). SQLite: one ``executemany`` into a temporary staging table holding only the columns that
    vary, then one ``INSERT ... SELECT`` into the table, the constant columns bound once; a few rows go
    straight into the table. Both run in the caller's transaction through the connection the session
    already holds: one copy of each database library per process (docs/benchmarks.md, the import's write
    path, says why the ADBC drivers are not used).

    ``behind``: the database's share of the work (SQLite's ``INSERT ... SELECT``, PostgreSQL's ``COPY``)
    goes on in a thread while the caller prepares its next rows; the connection's next statement, commit or
    rollback waits for it first and raises its error, if any (`settle`). The driver releases the
    interpreter's lock for the whole statement, so the two really run side by side.
    """
    if frame.empty:
        return
    connection = session.connection()
    settle(connection.info)
    dialect = connection.dialect.name
    names = [name for name in frame.columns if not _left_to_the_database(frame[name], table.c[name])]
    names = names or list(frame.columns)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    errors = connection.dialect.loaded_dbapi.Error
    finish: Callable[[], None] | None = None
    statement = ""
    try:
        if dialect == "postgresql":
            statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT csv)"
            data = _csv_text(_arrow_columns(frame, table, names))
            finish = partial(_copy, cursor, statement, data)
        elif len(frame) >= STAGED_ROWS:
            statement, parameters = _stage(cursor, table, frame, names)
            finish = partial(_from_stage, cursor, table, statement, parameters)
        else:
            values = [_column_values(frame[name], table.c[name], dialect) for name in names]
            statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({_marks(len(names))})"
            cursor.executemany(statement, zip(*values, strict=True))
    except errors as error:
        cursor.close()
        raise _wrapped(statement, error, errors) from error
    except BaseException:
        cursor.close()
        raise
    if finish is None:
        cursor.close()
        return
    run = partial(_finish, finish, cursor, statement, errors)
    if behind:
        connection.info[_PENDING] = _writer().submit(run)
        session.info[_PENDING] = connection.info
    else:
        run()


# Where a connection keeps the write still running behind its caller (`bulk_insert`).
_PENDING = "monitor_write_behind"
_WRITER: ThreadPoolExecutor | None = None


def _writer() -> ThreadPoolExecutor:
    global _WRITER
    if _WRITER is None:
        _WRITER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-write")
    return _WRITER


def settle(info: dict[Any, Any], *, quietly: bool = False) -> None:
    """Wait for the write left running on a connection (``info``: its info dictionary) and raise its error,
    or with ``quietly`` only wait (a rollback undoes it anyway)."""
    pending = info.pop(_PENDING, None)
    if pending is None:
        return
    if quietly:
        pending.exception()
    else:
        pending.result()


def settle_session(session: Session) -> None:
    """`settle` the connection a session left a write running on (before it commits)."""
    info = session.info.pop(_PENDING, None)
    if info is not None:
        settle(info)


def _finish(finish: Callable[[], None], cursor: Any, statement: str, errors: type[Exception]) -> None:
    try:
        finish()
    except errors as error:
        raise _wrapped(statement, error, errors) from error
    finally:
        cursor.close()


def _wrapped(statement: str, error: Exception, errors: type[Exception]) -> DBAPIError:
    """Written past SQLAlchemy, so the driver's errors arrive raw: wrapped as SQLAlchemy's own (a store
    error like any other to the entry points), with the statement but never the rows."""
    return DBAPIError.instance(statement, None, error, errors)


def new_ids(session: Session, table: Table, count: int) -> np.ndarray:
    """``count`` unused ids of ``table`` for rows the caller inserts with them in this transaction.

    PostgreSQL: drawn from the column's sequence (never given to another transaction). SQLite: those after
    the largest id, which no other connection can take before this transaction ends: SQLite lets one
    transaction write at a time, and a writer that committed since this one read the largest id makes
    this one's write fail rather than collide (its snapshot is stale).
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
        found = connection.exec_driver_sql(f"SELECT nextval({sequence}) FROM generate_series(1, {count:d})")
        return np.fromiter((row[0] for row in found), dtype="int64", count=count)
    largest = connection.exec_driver_sql(f"SELECT max(id) FROM {table.name}").scalar() or 0
    return np.arange(largest + 1, largest + 1 + count, dtype="int64")


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _constant(values: pd.Series) -> bool:
    """Whether every row holds the same value (none missing): bound once instead of in every row."""
    first = values.iloc[0]
    return not _missing(first) and not isinstance(first, list | dict) and bool((values == first).all())


def _stage(cursor: Any, table: Table, frame: pd.DataFrame, names: list[str]) -> tuple[str, list[Any]]:
    """SQLite: the varying columns bound row by row into a staging table; returns the statement that copies
    them into ``table`` with the constant columns bound once, and its parameters.

    Binding is most of what a row costs the driver: an import's batch, creation time and current flag are
    the same in every row, and a staging table has no key, constraint or index to check. SQLite checks the
    store's constraints and index when it copies the rows (`_from_stage`).
    """
    constant = [name for name in names if _constant(frame[name])]
    varying = [name for name in names if name not in constant]
    stage = f"temp.stage_{table.name}"
    cursor.execute(f"DROP TABLE IF EXISTS {stage}")
    cursor.execute(f"CREATE TABLE {stage} ({', '.join(varying) or 'unused'})")
    if varying:
        values = [_column_values(frame[name], table.c[name], "sqlite") for name in varying]
        cursor.executemany(
            f"INSERT INTO {stage} ({', '.join(varying)}) VALUES ({_marks(len(varying))})",
            zip(*values, strict=True),
        )
    else:
        cursor.executemany(f"INSERT INTO {stage} (unused) VALUES (NULL)", ((),) * len(frame))
    fixed = [_column_values(frame[name].iloc[:1], table.c[name], "sqlite")[0] for name in constant]
    statement = (
        f"INSERT INTO {table.name} ({', '.join([*varying, *constant])}) "
        f"SELECT {', '.join([*varying, *('?' for _ in constant)])} FROM {stage} ORDER BY rowid"
    )
    return statement, fixed


def _from_stage(cursor: Any, table: Table, statement: str, parameters: list[Any]) -> None:
    cursor.execute(statement, parameters)
    cursor.execute(f"DROP TABLE temp.stage_{table.name}")


def _arrow_columns(frame: pd.DataFrame, table: Table, names: list[str]) -> pa.Table:
    """The columns as Arrow arrays of the types PostgreSQL's CSV input reads into ``table``'s columns."""
    arrays = {}
    for name in names:
        values, kind = frame[name], table.c[name].type
        if isinstance(kind, JSON):
            array = pa.array(_column_values(values, table.c[name], "postgresql"), type=pa.string())
        elif isinstance(kind, UTCDateTime):
            array = pa.array(pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]"))
        elif isinstance(kind, Boolean):
            array = pa.array(values.astype("boolean"))
        elif isinstance(kind, Integer):
            whole = values if pd.api.types.is_integer_dtype(values) else pd.to_numeric(values)
            array = pa.array(whole.astype("Float64").astype("Int64"))
        elif isinstance(kind, Float):
            array = pa.array(pd.to_numeric(values).astype("float64"), from_pandas=True)
        else:
            array = _text_array(values)
        arrays[name] = array
    # One chunk a column: pyarrow 26's CSV writer wrote zero bytes for columns chunked differently (a
    # pandas text column can arrive as an empty chunk and a full one).
    return pa.table(arrays).combine_chunks()


def _text_array(values: pd.Series) -> pa.Array:
    """Text (and dates) as Arrow takes them from pandas; values of mixed kinds as their text."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(values.map(lambda value: None if _missing(value) else str(value)), type=pa.string())


def _csv_text(columns: pa.Table) -> memoryview:
    """``columns`` as CSV for ``COPY ... FROM STDIN (FORMAT csv)``: every value quoted, so that an empty
    text stays empty and only a missing value (unquoted, empty) is NULL."""
    sink = pa.BufferOutputStream()
    csv.write_csv(columns, sink, csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return memoryview(sink.getvalue())


def _copy(cursor: Any, statement: str, data: memoryview) -> None:
    with cursor.copy(statement) as copy:
        for start in range(0, len(data), COPY_BLOCK):
            copy.write(data[start : start + COPY_BLOCK])
