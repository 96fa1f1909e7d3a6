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

from monitor.records import RAW_COLUMNS

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


def parse_canonical_csv(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the file into raw records (text, with their line) and structurally broken rows.

    Returns
    -------
    (records, rejected)
        ``records`` has ``RAW_COLUMNS`` (all text); ``rejected`` has ``location``, ``raw_text``, ``reason``.

    Raises
    ------
    UnusableFile
        When there is no header or it lacks a required column.
    """
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader, None)
    if header is None:
        raise UnusableFile("the file is empty")
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise UnusableFile(f"the header lacks {', '.join(missing)} (expected {','.join(HEADER)})")
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
    records = pd.DataFrame(rows, columns=names, dtype="str") if rows else pd.DataFrame(columns=names)
    records = records.reindex(columns=[c for c in RAW_COLUMNS if c in KNOWN], fill_value="")
    records["location"] = [f"line {n}" for n in starts]
    records["raw_text"] = [lines[n - 1] if n - 1 < len(lines) else "" for n in starts]
    return records, pd.DataFrame(bad, columns=["location", "raw_text", "reason"])
