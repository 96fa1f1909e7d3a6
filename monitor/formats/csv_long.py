"""The canonical long CSV: one row per result.

    patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status

``ref_low``, ``ref_high``, ``lab``, ``accession`` and ``status`` may be absent or empty; an
``assigning_authority`` column is also understood. ``analyte`` is a canonical name (``wbc``, ``anc``, ...)
or a LOINC code; ``collected_at`` is ISO 8601 with an offset or ``Z``.

An optional ``birth_date`` column (ISO date, ``YYYY-MM-DD``) gives the patient's birth date, so that the
age-banded reference intervals and paediatric neutropenia cut-offs apply (docs/clinical-basis.md,
Paediatric neutropenia). It describes new patients only, as names and sex do in HL7 and FHIR (a stored
patient's birth date is kept). A row whose birth date is not an ISO date, is after its collection, or
differs from the one an earlier row of the file gave that patient is refused with its line and reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv

from monitor.formats.parsed import PATIENT_COLUMNS, RAW_COLUMNS, Parsed
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
KNOWN = (*HEADER, "assigning_authority", "birth_date")


class UnusableFile(ValueError):
    """The file as a whole cannot be read as this format (no record in it can be trusted)."""


def looks_like_canonical_csv(text: str) -> bool:
    """True when the first line is a header naming the canonical required columns."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    names = {name.strip().lower() for name in first.split(",")}
    return set(REQUIRED) <= names


def header_names(line: str) -> list[str]:
    """The column names of a CSV header line (its line end excluded), stripped.

    >>> header_names("patient_id, collected_at,analyte")
    ['patient_id', 'collected_at', 'analyte']

    Raises
    ------
    UnusableFile
        When the header cannot be read, holds a carriage return, or names a column twice (whatever its
        case): which of the two columns a record's value is in could not be told.
    """
    line = line.lstrip("\ufeff").rstrip("\r\n")
    if "\r" in line or "\n" in line:
        raise UnusableFile(
            "line 1 (the header) holds a line break (a carriage return) inside it: lines must end with LF "
            "or CR LF, and a column name cannot hold one"
        )
    try:
        names = [name.strip() for name in next(csv.reader([line]), [])]
    except csv.Error as error:
        raise UnusableFile(f"line 1 (the header) cannot be read as CSV ({error})") from None
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        key = name.lower()
        if key in seen:
            shown = f"column {name!r}" if name else "a column without a name"
            raise UnusableFile(
                f"line 1 (the header) names {shown} twice (columns {seen[key]} and {number}): which one a "
                "record's value is in cannot be told; remove or rename one"
            )
        seen[key] = number
    return names


