"""One file's records on their way to the store: written in chunks that keep panels whole, the places an
earlier import refused read again, refusals put in file order, the patients a file names, and a file of
mostly unreadable records refused whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.formats.csv_long import UnusableFile

# A file with more structurally broken records than this (and more than it has good ones) is refused as a
# whole, with its first refusals named: it is not the lab file it claims to be, and keeping millions of
# junk lines as "records for review" would only exhaust memory and the store.
MAX_BROKEN_RECORDS = 100_000


def panel_chunks(records: pd.DataFrame, size: int) -> list[tuple[int, int]]:
    """Row ranges of about ``size`` rows that never split a panel (derived counts need all of one).

    >>> panel_chunks(pd.DataFrame({"patient_id": list("aabbbc"), "collected_at": "t", "accession": ""}), 2)
    [(0, 2), (2, 5), (5, 6)]
    """
    if len(records) <= size:
        return [(0, len(records))] if len(records) else []
    key = records["patient_id"] + "\x1f" + records["collected_at"] + "\x1f" + records["accession"]
    starts = np.flatnonzero(key.ne(key.shift()).to_numpy())
    cuts = sorted(
        {
            int(starts[min(int(np.searchsorted(starts, target)), len(starts) - 1)])
            for target in range(size, len(records), size)
        }
        - {0}
    )
    bounds = [0, *cuts, len(records)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def in_file_order(rejected: pd.DataFrame) -> pd.DataFrame:
    """Refusals sorted by where they stand in the file (line, or message and segment)."""
    numbers = rejected["location"].astype(str).str.findall(r"\d+")
    first = pd.to_numeric(numbers.str[0], errors="coerce")
    second = pd.to_numeric(numbers.str[1], errors="coerce")
    third = pd.to_numeric(numbers.str[2], errors="coerce")
    ordered = rejected.assign(_a=first, _b=second, _c=third).sort_values(["_a", "_b", "_c"], kind="stable")
    return ordered.drop(columns=["_a", "_b", "_c"]).reset_index(drop=True)


def identifiers(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct (assigning authority, patient identifier) pairs rows name, as the store keeps them."""
    pairs = rows[["assigning_authority", "patient_id"]].drop_duplicates().fillna("").astype(str)
    stripped: pd.DataFrame = pairs.apply(lambda column: column.str.strip())
    return stripped.drop_duplicates()


def retried(frame: pd.DataFrame, retry: frozenset[str]) -> tuple[pd.DataFrame, int]:
    """The rows at the places an earlier import refused, and how many others are left as stored."""
    chosen = frame["location"].isin(retry).to_numpy()
    return frame[chosen].reset_index(drop=True), int((~chosen).sum())


def refuse_mostly_broken(first: pd.Series | None, broken: int, good: int) -> None:
    """Refuse the file once its unreadable records outnumber both the limit and its readable ones *so far*.

    Judged after each piece (about 200,000 records), so that a file of junk is refused after its first
    piece instead of being held in memory whole: a file whose first pieces are mostly unreadable is refused
    even if readable records were to follow (it is not the lab export it claims to be).
    """
    if first is not None and broken > MAX_BROKEN_RECORDS and broken > good:
        raise UnusableFile(
            f"{broken:,} records cannot be read (more than {MAX_BROKEN_RECORDS:,}, and more than the "
            f"{good:,} readable ones); the first: {first['location']}: {first['reason']}"
        )
