"""Small helpers between SQLAlchemy rows and pandas frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")

# Bound parameters per IN list: well under SQLite's limit, and kind to PostgreSQL's planner.
CHUNK = 2_000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_frame(session: Session, statement: Select[Any], *, utc: Iterable[str] = ()) -> pd.DataFrame:
    """Run a select and return its rows as a frame; ``utc`` columns become ``datetime64[us, UTC]``."""
    result = session.execute(statement)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for column in utc:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame


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
