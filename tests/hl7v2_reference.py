"""The HL7 v2 parser as it was before its fast path: python-hl7's object model for every message.

Kept unchanged as the oracle `tests/test_hl7_fast.py` compares `monitor.formats.hl7v2` with (the same
records, refusals, patients, others and pending counts for any input). Not used by the application.

The original module's description: HL7 v2.x ORU^R01 result messages, read with the `hl7` library.

A file may hold one or many messages, with ``\\r``, ``\\n`` or ``\\r\\n`` between segments and MLLP framing
characters around them. Fields read: PID-3 (identifier, assigning authority, type MR preferred),
PID-5/7/8, OBR-3 accession (OBR-2 when absent), OBR-7 collection time (OBX-14 when OBR-7 is empty), OBR-22
report time, OBX-2/3/5/6/7/8/11, MSH-4 (the lab; MSH-3 when absent), MSH-7's offset (the default for the
message's times that carry none) (HL7 v2.5.1; docs/clinical-basis.md, HL7 v2 fields read).

Result identity follows LOINC when the code system is LN (the code is matched, never the display text;
docs/clinical-basis.md, LOINC codes), so a misused LOINC code is not rescued by its text; local codes and
names are matched in `monitor.analytes.LOCAL_ALIASES`.
"""

from __future__ import annotations

import re
from typing import Any

import hl7
import pandas as pd

from monitor.analytes import LOCAL_ALIASES, LOINC
from monitor.formats.parsed import (
    OTHER_COLUMNS,
    PATIENT_COLUMNS,
    RAW_COLUMNS,
    REJECT_COLUMNS,
    Parsed,
    cut_raw,
)
from monitor.formats.ranges import split_range
from monitor.timestamps import OUTSIDE_YEARS, hl7_to_iso, year_outside

MLLP_CHARACTERS = ("\x0b", "\x1c")
# Statuses that mean "no result yet" (HL7 table 0085: I pending, O order only, N not asked).
NOT_YET = ("I", "O", "N")
LOINC_SYSTEMS = ("LN", "LOINC")


def looks_like_hl7(text: str) -> bool:
    """True when the content (after any MLLP framing) starts with an MSH, FHS or BHS segment."""
    start = text.lstrip("\ufeff\x0b\r\n\t ")[:4]
    return start[:3] in ("MSH", "FHS", "BHS") and len(start) == 4 and not start[3].isalnum()


def split_messages(text: str) -> tuple[list[list[str]], list[str]]:
    """Messages as lists of segments, and any stray text before the first MSH."""
    for character in MLLP_CHARACTERS:
        text = text.replace(character, "\r")
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    messages: list[list[str]] = []
    stray: list[str] = []
    for segment in segments:
        if segment.startswith(("FHS", "BHS", "BTS", "FTS")):
            continue
        if segment.startswith("MSH"):
            messages.append([segment])
        elif messages:
            messages[-1].append(segment)
        else:
            stray.append(segment)
    return messages, stray


