"""What a store can keep of a file's records, judged before anything is written or looked up.

A value longer than the column that keeps it, or holding a NUL character (PostgreSQL text cannot hold one),
or an identifier holding a character that cannot be seen (a control, a zero-width or bidirectional mark),
makes its record refused with the field named, on every store alike: SQLite would keep a value of any
length, PostgreSQL would fail the whole import. The lengths are the store's (``db.ingest.field_limits``,
read from its column types) and are passed in, so that they are written down once.

Our own descriptions of a record (where it stands in the file, its text as received) are never a reason to
refuse it: they are cut to fit, with a mark saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from monitor.formats.parsed import REJECT_COLUMNS, Parsed
from monitor.formats.records import reference_text

NUL = "\x00"
# Identifiers are matched and shown as sent, so a character that cannot be seen, or that reorders what
# follows it, would let two different identifiers look alike on a page or a printout: C0 and C1 controls,
# zero-width characters, bidirectional embeddings, overrides and isolates, the byte-order mark (Unicode
# Standard Annex 9, The Bidirectional Algorithm; Unicode Technical Report 36, Security Considerations).
IDENTIFIERS = ("patient_id", "assigning_authority", "accession")
_INVISIBLE = "[\x01-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
# Where a location was cut to fit.
CUT_MARK = "…"


@dataclass(frozen=True, slots=True)
class Limits:
    """The longest value the store keeps of each field (no entry: any length), per kind of row.

    ``records`` names raw result fields (``monitor.formats.parsed.RAW_COLUMNS``), ``others`` fields of
    observations outside the CBC, ``patients`` demographics, ``events`` clinical events; ``location`` is
    the longest place in a file the store keeps.
    """

    records: Mapping[str, int] = field(default_factory=dict)
    others: Mapping[str, int] = field(default_factory=dict)
    patients: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)
    location: int | None = None


def fit(text: pd.Series, limit: int | None) -> pd.Series:
    """Each text cut to ``limit`` characters with `CUT_MARK` at its end when it is longer.

    >>> fit(pd.Series(["line 2", "line 3, column " + "x" * 20]), 12).tolist()
    ['line 2', 'line 3, col…']
    """
    if limit is None or text.empty:
        return text
    text = text.astype(str)
    long = text.str.len() > limit
    if not long.any():
        return text
    return text.where(~long, text.str.slice(0, limit - len(CUT_MARK)) + CUT_MARK)


def unstorable(rows: pd.DataFrame, limits: Mapping[str, int], *, skip: tuple[str, ...] = ()) -> pd.Series:
    """Why each row cannot be stored (NA when it can): the first of its fields, in column order, that holds
    a NUL character or is longer (stripped) than its limit.

    >>> rows = pd.DataFrame({"patient_id": ["P1", "P\\x002", "P" * 70], "value": ["4", "4", "4"]})
    >>> unstorable(rows, {"patient_id": 64}).tolist()
    [<NA>, 'patient_id contains a NUL character', 'patient_id is longer than 64 characters']

    An identifier (``IDENTIFIERS``) holding a character that cannot be seen, or that reorders the text:

    >>> unstorable(pd.DataFrame({"patient_id": ["MRN\u202e1001", "MRN1001"]}), {}).tolist()
    ['patient_id contains an invisible or control character (U+202E)', <NA>]
    """
    reason = pd.Series(pd.NA, index=rows.index, dtype="object")
    for name in rows.columns:
        if name in skip or reason.notna().all():
            continue
        text = rows[name].fillna("").astype(str)
        checks = [(text.str.contains(NUL, regex=False), f"{name} contains a NUL character")]
        if name in IDENTIFIERS:
            # Stripped first, as the identifier is stored: a tab or line end around it is not part of it.
            hidden = text.str.strip().str.contains(_INVISIBLE, regex=True)
            if hidden.any():
                first = text[hidden].str.strip().str.extract(f"({_INVISIBLE})", expand=False)
                code = first.map(lambda character: f"U+{ord(character):04X}")
                said = f"{name} contains an invisible or control character (" + code + ")"
                reason = reason.mask(reason.isna() & hidden.to_numpy(dtype=bool), said.reindex(text.index))
        if name in limits:
            long = text.str.len() > limits[name]
            if long.any():  # stripped as read: only the long ones need it
                long[long] = text[long].str.strip().str.len() > limits[name]
            checks.append((long, f"{name} is longer than {limits[name]} characters"))
        for mask, message in checks:
            reason = reason.mask(reason.isna() & mask.to_numpy(dtype=bool), message)
    return reason


def _refusals(rows: pd.DataFrame, reason: pd.Series) -> pd.DataFrame:
    refused = reason.notna().to_numpy()
    raw = rows["raw_text"] if "raw_text" in rows else pd.Series("", index=rows.index)
    frame = pd.DataFrame({"location": rows["location"], "raw_text": raw, "reason": reason})
    return frame[refused].astype(str)


def _patients_refused(patients: pd.DataFrame, limits: Mapping[str, int]) -> pd.DataFrame:
    """(assigning_authority, patient_id, reason) of the patients whose demographics cannot be stored."""
    # A patient's name is not a field of the records it refuses: named as the patient's.
    named = {"name": "patient name"}
    reason = unstorable(patients.rename(columns=named), {named.get(k, k): v for k, v in limits.items()})
    bad = patients[reason.notna().to_numpy()].assign(patient_reason=reason.dropna())
    pairs = bad[["assigning_authority", "patient_id", "patient_reason"]].fillna("").astype(str)
    return pairs.assign(
        assigning_authority=pairs["assigning_authority"].str.strip(),
        patient_id=pairs["patient_id"].str.strip(),
    ).drop_duplicates(["assigning_authority", "patient_id"])


def _of_patients(rows: pd.DataFrame, refused: pd.DataFrame, reason: pd.Series) -> pd.Series:
    """``reason`` with, for rows naming a refused patient, that patient's reason (when none before)."""
    if refused.empty or rows.empty:
        return reason
    keys = pd.DataFrame(
        {
            "assigning_authority": rows["assigning_authority"].fillna("").astype(str).str.strip(),
            "patient_id": rows["patient_id"].fillna("").astype(str).str.strip(),
        }
    )
    theirs = keys.merge(refused, on=["assigning_authority", "patient_id"], how="left")["patient_reason"]
    return reason.where(reason.notna(), pd.Series(theirs.to_numpy(), index=rows.index))