def read_rows(text: str, *, lines_before: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every data row as text under its header name, with ``line`` and ``raw_text``; and broken rows.

    ``lines_before``: data lines of the file before this text (a piece of it after the header), so that
    line numbers are the file's.

    A plain file (no quoting, no blank line, every row as wide as the header) is read by Arrow's CSV
    reader; any other file by Python's csv module, which keeps exact line numbers for odd rows.

    Raises
    ------
    UnusableFile
        When the file is empty, or its header cannot be read (``header_names``).
    """
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise UnusableFile("the file is empty")
    header_names(text.split("\n", 1)[0])
    fast = _read_plain_rows(text, lines_before) if '"' not in text else None
    return fast if fast is not None else _read_rows_exactly(text, lines_before)


def _read_plain_rows(text: str, lines_before: int) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The fast path, or None when the file is not plain enough for line numbers to be certain."""
    lines = pa_compute.split_pattern(pa.array([text], type=pa.large_string()), "\n").flatten()
    lines = pa_compute.utf8_rtrim(lines, characters="\r")
    if len(lines) and lines[-1].as_py() == "":
        lines = lines.slice(0, len(lines) - 1)
    body = lines.slice(1)
    names = [name.strip() for name in lines[0].as_py().split(",")]
    blank = pa_compute.equal(pa_compute.utf8_length(pa_compute.utf8_trim_whitespace(body)), 0)
    fields = pa_compute.add(pa_compute.count_substring(body, ","), 1)
    ragged = pa_compute.and_(pa_compute.not_equal(fields, len(names)), pa_compute.invert(blank))
    if len(set(names)) != len(names):
        return None
    # Without quotes every line is one record, so line numbers stay exact: rows of the wrong width are
    # refused here and blank lines skipped, and the rest is read by Arrow.
    numbers = pa.array(np.arange(2, len(body) + 2) + lines_before)
    keep = pa_compute.invert(pa_compute.or_(blank, ragged))
    kept, kept_numbers = body.filter(keep), numbers.filter(keep)
    if len(kept) == 0:
        table = pa.table({name: pa.array([], type=pa.string()) for name in names})
    else:
        lists = pa.LargeListArray.from_arrays(pa.array([0, len(kept)], type=pa.int64()), kept)
        joined = pa_compute.binary_join(lists, pa.scalar("\n", type=pa.large_string()))
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(joined[0].as_py().encode()),
                read_options=pa_csv.ReadOptions(column_names=names),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, ValueError):
            return None
    if table.num_rows != len(kept):
        return None
    frame = table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))
    frame = frame.astype("str")
    frame["line"] = kept_numbers.to_numpy()
    frame["raw_text"] = pd.Series(
        kept.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow")), dtype="str"
    )
    bad_lines, bad_numbers = body.filter(ragged), numbers.filter(ragged)
    bad_fields = fields.filter(ragged).to_numpy(zero_copy_only=False)
    rejected = pd.DataFrame(
        {
            "location": "line " + pd.Series(bad_numbers.to_numpy()).astype(str),
            "raw_text": pd.Series(
                bad_lines.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow")), dtype="str"
            ),
            "reason": f"expected {len(names)} fields as in the header, found "
            + pd.Series(bad_fields).astype(str),
        }
    )
    return frame, rejected


