"""The canonical long CSV: one row per result.

    patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status

``ref_low``, ``ref_high``, ``lab``, ``accession`` and ``status`` may be absent or empty; an
``assigning_authority`` column is also understood. ``analyte`` is a canonical name (``wbc``, ``anc``, ...)
or a LOINC code; ``collected_at`` is ISO 8601 with an offset or ``Z``.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from monitor.parsed import RAW_COLUMNS, Parsed
from monitor.timestamps import localise_iso

HEADER = (
    "patient_id",
    "collected_at",
    "analyte",
    "value",
    "unit",
    "ref_low",
    "ref_high",
    "lab",
    "accession",
    "status",
)
REQUIRED = ("patient_id", "collected_at", "analyte", "value", "unit")
KNOWN = (*HEADER, "assigning_authority")


class UnusableFile(ValueError):
    """The file as a whole cannot be read as this format (no record in it can be trusted)."""


def looks_like_canonical_csv(text: str) -> bool:
    """True when the first line is a header naming the canonical required columns."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    names = {name.strip().lower() for name in first.split(",")}
    return set(REQUIRED) <= names


def read_rows(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every data row as text under its header name, with ``line`` and ``raw_text``; and broken rows.

    Raises
    ------
    UnusableFile
        When the file is empty.
    """
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader, None)
    if header is None:
        raise UnusableFile("the file is empty")
    names = [name.strip() for name in header]
    width = len(names)
    rows: list[list[str]] = []
    starts: list[int] = []
    bad: list[tuple[str, str, str]] = []
    previous_end = reader.line_num
    for fields in reader:
        start, end = previous_end + 1, reader.line_num
        previous_end = end
        if not fields or all(not field.strip() for field in fields):
            continue
        if len(fields) != width:
            where = f"line {start}" if start == end else f"lines {start}-{end}"
            raw = "\n".join(lines[start - 1 : end])
            bad.append((where, raw, f"expected {width} fields as in the header, found {len(fields)}"))
            continue
        rows.append(fields)
        starts.append(start)
    frame = (
        pd.DataFrame(rows, columns=names, dtype="str") if rows else pd.DataFrame(columns=names, dtype="str")
    )
    frame["line"] = starts
    frame["raw_text"] = [lines[n - 1] if n - 1 < len(lines) else "" for n in starts]
    return frame, pd.DataFrame(bad, columns=["location", "raw_text", "reason"])


def parse_canonical_csv(text: str, *, timezone: str | None = None) -> Parsed:
    """Read the canonical long CSV into raw records (text, with their line) and structurally broken rows.

    ``timezone``, when given, reads ``collected_at`` values that carry no offset in that zone; without it
    such values are refused downstream (the canonical format asks for an offset).

    Raises
    ------
    UnusableFile
        When there is no header or it lacks a required column.
    """
    frame, broken = read_rows(text)
    frame = frame.rename(columns={name: name.lower() for name in frame.columns if name.lower() in KNOWN})
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise UnusableFile(f"the header lacks {', '.join(missing)} (expected {','.join(HEADER)})")
    if timezone:
        given = frame["collected_at"].str.strip()
        localised = localise_iso(given, timezone)
        frame["collected_at"] = localised.where(localised != "", given)  # unreadable: refused downstream
    records = frame.reindex(columns=[c for c in RAW_COLUMNS if c in KNOWN], fill_value="")
    records["location"] = "line " + frame["line"].astype(str)
    records["raw_text"] = frame["raw_text"]
    return Parsed(records=records.reindex(columns=list(RAW_COLUMNS), fill_value=""), rejected=broken)