def storable(parsed: Parsed, limits: Limits) -> Parsed:
    """``parsed`` with every record, observation and event the store cannot keep moved to its refusals
    (a patient whose demographics cannot be kept refuses the records naming them), and every location
    cut to what the store keeps.

    >>> from monitor.formats.parsed import RAW_COLUMNS, empty
    >>> records = empty(RAW_COLUMNS).reindex(range(2)).fillna("")
    >>> records = records.assign(patient_id=["P1", "P\\x002"], location=["line 2", "line 3"])
    >>> out = storable(Parsed(records=records), Limits(records={"patient_id": 64}))
    >>> out.records["patient_id"].tolist(), out.rejected["reason"].tolist()
    (['P1'], ['patient_id contains a NUL character'])
    """
    skip = ("location", "raw_text")
    patients_refused = _patients_refused(parsed.patients, limits.patients)

    records = parsed.records
    # The reference range a record would keep when it gives only its limits (normalise_results').
    records_checked = records.assign(
        ref_raw=reference_text(
            records["ref_raw"].fillna("").astype(str).str.strip(),
            records["ref_low"].fillna("").astype(str).str.strip(),
            records["ref_high"].fillna("").astype(str).str.strip(),
        ).fillna("")
    )
    record_reason = _of_patients(
        records, patients_refused, unstorable(records_checked, limits.records, skip=skip)
    )
    other_reason = _of_patients(
        parsed.others, patients_refused, unstorable(parsed.others, limits.others, skip=skip)
    )
    event_reason = unstorable(parsed.events, limits.events, skip=skip)
    refused = [
        parsed.rejected,
        _refusals(records, record_reason),
        _refusals(parsed.others, other_reason),
        _refusals(parsed.events, event_reason),
    ]
    rejected = pd.concat([frame for frame in refused if len(frame)] or [parsed.rejected], ignore_index=True)
    rejected = rejected.reindex(columns=list(REJECT_COLUMNS)).fillna("").astype(str)

    def kept(rows: pd.DataFrame, reason: pd.Series) -> pd.DataFrame:
        rows = rows[reason.isna().to_numpy()].reset_index(drop=True)
        return rows.assign(location=fit(rows["location"], limits.location)) if "location" in rows else rows

    patients = parsed.patients
    if len(patients_refused):
        named = patients[["assigning_authority", "patient_id"]].fillna("").astype(str)
        named = named.apply(lambda column: column.str.strip())
        gone = named.merge(patients_refused, on=["assigning_authority", "patient_id"], how="left")
        patients = patients[gone["patient_reason"].isna().to_numpy()].reset_index(drop=True)
    return replace(
        parsed,
        records=kept(records, record_reason),
        others=kept(parsed.others, other_reason),
        events=kept(parsed.events, event_reason),
        patients=patients,
        rejected=rejected.assign(location=fit(rejected["location"], limits.location)),
    )