def _get(segment: Any, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
    try:
        return str(segment.extract_field(1, field, repetition, component, sub) or "").strip()
    except (IndexError, KeyError, AttributeError, TypeError, ValueError):
        return ""


def _repetitions(segment: Any, field: int) -> int:
    try:
        return max(1, len(segment[field])) if field < len(segment) else 0
    except (TypeError, IndexError):
        return 0


def _unit(message: Any, segment: Any) -> str:
    """OBX-6, re-joining a raw ``10^9/L`` that a conformant parser splits into ``10`` and ``9/L``.

    HL7 v2 escapes ``^`` in data as ``\\S\\``, but some analysers send it raw
    (docs/clinical-basis.md, Units and UCUM).
    """
    first, second = _get(segment, 6, 1), _get(segment, 6, 2)
    if first.isdigit() and second and second[0].isdigit():
        joined: str = message.unescape(f"{first}^{second}")
        return joined
    unit: str = message.unescape(first)
    return unit


class _Message:
    """One parsed message and the fields the records need from its header and patient."""

    def __init__(self, parsed: Any, number: int) -> None:
        self.parsed = parsed
        msh = parsed.segment("MSH")
        self.control_id = _get(msh, 10)
        self.kind = f"{_get(msh, 9, 1)}^{_get(msh, 9, 2)}"
        self.lab = _get(msh, 4) or _get(msh, 3)
        self.offset = message_offset(_get(msh, 7))
        self.where = f"message {number}" + (f" ({self.control_id})" if self.control_id else "")

    def patient(self) -> dict[str, str]:
        pid = self.parsed.segment("PID")
        chosen = 1
        for repetition in range(1, _repetitions(pid, 3) + 1):
            if _get(pid, 3, 5, repetition).upper() == "MR":
                chosen = repetition
                break
        family, given, middle = (_get(pid, 5, c) for c in (1, 2, 3))
        born = _get(pid, 7)
        birth_date = f"{born[0:4]}-{born[4:6]}-{born[6:8]}" if len(born) >= 8 and born[:8].isdigit() else ""
        sex = {"F": "F", "M": "M", "O": "O", "U": "U", "A": "O", "N": "U"}.get(_get(pid, 8).upper(), "")
        unescape = self.parsed.unescape
        return {
            "patient_id": unescape(_get(pid, 3, 1, chosen)),
            "assigning_authority": unescape(_get(pid, 3, 4, chosen)),
            "name": unescape(", ".join(p for p in (family, " ".join(p for p in (given, middle) if p)) if p)),
            "birth_date": birth_date,
            "sex": sex,
        }


def _observation(message: _Message, obr: Any, obx: Any, where: str) -> dict[str, str]:
    """The fields of one OBX (with its OBR and message context), as text."""
    unescape = message.parsed.unescape
    code, text, system = _get(obx, 3, 1), _get(obx, 3, 2), _get(obx, 3, 3).upper()
    alt_code, alt_text, alt_system = _get(obx, 3, 4), _get(obx, 3, 5), _get(obx, 3, 6).upper()
    loinc = code if system in LOINC_SYSTEMS else alt_code if alt_system in LOINC_SYSTEMS else ""
    value_type = _get(obx, 2).upper()
    value = _get(obx, 5)
    if value_type == "SN":
        value = _structured_numeric(obx)
    flags = "~".join(f for f in (_get(obx, 8, 1, r) for r in range(1, _repetitions(obx, 8) + 1)) if f)
    return {
        "code": code,
        "text": unescape(text),
        "system": system,
        "local_code": alt_code if system in LOINC_SYSTEMS else code,
        "local_text": unescape(alt_text if system in LOINC_SYSTEMS else text),
        "loinc": loinc,
        "value_type": value_type,
        "value": unescape(value),
        "unit": _unit(message.parsed, obx),
        "ref_raw": unescape(_get(obx, 7)),
        "abnormal_flag": flags[:10],
        "status": _get(obx, 11).upper() or _get(obr, 25).upper(),
        "observed_at": _get(obx, 14),
        "collected_at": _get(obr, 7),
        "reported_at": _get(obr, 22),
        "accession": unescape(_get(obr, 3) or _get(obr, 2)),
        "lab": unescape(message.lab),
        "message_offset": message.offset,
        "location": where,
        "raw_text": cut_raw(str(obx)),
    }


# The offset that ends an HL7 v2 date/time (DTM/TS): +/-HHMM after the digits.
_OFFSET = re.compile(r"^\d{4,14}(?:\.\d{1,6})?([+-]\d{4})$")


def message_offset(sent_at: str) -> str:
    """MSH-7's UTC offset ('' when it has none): the default for the message's times that carry none.

    HL7 v2 (chapter 2, the TM/DTM data types): a time without an offset takes the offset of the date/time
    in MSH, when that has one, and is otherwise the local time of the sender.

    >>> message_offset("20110531140551-0500"), message_offset("201410060645"), message_offset("")
    ('-0500', '', '')
    """
    found = _OFFSET.match(sent_at.strip())
    return found.group(1) if found else ""


def _with_message_offset(stamps: pd.Series, offsets: pd.Series) -> pd.Series:
    """Each HL7 time, given its message's MSH-7 offset when it carries none of its own."""
    bare = (stamps != "") & ~stamps.str.contains(r"[+-]\d{4}$", regex=True)
    return stamps.where(~bare | offsets.eq(""), stamps + offsets)


def _structured_numeric(obx: Any) -> str:
    """SN ``comparator^number^separator^number``: a plain number only when there is no comparator."""
    comparator, first, separator, second = (_get(obx, 5, c) for c in (1, 2, 3, 4))
    if not comparator and not separator and not second:
        return first
    return "".join((comparator, first, separator, second))


def _observations(
    messages: list[list[str]], messages_before: int
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    rows: list[dict[str, str]] = []
    patients: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    for number, segments in enumerate(messages, start=1 + messages_before):
        raw = "\r".join(segments)
        try:
            message = _Message(hl7.parse(raw), number)
        except Exception as error:  # noqa: BLE001 - the library raises many kinds on malformed input
            problems.append(_problem(f"message {number}", raw, f"cannot be parsed as HL7 v2: {error}"))
            continue
        if message.kind.upper() != "ORU^R01":
            problems.append(
                _problem(message.where, raw, f"{_type_words(message.kind)}, not ORU^R01: no results")
            )
            continue
        try:
            patient = message.patient()
        except KeyError:
            problems.append(_problem(message.where, raw, "no PID segment: the patient is unknown"))
            continue
        if not patient["patient_id"]:
            problems.append(_problem(message.where, raw, "PID-3 carries no patient identifier"))
            continue
        patients.append(patient)
        obr: Any = None
        groups = observations = results = 0
        for segment in message.parsed:
            name = str(segment[0])
            if name == "OBR":
                obr, groups, observations = segment, groups + 1, 0
            elif name == "OBX":
                observations, results = observations + 1, results + 1
                where = f"{message.where}, OBR {max(groups, 1)}, OBX {observations}"
                rows.append({**patient, **_observation(message, obr, segment, where)})
        if not results:
            # Kept for review rather than passed over: most often a message cut short in transfer.
            problems.append(_problem(message.where, raw, "no OBX segment: the message carries no result"))
    return rows, patients, problems


def _problem(location: str, raw: str, reason: str) -> dict[str, str]:
    return {"location": location, "raw_text": cut_raw(raw), "reason": reason}


def parse_hl7(text: str, *, timezone: str = "UTC", messages_before: int = 0) -> Parsed:
    """Read ORU^R01 messages into raw CBC records, other observations, patients and refusals.

    Parameters
    ----------
    text : str
        The file's content.
    timezone : str
        IANA zone for HL7 times that carry no offset, in a message whose MSH-7 carries none either.
    messages_before : int
        Messages of the file before this text (a piece of it), so that message numbers are the file's.
    """
    messages, stray = split_messages(text)
    rows, patients, problems = _observations(messages, messages_before)
    if stray:
        problems.insert(0, _problem("before the first MSH", "\r".join(stray), "text outside any message"))
    rejected = pd.DataFrame(problems, columns=list(REJECT_COLUMNS)).astype(str)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return Parsed(
            records=pd.DataFrame(columns=list(RAW_COLUMNS)),
            rejected=rejected,
            patients=pd.DataFrame(patients, columns=list(PATIENT_COLUMNS)),
        )
    frame["analyte"] = _analyte(frame)
    pending = frame["status"].isin(NOT_YET) & frame["value"].eq("")
    frame = frame[~pending]
    offsets = frame["message_offset"]
    collected = frame["collected_at"].where(frame["collected_at"] != "", frame["observed_at"])
    when = hl7_to_iso(_with_message_offset(collected, offsets), timezone)
    reported = hl7_to_iso(_with_message_offset(frame["reported_at"], offsets), timezone)
    untimed = _untimed(frame, collected, when)
    frame = frame.assign(
        collected_at=when, reported_at=reported, collected_as=_time_field(frame) + " '" + collected + "'"
    )[when.ne("").to_numpy()]
    cbc = frame["analyte"] != ""
    records, refused = _cbc_records(frame[cbc])
    return Parsed(
        records=records,
        rejected=pd.concat([rejected, untimed, refused], ignore_index=True),
        patients=pd.DataFrame(patients, columns=list(PATIENT_COLUMNS)).drop_duplicates(),
        others=_others(frame[~cbc]),
        pending=int(pending.sum()),
    )


def parse_piece(text: str, zone: str, before: int) -> Parsed:
    """A piece of an HL7 file (``before``: its messages before it), times without an offset in ``zone``."""
    return parse_hl7(text, timezone=zone, messages_before=before)


def _time_field(frame: pd.DataFrame) -> pd.Series:
    """The field each observation's collection time comes from: OBR-7, else OBX-14."""
    return frame["collected_at"].ne("").map({True: "OBR-7 collection time", False: "OBX-14 observation time"})


def _untimed(frame: pd.DataFrame, written: pd.Series, read: pd.Series) -> pd.DataFrame:
    """Observations (CBC or not) whose collection time is missing or cannot be read, with the reason."""
    missing = read.eq("")
    source = _time_field(frame) + " '" + written + "'"
    reason = (source + " is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])").where(
        ~year_outside(written), source + OUTSIDE_YEARS
    )
    reason = reason.where(written.ne(""), "no collection time: OBR-7 and OBX-14 are both empty")
    return frame.assign(reason=reason)[missing.to_numpy()][list(REJECT_COLUMNS)]


def _analyte(frame: pd.DataFrame) -> pd.Series:
    """Canonical analyte per OBX: by LOINC when coded in LOINC, else by local alias; '' when neither."""
    by_loinc = frame["loinc"].map(LOINC)
    local = (
        frame["local_code"]
        .str.lower()
        .map(LOCAL_ALIASES)
        .fillna(frame["local_text"].str.lower().map(LOCAL_ALIASES))
    )
    coded_in_loinc = frame["loinc"] != ""
    return by_loinc.where(coded_in_loinc, local).fillna("")


def _cbc_records(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ranges = split_range(frame["ref_raw"])
    not_numeric = frame["value_type"].isin(["CE", "CWE", "CNE", "CF", "ED", "RP", "FT"])
    refused = frame[not_numeric].assign(
        reason="OBX-2 value type " + frame.loc[not_numeric, "value_type"] + " is not a number for a CBC count"
    )[list(REJECT_COLUMNS)]
    kept = frame[~not_numeric]
    records = kept.assign(
        ref_low=ranges.loc[kept.index, "low"], ref_high=ranges.loc[kept.index, "high"]
    ).reindex(columns=list(RAW_COLUMNS), fill_value="")
    return records.astype(str).reset_index(drop=True), refused


def _others(frame: pd.DataFrame) -> pd.DataFrame:
    """Observations outside the CBC, as received."""
    others = frame.assign(code=frame["code"], code_system=frame["system"], name=frame["text"]).reindex(
        columns=list(OTHER_COLUMNS), fill_value=""
    )
    return others.astype(str).reset_index(drop=True)


def _type_words(kind: str) -> str:
    return "MSH-9 (message type) is empty" if not kind.strip("^") else f"MSH-9 is {kind!r}"
