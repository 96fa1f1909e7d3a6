"""A few HL7 v2 CBC messages read row by row: the live feed's reading of the messages that need nothing
but the common case, exactly as the file reading (``parse_hl7``, ``storable``, ``normalise_results``) would
read them, at a small fraction of its fixed cost.

The file reading is vectorised: its cost is a few hundred pandas operations whatever the number of
records, about 130 ms for four messages (docs/benchmarks.md, the live feed), which would bound a listener
answering one message at a time per connection to a few dozen messages a second. This reading takes the
same observations from the same parser (``monitor.formats.hl7v2.observations``) and computes each stored
column the way the vectorised code does, for records in the common case only: every observation a CBC
count or haemoglobin in a known unit, a plain number, an HL7 time with its offset (its own or MSH-7's), a
status that stores a value, inside the plausibility limits, not in the future, no field too long for the
store, no record repeated. For anything else `read_quickly` returns None and the caller reads the messages
the file way, which also words every refusal: this reading never refuses, so it can never refuse
differently. ``tests/test_hl7_quick.py`` checks both readings give the same rows on generated messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from monitor.analytes import ANALYTES, LOCAL_ALIASES, LOINC
from monitor.formats.hl7v2 import GROUP_ROW, NOT_YET, OBSERVATION_ROW, observations
from monitor.formats.parsed import PATIENT_COLUMNS
from monitor.formats.ranges import split_range
from monitor.formats.records import (
    NATURAL_KEY,
    STATUS_ALIASES,
    UNSPECIFIED_LAB,
    WITHDRAWN,
)
from monitor.formats.storable import _INVISIBLE, CUT_MARK, IDENTIFIERS, NUL, Limits
from monitor.formats.units import CANONICAL_DECIMALS, conversion_factors, conversion_offsets
from monitor.timestamps import PLAUSIBLE_YEARS

# An HL7 time of the common case: minutes or seconds, and an offset.
# ASCII digits only: Python's int() and float() read other scripts' digits, the file reading does not.
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?([+-])(\d{2})(\d{2})", re.ASCII)
_OFFSET_AT_END = re.compile(r"[+-]\d{4}$", re.ASCII)
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
_BIRTH_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_HIDDEN = re.compile(_INVISIBLE)
_SEXES = ("F", "M", "O", "U")
# Statuses that store a value as it is (a withdrawal or a pending result goes the file way).
_STORING = frozenset(("final", "preliminary", "corrected"))


@dataclass(frozen=True, slots=True)
class QuickRead:
    """The messages' results (``monitor.formats.records.RESULT_COLUMNS`` and ``generation`` 0, one dict
    per result, in message order) and patients (``PATIENT_COLUMNS``, one dict per patient)."""

    results: list[dict[str, Any]]
    patients: list[dict[str, str]]


class _Units:
    """Factors and offsets to the canonical unit, and reference range limits, computed by the vectorised
    functions once per distinct unit or range and kept (a feed sends few of either)."""

    def __init__(self) -> None:
        self.factors: dict[tuple[str, str], tuple[float, float]] = {}
        self.ranges: dict[str, tuple[str, str]] = {}

    def factor(self, unit: str, kind: str) -> tuple[float, float]:
        key = (unit, kind)
        if key not in self.factors:
            units, kinds = pd.Series([unit]), pd.Series([kind])
            factors = conversion_factors(units, kinds).astype("float64")
            offsets = conversion_offsets(units, kinds).astype("float64")
            if len(self.factors) > 10_000:
                self.factors.clear()
            self.factors[key] = (float(factors.iloc[0]), float(offsets.iloc[0]))
        return self.factors[key]

    def range(self, text: str) -> tuple[str, str]:
        if text not in self.ranges:
            found = split_range(pd.Series([text]))
            if len(self.ranges) > 10_000:
                self.ranges.clear()
            self.ranges[text] = (str(found["low"].iloc[0]), str(found["high"].iloc[0]))
        return self.ranges[text]


_UNITS = _Units()


class _NotCommon(Exception):
    """The messages need the file reading."""


def read_quickly(
    messages: list[list[str]],
    *,
    zone: str,
    imported_at: datetime,
    future_tolerance: timedelta,
    limits: Limits,
) -> QuickRead | None:
    """The results and patients of ``messages`` (each a list of segments, as
    ``monitor.formats.hl7v2.split_messages`` gives them), or None when any of them needs the file reading.

    ``zone`` is where the file reading reads a time without an offset: this reading takes none, so it is
    only checked to be the caller's. ``imported_at``, ``future_tolerance`` and ``limits`` as the file
    reading's (``monitor.formats.piece.PieceReading``).
    """
    del zone  # times without an offset go the file way
    try:
        return _read(messages, imported_at, future_tolerance, limits)
    except _NotCommon:
        return None


def _read(
    messages: list[list[str]], imported_at: datetime, tolerance: timedelta, limits: Limits
) -> QuickRead:
    rows, groups, patients, problems = observations(messages, 0)
    if problems or not rows:
        raise _NotCommon
    latest = imported_at.astimezone(UTC) + tolerance
    people = _patients(patients, limits.patients)
    results: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    record_limits = limits.records
    for row in rows:
        observation = dict(zip(OBSERVATION_ROW, row[:-1], strict=True))
        group = dict(zip(GROUP_ROW, groups[row[-1]], strict=True))
        result = _result(observation, group, latest, record_limits, limits.location)
        key = tuple(result[name] for name in NATURAL_KEY)
        if key in seen:
            raise _NotCommon  # a record repeated in the group: the file reading orders or refuses it
        seen.add(key)
        results.append(result)
    return QuickRead(results, people)


def _result(
    observation: dict[str, Any],
    group: dict[str, Any],
    latest: datetime,
    limits: Mapping[str, int],
    location_limit: int | None,
) -> dict[str, Any]:
    """One observation as ``normalise_results`` keeps it (raises `_NotCommon` outside the common case)."""
    loinc, value, status_text = observation["loinc"], observation["value"], observation["status"]
    if loinc:
        analyte = LOINC.get(loinc, "")
    else:
        analyte = (
            LOCAL_ALIASES.get(observation["local_code"].lower())
            or LOCAL_ALIASES.get(observation["local_text"].lower())
            or ""
        )
    known = ANALYTES.get(analyte)
    if known is None or known.kind not in ("count", "hgb"):
        raise _NotCommon  # another observation, a percentage (counts derived from it) or a temperature
    if status_text in NOT_YET and value == "":
        raise _NotCommon  # pending
    if observation["value_type"] != "NM":
        raise _NotCommon
    collected_text = group["collected_at"] or observation["observed_at"]
    offset = group["message_offset"]
    collected = _instant(collected_text, offset)
    reported_text = group["reported_at"]
    reported = _instant(reported_text, offset) if reported_text else None
    if collected > latest:
        raise _NotCommon  # in the future: refused, in the file reading's words
    low_text, high_text = _UNITS.range(observation["ref_raw"])
    raw: dict[str, str] = {
        "patient_id": group["patient_id"],
        "assigning_authority": group["assigning_authority"],
        "analyte": analyte,
        "value": value,
        "unit": observation["unit"],
        "ref_low": low_text,
        "ref_high": high_text,
        "lab": group["lab"],
        "accession": group["accession"],
        "status": status_text,
        "loinc": loinc,
        "ref_raw": observation["ref_raw"],
        "abnormal_flag": observation["abnormal_flag"],
    }
    _check_storable(raw, limits)
    text = {name: field.strip() for name, field in raw.items()}
    if any(raw[name] != text[name] for name in ("patient_id", "assigning_authority", "accession", "lab")):
        raise _NotCommon  # a key written with spaces around it (an escape can make one): the file way
    status = STATUS_ALIASES.get(text["status"].lower())
    if status is None or status in WITHDRAWN or status not in _STORING:
        raise _NotCommon
    number = _number(text["value"])
    if number is None or not text["unit"]:
        raise _NotCommon
    factor, shift = _UNITS.factor(text["unit"], known.kind)
    if np.isnan(factor):
        raise _NotCommon  # an unknown unit
    low = _number(text["ref_low"]) if text["ref_low"] else None
    high = _number(text["ref_high"]) if text["ref_high"] else None
    if (text["ref_low"] and low is None) or (text["ref_high"] and high is None):
        raise _NotCommon
    canonical = _canonical(number, factor, shift)
    if canonical > known.plausible_max or canonical < known.plausible_min:
        raise _NotCommon
    low_canonical = _canonical(low, factor, shift) if low is not None else None
    high_canonical = _canonical(high, factor, shift) if high is not None else None
    if low_canonical is not None and high_canonical is not None and low_canonical > high_canonical:
        raise _NotCommon
    given_range = text["ref_raw"]
    joined = f"{text['ref_low']}-{text['ref_high']}" if text["ref_low"] or text["ref_high"] else None
    location = observation["location"]
    if location_limit is not None and len(location) > location_limit:
        location = location[: location_limit - len(CUT_MARK)] + CUT_MARK
    return {
        "patient_id": text["patient_id"],
        "assigning_authority": text["assigning_authority"],
        "collected_at": collected,
        "analyte": analyte,
        "loinc": text["loinc"] or (analyte if analyte in LOINC else None),
        "value_raw": text["value"],
        "unit_raw": text["unit"],
        "value": canonical,
        "comparator": None,
        "unit": known.unit,
        "ref_low": low_canonical,
        "ref_high": high_canonical,
        "ref_raw": given_range if given_range else joined,
        "abnormal_flag": text["abnormal_flag"] or None,
        "status": status,
        "derived": False,
        "lab": text["lab"] or UNSPECIFIED_LAB,
        "accession": text["accession"],
        "location": location,
        "raw_text": observation["raw_text"],
        "reported_at": reported,
        "generation": 0,
    }


def _instant(stamp: str, message_offset: str) -> datetime:
    """An HL7 time with its offset (MSH-7's when it has none) in UTC, as ``hl7_to_iso`` then
    ``normalise_results`` read it; `_NotCommon` for any other form, or a year outside the plausible ones."""
    stamp = stamp.strip()
    if stamp and not _OFFSET_AT_END.search(stamp) and message_offset:
        stamp += message_offset
    found = _STAMP.fullmatch(stamp)
    if found is None:
        raise _NotCommon
    year, month, day, hour, minute, second, sign, hours, minutes = found.groups()
    if int(hours) > 14 or int(minutes) > 59:
        raise _NotCommon
    shift = timedelta(hours=int(hours), minutes=int(minutes)) * (1 if sign == "+" else -1)
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone(shift)
        )
        instant = local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _NotCommon from None
    if not PLAUSIBLE_YEARS[0] <= instant.year <= PLAUSIBLE_YEARS[1]:
        raise _NotCommon
    return instant


def _number(text: str) -> float | None:
    """A plain decimal number, as ``pd.to_numeric`` reads it; None for any other text."""
    return float(text) if _PLAIN_NUMBER.fullmatch(text) else None


def _canonical(value: float, factor: float, shift: float) -> float:
    """``to_canonical`` of one value: the same float64 arithmetic and the same rounding (numpy rounds to
    ``CANONICAL_DECIMALS`` by scaling, rounding half to even, and scaling back, as Python's ``round`` of
    the scaled value does)."""
    scale = 10.0**CANONICAL_DECIMALS
    scaled = (value * factor + shift) * scale
    if not math.isfinite(scaled):
        raise _NotCommon  # a number beyond float64 ("1" and 400 zeros): the file way refuses it
    return round(scaled) / scale


def _check_storable(raw: Mapping[str, str], limits: Mapping[str, int]) -> None:
    """``storable``'s checks of one record: a NUL, an identifier with an invisible character, a field
    longer than the store keeps; any of them goes the file way (which words the refusal)."""
    given_range = raw["ref_raw"].strip()
    low, high = raw["ref_low"].strip(), raw["ref_high"].strip()
    checked = dict(raw, ref_raw=given_range or (f"{low}-{high}" if low or high else ""))
    for name, value in checked.items():
        if NUL in value:
            raise _NotCommon
        if name in IDENTIFIERS and _HIDDEN.search(value.strip()):
            raise _NotCommon
        limit = limits.get(name)
        if limit is not None and len(value.strip()) > limit:
            raise _NotCommon


def _patients(patients: list[tuple[str, ...]], limits: Mapping[str, int]) -> list[dict[str, str]]:
    """The messages' patients, each once, as ``ensure_patients`` reads them; `_NotCommon` when a
    demographic field cannot be kept or read plainly."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for patient in patients:
        fields = dict(zip(PATIENT_COLUMNS, patient, strict=True))
        for name, value in fields.items():
            if NUL in value or (name in IDENTIFIERS and _HIDDEN.search(value.strip())):
                raise _NotCommon
            if name in IDENTIFIERS and value != value.strip():
                raise _NotCommon
            limit = limits.get(name)
            if limit is not None and len(value) > limit:
                raise _NotCommon
        born = fields["birth_date"]
        if born and not (_BIRTH_DATE.fullmatch(born) and _is_date(born)):
            raise _NotCommon
        if fields["sex"] not in ("", *_SEXES):
            raise _NotCommon
        key = (fields["assigning_authority"], fields["patient_id"])
        if key in found and found[key] != fields:
            raise _NotCommon  # one patient described two ways: the file way keeps its first
        found.setdefault(key, fields)
    return list(found.values())


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