def _rows(reader: Any, lines_before: int) -> Iterator[list[str]]:
    """The reader's rows; a line the csv module cannot read at all (a field over its size limit, say)
    makes the file unusable, with the line named, rather than an internal error."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            where = reader.line_num + lines_before
            raise UnusableFile(f"line {where}: cannot be read as CSV ({error})") from None


def _read_rows_exactly(text: str, lines_before: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise UnusableFile("the file is empty")
    names = [name.strip() for name in header]
    width = len(names)
    rows: list[list[str]] = []
    starts: list[int] = []
    bad: list[tuple[str, str, str]] = []
    previous_end = reader.line_num
    for fields in _rows(reader, lines_before):
        start, end = previous_end + 1, reader.line_num
        previous_end = end
        if not fields or all(not field.strip() for field in fields):
            continue
        if len(fields) != width:
            first, last = start + lines_before, end + lines_before
            where = f"line {first}" if start == end else f"lines {first}-{last}"
            raw = "\n".join(lines[start - 1 : end])
            bad.append((where, raw, f"expected {width} fields as in the header, found {len(fields)}"))
            continue
        rows.append(fields)
        starts.append(start)
    frame = (
        pd.DataFrame(rows, columns=names, dtype="str") if rows else pd.DataFrame(columns=names, dtype="str")
    )
    frame["line"] = [n + lines_before for n in starts]
    frame["raw_text"] = [lines[n - 1] if n - 1 < len(lines) else "" for n in starts]
    return frame, pd.DataFrame(bad, columns=["location", "raw_text", "reason"])


def parse_piece(text: str, zone: str, before: int) -> Parsed:
    """A piece of a canonical CSV (``before``: its data lines before it); ``zone`` '' refuses times
    without an offset."""
    return parse_canonical_csv(text, timezone=zone or None, lines_before=before)


def parse_canonical_csv(text: str, *, timezone: str | None = None, lines_before: int = 0) -> Parsed:
    """Read the canonical long CSV into raw records (text, with their line) and structurally broken rows.

    ``timezone``, when given, reads ``collected_at`` values that carry no offset in that zone; without it
    such values are refused downstream (the canonical format asks for an offset).

    Raises
    ------
    UnusableFile
        When there is no header or it lacks a required column.
    """
    frame, broken = read_rows(text, lines_before=lines_before)
    frame = frame.rename(columns={name: name.lower() for name in frame.columns if name.lower() in KNOWN})
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise UnusableFile(f"the header lacks {', '.join(missing)} (expected {','.join(HEADER)})")
    if timezone:
        given = frame["collected_at"].str.strip()
        localised = localise_iso(given, timezone)
        frame["collected_at"] = localised.where(localised != "", given)  # unreadable: refused downstream
    frame, refused, patients = _birth_dates(frame)
    if len(refused):
        broken = pd.concat([broken, refused], ignore_index=True)
    records = frame.reindex(columns=[c for c in RAW_COLUMNS if c in KNOWN], fill_value="")
    records["location"] = "line " + frame["line"].astype(str)
    records["raw_text"] = frame["raw_text"]
    return Parsed(
        records=records.reindex(columns=list(RAW_COLUMNS), fill_value=""), rejected=broken, patients=patients
    )


def _birth_dates(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rows with a usable (or no) birth date, the refused ones, and the patients with their birth date.

    A birth date must be an ISO date, not after the row's collection, and the same as the first one the
    file gave that patient.
    """
    patients = pd.DataFrame({name: pd.Series(dtype="str") for name in PATIENT_COLUMNS})
    none = pd.DataFrame({name: pd.Series(dtype="str") for name in ("location", "raw_text", "reason")})
    if "birth_date" not in frame:
        return frame, none, patients
    given = frame["birth_date"].astype(str).str.strip()
    born = pd.to_datetime(given, format="%Y-%m-%d", errors="coerce")
    # The collection's own (local) calendar date, as written: a birth that day is not after it.
    taken = pd.to_datetime(
        frame["collected_at"].astype(str).str.strip().str[:10], format="%Y-%m-%d", errors="coerce"
    )
    authority = (
        frame["assigning_authority"] if "assigning_authority" in frame else pd.Series("", index=frame.index)
    )
    who = pd.DataFrame({"patient_id": frame["patient_id"].astype(str).str.strip(), "authority": authority})
    first = given.where(born.notna()).groupby([who["patient_id"], who["authority"]]).transform("first")
    unreadable = given.ne("") & born.isna()
    after = born.notna() & taken.notna() & (born > taken)
    differs = born.notna() & first.notna() & given.ne(first)
    reason = pd.Series(
        np.select(
            [unreadable, after, differs],
            [
                "birth_date '" + given + "' is not an ISO date (YYYY-MM-DD)",
                "birth_date '"
                + given
                + "' is after collected_at '"
                + frame["collected_at"].astype(str)
                + "'",
                "birth_date '"
                + given
                + "' differs from "
                + first.fillna("")
                + " given for this patient above",
            ],
            "",
        ),
        index=frame.index,
    )
    bad = reason.ne("").to_numpy(dtype=bool)
    refused = pd.DataFrame(
        {
            "location": "line " + frame["line"][bad].astype(str),
            "raw_text": frame["raw_text"][bad],
            "reason": reason[bad],
        }
    )
    kept = frame[~bad].reset_index(drop=True)
    known = kept[given[~bad].ne("").to_numpy(dtype=bool)]
    patients = (
        pd.DataFrame(
            {
                "patient_id": known["patient_id"].astype(str).str.strip(),
                "assigning_authority": (
                    known["assigning_authority"].astype(str).str.strip()
                    if "assigning_authority" in known
                    else ""
                ),
                "name": "",
                "birth_date": known["birth_date"].astype(str).str.strip(),
                "sex": "",
            }
        )
        .drop_duplicates(["patient_id", "assigning_authority"])
        .reset_index(drop=True)
    )
    return kept, refused.reset_index(drop=True), patients.reindex(columns=list(PATIENT_COLUMNS))
