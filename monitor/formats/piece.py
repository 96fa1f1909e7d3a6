"""One piece of a file of results read, made storable and normalised: all the work an import does on a
piece before the store sees it, as one pure function of the piece's text (so that it can run in a second
process while the first writes the piece before it: ``services.import_file``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from monitor.formats.batch import identifiers, panel_chunks, retried
from monitor.formats.records import Normalised, normalise_results
from monitor.formats.registry import format_named
from monitor.formats.storable import Limits, storable


@dataclass(frozen=True, slots=True)
class ReadPiece:
    """What a piece of a file holds, ready for the store.

    ``read`` and ``broken`` count the records the parser could and could not read (before any retry
    filter: a file of mostly unreadable records is refused on these), ``first_broken`` is the first of
    the latter. ``naming`` holds every patient the piece names. ``rejected`` are the parser's refusals
    to report, ``left`` the records an earlier import of the same content already took (when read again),
    ``chunks`` the normalised results in chunks that keep panels whole, ``others`` the observations outside
    the CBC, ``patients`` the demographics the piece gives.
    """

    read: int
    broken: int
    first_broken: pd.Series | None
    naming: tuple[pd.DataFrame, ...]
    rejected: pd.DataFrame
    left: int
    chunks: tuple[Normalised, ...]
    others: pd.DataFrame
    patients: pd.DataFrame
    pending: int


@dataclass(frozen=True, slots=True)
class PieceReading:
    """How every piece of one file is read (picklable: it travels to a second process with each piece).

    ``retry``: when the file is read again, the places its last import refused (only those are read).
    ``chunk``: results normalised (and written) at a time.
    """

    format_name: str
    zone: str
    limits: Limits
    retry: frozenset[str] | None
    imported_at: datetime
    future_tolerance: timedelta
    chunk: int

    def __call__(self, text: str, before: int) -> ReadPiece:
        """Read the piece ``text`` (``before``: the file's lines or messages before it)."""
        parsed = storable(format_named(self.format_name).parse(text, self.zone, before), self.limits)
        records, rejected, others = parsed.records, parsed.rejected, parsed.others
        first_broken = rejected.iloc[0] if len(rejected) else None
        broken, read = len(rejected), len(records)
        naming = tuple(identifiers(frame) for frame in (records, others))
        left = 0
        if self.retry is not None:
            records, left = retried(records, self.retry)
            others, _ = retried(others, self.retry)
            rejected = rejected[rejected["location"].isin(self.retry).to_numpy()]
        chunks = tuple(
            normalise_results(
                records.iloc[start:stop], imported_at=self.imported_at, future_tolerance=self.future_tolerance
            )
            for start, stop in panel_chunks(records, self.chunk)
        )
        return ReadPiece(
            read=read,
            broken=broken,
            first_broken=first_broken,
            naming=naming,
            rejected=rejected,
            left=left,
            chunks=chunks,
            others=others,
            patients=parsed.patients,
            pending=parsed.pending,
        )
