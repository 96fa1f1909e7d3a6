"""What every parser returns: raw records as text, ready for `monitor.formats.records.normalise_results`.

Parsers (canonical and wide CSV, HL7 v2, FHIR R4) only *read*: they locate fields, resolve identifiers
and times, and say why a record cannot be read. They never convert units or judge plausibility; that
happens once, for every format alike, in `normalise_results`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Raw CBC records: text columns. ``collected_at`` is ISO 8601 with an offset (parsers resolve local times
# with the configured time zone); ``analyte`` is a canonical name or a LOINC code. The columns after
# ``raw_text`` are optional (empty when the format does not carry them).
RAW_COLUMNS = (
    "patient_id",
    "assigning_authority",
    "collected_at",
    "analyte",
    "value",
    "unit",
    "ref_low",
    "ref_high",
    "lab",
    "accession",
    "status",
    "location",
    "raw_text",
    "loinc",
    "ref_raw",
    "abnormal_flag",
    "reported_at",
    # The collection time as the source wrote it, with its field ("OBR-7 collection time '20990101'"), for
    # a refusal to quote; '' quotes ``collected_at`` as it is.
    "collected_as",
)
REJECT_COLUMNS = ("location", "raw_text", "reason")
# Patients as the source describes them (demographics only fill in new patients).
PATIENT_COLUMNS = ("patient_id", "assigning_authority", "name", "birth_date", "sex")
# Observations outside the CBC: kept as received, never analysed. These fields are what is stored of
# one (and what makes two of them the same); the specimen columns place it in a panel.
OTHER_FIELDS = (
    "code",
    "code_system",
    "name",
    "value_type",
    "value",
    "unit",
    "ref_raw",
    "abnormal_flag",
    "status",
)
OTHER_COLUMNS = (
    "patient_id",
    "assigning_authority",
    "collected_at",
    "lab",
    "accession",
    *OTHER_FIELDS,
    "location",
    "raw_text",
)
# Clinical events (``monitor.formats.events``): ``start_at`` and ``end_at`` are UTC timestamps.
EVENT_COLUMNS = (
    "patient_id",
    "assigning_authority",
    "kind",
    "start_at",
    "end_at",
    "label",
    "details",
    "location",
    "raw_text",
)
# How much of a refused record or unreadable file is kept for review.
RAW_TEXT_LIMIT = 2_000


def cut_raw(text: str, limit: int = RAW_TEXT_LIMIT) -> str:
    """A record's text as kept for review: whole, or its first ``limit`` characters and a note saying so.

    >>> cut_raw("OBX|1|NM|" + "9" * 30, limit=12)
    'OBX|1|NM|999... (cut at 12 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... (cut at {limit:,} characters)"


def empty(columns: tuple[str, ...]) -> pd.DataFrame:
    """A frame of text columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype="str") for name in columns})


@dataclass(frozen=True, slots=True)
class Parsed:
    """One file's content, read but not yet judged."""

    records: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=lambda: empty(REJECT_COLUMNS))
    patients: pd.DataFrame = field(default_factory=lambda: empty(PATIENT_COLUMNS))
    others: pd.DataFrame = field(default_factory=lambda: empty(OTHER_COLUMNS))
    # Observations that are not results yet (pending, ordered, not asked): neither stored nor refused.
    pending: int = 0
    # What happened to patients (an events file; no other format carries them).
    events: pd.DataFrame = field(default_factory=lambda: empty(EVENT_COLUMNS))
