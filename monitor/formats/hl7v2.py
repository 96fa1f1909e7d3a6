"""HL7 v2.x ORU^R01 result messages, split on their own delimiters as the `hl7` library reads them.

A message whose MSH-1 and MSH-2 are the field separator and four distinct encoding characters is split
here (fields, then repetitions, components and subcomponents only of the fields read; python-hl7's own
unescaping where a value holds the escape character): the same reading as python-hl7's object model, at
a fraction of its cost (tests/test_hl7_fast.py compares them). Any other message is read by python-hl7,
so that its reading and its refusals stay the library's.

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
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import hl7
import numpy as np
import pandas as pd
import pyarrow as pa

from monitor.analytes import LOCAL_ALIASES, LOINC
from monitor.formats.parsed import (
    OTHER_COLUMNS,
    PATIENT_COLUMNS,
    RAW_COLUMNS,
    RAW_TEXT_LIMIT,
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


# What `_get` turns into '' rather than raise: a field, component or repetition that is not there, and an
# escape sequence python-hl7 cannot unescape.
_NOT_READ = (IndexError, KeyError, AttributeError, TypeError, ValueError)


def _get(segment: Any, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
    try:
        return str(segment.extract_field(1, field, repetition, component, sub) or "").strip()
    except _NOT_READ:
        return ""


def _repetitions(segment: Any, field: int) -> int:
    try:
        return max(1, len(segment[field])) if field < len(segment) else 0
    except (TypeError, IndexError):
        return 0


class _Library:
    """A message read by python-hl7's object model: for a message the splitter does not read."""

    def __init__(self, raw: str) -> None:
        self.parsed = hl7.parse(raw)
        self.unescape: Callable[[str], str] = self.parsed.unescape
        self.header = self.parsed.segment("MSH")

    def pid(self) -> Any:
        """The first PID segment (KeyError when there is none)."""
        return self.parsed.segment("PID")

    def segments(self) -> Iterator[tuple[str, Any, str]]:
        """Each OBR and OBX segment: its name, the segment and (an OBX's) text."""
        for segment in self.parsed:
            name = str(segment[0])
            if name == "OBR":
                yield name, segment, ""
            elif name == "OBX":
                yield name, segment, str(segment)

    @staticmethod
    def get(segment: Any, field: int, component: int = 1, repetition: int = 1) -> str:
        return _get(segment, field, component, repetition)

    @staticmethod
    def repetitions(segment: Any, field: int) -> int:
        return _repetitions(segment, field)


class _Encoding:
    """A message's delimiters (MSH-1, MSH-2), and a field read from the split text as python-hl7 reads it.

    HL7 v2.5.1 chapter 2: segments are split on the segment terminator, fields on MSH-1 (MSH-1 is the
    field separator itself and MSH-2 the encoding characters, so a plain split of MSH numbers its fields
    one lower), repetitions, components and subcomponents on MSH-2's characters.
    """

    __slots__ = ("field", "component", "repetition", "escape", "subcomponent", "library")

    def __init__(self, delimiters: str) -> None:
        self.field, self.component, self.repetition, self.escape, self.subcomponent = tuple(delimiters)
        # python-hl7's own unescaping with these delimiters (a message of no segment carries them).
        self.library = hl7.Message(
            separators="\r" + self.field + self.repetition + self.component + self.subcomponent,
            esc=self.escape,
        )

    def unescape(self, text: str) -> str:
        """Escape sequences (\\F\\, \\S\\, \\X..\\, highlighting...) replaced, as python-hl7 does."""
        if self.escape not in text:
            return text
        unescaped: str = self.library.unescape(text)
        return unescaped

    def get(self, fields: list[str], field: int, component: int = 1, repetition: int = 1) -> str:
        """What `_get` returns for the same field of the segment python-hl7 builds from these fields.

        python-hl7 splits a field into repetitions only when it holds a repetition, component or
        subcomponent separator, a repetition into components only when it holds a component or
        subcomponent separator: either way a missing part reads as '', and the first subcomponent is
        read. Not for MSH-1 and MSH-2, which python-hl7 does not unescape.
        """
        if field >= len(fields):
            return ""
        text = fields[field]
        if repetition > 1 or self.repetition in text:
            parts = text.split(self.repetition)
            if repetition > len(parts):
                return ""
            text = parts[repetition - 1]
        if component > 1 or self.component in text:
            parts = text.split(self.component)
            if component > len(parts):
                return ""
            text = parts[component - 1]
        if self.subcomponent in text:
            text = text.partition(self.subcomponent)[0]
        if self.escape in text:
            try:
                text = self.library.unescape(text)
            except _NOT_READ:
                return ""
        return text.strip()

    def repetitions(self, fields: list[str], field: int) -> int:
        return fields[field].count(self.repetition) + 1 if field < len(fields) else 0

    def plain(self, text: str) -> bool:
        """Whether a segment holds no repetition or subcomponent separator and no escape character: then
        each field read is its first component, stripped, as it stands."""
        return self.repetition not in text and self.subcomponent not in text and self.escape not in text


# Each message's delimiters, by MSH-1 and MSH-2's first four characters (None: python-hl7 reads it).
_ENCODINGS: dict[str, _Encoding | None] = {}


def _encoding(msh: str) -> _Encoding | None:
    """The delimiters of a message the splitter reads exactly as python-hl7 would, else None.

    That is MSH, then MSH-1, at least four encoding characters and MSH-1 again, the field separator and
    the four encoding characters read (component, repetition, escape, subcomponent) distinct punctuation.
    Anything else (a header cut short, encoding characters missing, repeated or odd) goes to python-hl7,
    whose reading and refusals ("cannot be parsed as HL7 v2: ...") stay as they were.
    """
    if len(msh) < 9 or msh.find(msh[3], 4) < 8:
        return None
    delimiters = msh[3:8]
    if delimiters not in _ENCODINGS:
        if len(_ENCODINGS) >= 1_000:  # a hostile file of ever-new delimiters: kept bounded
            _ENCODINGS.clear()
        usable = len(set(delimiters)) == 5 and all(c in string.punctuation for c in delimiters)
        _ENCODINGS[delimiters] = _Encoding(delimiters) if usable else None
    return _ENCODINGS[delimiters]


class _Split:
    """A message read by splitting its text: the fast path, same reading as `_Library` (tests check)."""

    def __init__(self, texts: list[str], encoding: _Encoding) -> None:
        self.texts = texts
        self.encoding = encoding
        self.unescape = encoding.unescape
        self.get = encoding.get
        self.repetitions = encoding.repetitions
        separator = encoding.field
        msh = texts[0]
        end = msh.find(separator, 4)
        rest = msh[end + 1 :]
        self.header = ["MSH", separator, msh[4:end], *(rest.split(separator) if rest else ())]

    def pid(self) -> list[str]:
        """The first PID segment's fields (KeyError when there is none)."""
        return self.pid_text().split(self.encoding.field)

    def pid_text(self) -> str:
        """The first PID segment (KeyError when there is none)."""
        start = "PID" + self.encoding.field
        for text in self.texts:
            if text.startswith(start):
                return text
        raise KeyError("No PID segments")

    def segments(self) -> Iterator[tuple[str, list[str], str]]:
        """Each OBR and OBX segment: its name, its fields and (an OBX's) text."""
        separator = self.encoding.field
        obr, obx = "OBR" + separator, "OBX" + separator
        for text in self.texts:
            start = text[:4]
            if start == obx or text == "OBX":
                yield "OBX", text.split(separator), text
            elif start == obr or text == "OBR":
                yield "OBR", text.split(separator), ""


_SEX = {"F": "F", "M": "M", "O": "O", "U": "U", "A": "O", "N": "U"}


class _Message:
    """One message and the fields the records need from its header and patient."""

    def __init__(self, reader: _Library | _Split, number: int) -> None:
        self.reader = reader
        get, msh = reader.get, reader.header
        self.control_id = get(msh, 10)
        self.kind = f"{get(msh, 9, 1)}^{get(msh, 9, 2)}"
        self.lab = get(msh, 4) or get(msh, 3)
        self.offset = message_offset(get(msh, 7))
        self.where = f"message {number}" + (f" ({self.control_id})" if self.control_id else "")

    def patient(self, known: dict[tuple[_Encoding, str], tuple[str, ...]]) -> tuple[str, ...]:
        """PID-3 (type MR preferred), its assigning authority, name, birth date, sex (`PATIENT_COLUMNS`).

        ``known``: the patients of split messages already read, by their PID segment (a patient's
        messages repeat it), filled in here.
        """
        reader = self.reader
        if isinstance(reader, _Split):
            key = (reader.encoding, reader.pid_text())
            if key in known:
                return known[key]
            known[key] = self._patient()
            return known[key]
        return self._patient()

    def _patient(self) -> tuple[str, str, str, str, str]:
        reader = self.reader
        get = reader.get
        pid = reader.pid()
        chosen = 1
        for repetition in range(1, reader.repetitions(pid, 3) + 1):
            if get(pid, 3, 5, repetition).upper() == "MR":
                chosen = repetition
                break
        family, given, middle = (get(pid, 5, c) for c in (1, 2, 3))
        born = get(pid, 7)
        birth_date = f"{born[0:4]}-{born[4:6]}-{born[6:8]}" if len(born) >= 8 and born[:8].isdigit() else ""
        sex = _SEX.get(get(pid, 8).upper(), "")
        unescape = reader.unescape
        return (
            unescape(get(pid, 3, 1, chosen)),
            unescape(get(pid, 3, 4, chosen)),
            unescape(", ".join(p for p in (family, " ".join(p for p in (given, middle) if p)) if p)),
            birth_date,
            sex,
        )


# An observation's columns after its patient's (`PATIENT_COLUMNS`): the frame `parse_hl7` builds.
OBSERVATION_COLUMNS = (
    "code",
    "text",
    "system",
    "local_code",
    "local_text",
    "loinc",
    "value_type",
    "value",
    "unit",
    "ref_raw",
    "abnormal_flag",
    "status",
    "observed_at",
    "collected_at",
    "reported_at",
    "accession",
    "lab",
    "message_offset",
    "location",
    "raw_text",
)
ROW_COLUMNS = (*PATIENT_COLUMNS, *OBSERVATION_COLUMNS)
# What `observations` returns, observations with the row of their group, and groups: what an OBR's
# observations share (their patient, OBR, message).
OBSERVATION_ROW = (*OBSERVATION_COLUMNS[:13], "location", "raw_text")
GROUP_ROW = (*PATIENT_COLUMNS, "collected_at", "reported_at", "accession", "lab", "message_offset")


def _observation(reader: _Library | _Split, obx: Any, obr_status: str, *rest: Any) -> tuple[Any, ...]:
    """An `OBSERVATION_ROW`: the OBX's own fields as text (OBR-25 ``obr_status`` when OBX-11 is empty),
    then ``rest`` (its location, text and group)."""
    get, unescape = reader.get, reader.unescape
    code, text, system = get(obx, 3, 1), get(obx, 3, 2), get(obx, 3, 3).upper()
    alt_code, alt_text, alt_system = get(obx, 3, 4), get(obx, 3, 5), get(obx, 3, 6).upper()
    loinc = code if system in LOINC_SYSTEMS else alt_code if alt_system in LOINC_SYSTEMS else ""
    value_type = get(obx, 2).upper()
    value = get(obx, 5)
    if value_type == "SN":
        value = _structured_numeric(get(obx, 5, c) for c in (1, 2, 3, 4))
    flags = "~".join(f for f in (get(obx, 8, 1, r) for r in range(1, reader.repetitions(obx, 8) + 1)) if f)
    return (
        code,
        unescape(text),
        system,
        alt_code if system in LOINC_SYSTEMS else code,
        unescape(alt_text if system in LOINC_SYSTEMS else text),
        loinc,
        value_type,
        unescape(value),
        _unit(unescape, get(obx, 6, 1), get(obx, 6, 2)),
        unescape(get(obx, 7)),
        flags[:10],
        get(obx, 11).upper() or obr_status,
        get(obx, 14),
        *rest,
    )


def _plain_observation(
    fields: list[str], component: str, unescape: Callable[[str], str], obr_status: str, *rest: Any
) -> tuple[Any, ...]:
    """`_observation` of a segment `_Encoding.plain` (its fields), without a call per field."""
    if len(fields) < 15:
        fields = fields + _BLANKS[len(fields) :]
    coded = fields[3].split(component)
    if len(coded) < 6:
        coded += _BLANKS[len(coded) : 6]
    code, text, system = coded[0].strip(), coded[1].strip(), coded[2].strip().upper()
    alt_code, alt_text, alt_system = coded[3].strip(), coded[4].strip(), coded[5].strip().upper()
    loinc = code if system in LOINC_SYSTEMS else alt_code if alt_system in LOINC_SYSTEMS else ""
    value_type = fields[2].partition(component)[0].strip().upper()
    if value_type == "SN":
        parts = fields[5].split(component)
        value = _structured_numeric(parts[c].strip() if c < len(parts) else "" for c in range(4))
    else:
        value = fields[5].partition(component)[0].strip()
    unit = fields[6].partition(component)
    first = unit[0].strip()
    if first.isdigit():  # `_unit`, the unit needing no unescaping but when it is re-joined
        second = unit[2].partition(component)[0].strip()
        if second and second[0].isdigit():
            first = unescape(f"{first}^{second}")
    return (
        code,
        text,
        system,
        alt_code if system in LOINC_SYSTEMS else code,
        alt_text if system in LOINC_SYSTEMS else text,
        loinc,
        value_type,
        value,
        first,
        fields[7].partition(component)[0].strip(),
        fields[8].partition(component)[0].strip()[:10],
        fields[11].partition(component)[0].strip().upper() or obr_status,
        fields[14].partition(component)[0].strip(),
        *rest,
    )


_BLANKS = [""] * 15


def _unit(unescape: Callable[[str], str], first: str, second: str) -> str:
    """OBX-6 (its first two components), re-joining a raw ``10^9/L`` that a conformant parser splits into
    ``10`` and ``9/L``.

    HL7 v2 escapes ``^`` in data as ``\\S\\``, but some analysers send it raw
    (docs/clinical-basis.md, Units and UCUM).
    """
    if first.isdigit() and second and second[0].isdigit():
        return unescape(f"{first}^{second}")
    return unescape(first)


def _context(reader: _Library | _Split, obr: Any, lab: str) -> tuple[str, str, str, str, str]:
    """What an OBX takes from its OBR (none before the first) and message: OBR-25 (the status when OBX-11
    is empty), then `OBSERVATION_COLUMNS` ``collected_at``, ``reported_at``, ``accession``, ``lab``."""
    if obr is None:
        return "", "", "", "", reader.unescape(lab)
    get, unescape = reader.get, reader.unescape
    return (
        get(obr, 25).upper(),
        get(obr, 7),
        get(obr, 22),
        unescape(get(obr, 3) or get(obr, 2)),
        unescape(lab),
    )


# The offset that ends an HL7 v2 date/time (DTM/TS): +/-HHMM after the digits.
_OFFSET = re.compile(r"^\d{4,14}(?:\.\d{1,6})?([+-]\d{4})$")


class Header(NamedTuple):
    """What an acknowledgement needs of a message's MSH (HL7 v2.5.1 chapter 2, MSH): its delimiters
    (MSH-1 then MSH-2), sending and receiving application and facility (MSH-3 to MSH-6, as written:
    an ACK sends them back swapped), type (MSH-9 message code ^ trigger event), control ID (MSH-10),
    processing ID (MSH-11) and version (MSH-12)."""

    delimiters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    kind: str
    control_id: str
    processing_id: str
    version: str


def message_type_words(kind: str) -> str:
    """MSH-9 in a refusal: "MSH-9 is 'ADT^A01'", or that it is empty (a header cut short)."""
    return "MSH-9 (message type) is empty" if not kind.strip("^") else f"MSH-9 is {kind!r}"


def message_header(text: str) -> Header:
    """The MSH of the one message ``text`` holds (MLLP framing and line endings as a file's).

    Raises
    ------
    ValueError
        When the text does not begin with an MSH segment python-hl7 can read (the reason says which).
    """
    messages, stray = split_messages(text)
    if stray or not messages:
        raise ValueError("the message does not begin with an MSH segment")
    segments = messages[0]
    delimiters = segments[0][3:8]
    if len(delimiters) < 5 or len(set(delimiters)) < 5 or any(c.isalnum() or c.isspace() for c in delimiters):
        raise ValueError(
            "MSH-1 and MSH-2 are not a field separator and four distinct encoding characters (e.g. |^~\\&)"
        )
    encoding = _encoding(segments[0])
    try:
        reader = _Split(segments[:1], encoding) if encoding else _Library(segments[0])
    except Exception as error:  # noqa: BLE001 - the library raises many kinds on malformed input
        raise ValueError(f"its MSH cannot be parsed as HL7 v2: {error}") from None
    msh = reader.header

    def whole(field: int) -> str:
        """A field as written (components and all)."""
        if encoding:
            return str(msh[field]) if field < len(msh) else ""
        return _whole(msh, field)

    get = reader.get
    return Header(
        delimiters=delimiters,
        sending_application=whole(3),
        sending_facility=whole(4),
        receiving_application=whole(5),
        receiving_facility=whole(6),
        kind=f"{get(msh, 9, 1)}^{get(msh, 9, 2)}",
        control_id=get(msh, 10),
        processing_id=get(msh, 11),
        version=get(msh, 12),
    )


def _whole(segment: Any, field: int) -> str:
    """A field of a segment python-hl7 read, as written (components and all)."""
    try:
        return str(segment[field]) if field < len(segment) else ""
    except _NOT_READ:
        return ""


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


def _structured_numeric(components: Iterable[str]) -> str:
    """SN ``comparator^number^separator^number``: a plain number only when there is no comparator."""
    comparator, first, separator, second = components
    if not comparator and not separator and not second:
        return first
    return "".join((comparator, first, separator, second))


def observations(
    messages: list[list[str]], messages_before: int
) -> tuple[list[tuple[Any, ...]], list[tuple[str, ...]], list[tuple[str, ...]], list[dict[str, str]]]:
    """Observations (`OBSERVATION_ROW`), their OBR groups (`GROUP_ROW`), patients (`PATIENT_COLUMNS`)
    and refusals (`REJECT_COLUMNS`)."""
    rows: list[tuple[Any, ...]] = []
    groups: list[tuple[str, ...]] = []
    known: dict[tuple[_Encoding, str], tuple[str, ...]] = {}
    patients: list[tuple[str, ...]] = []
    problems: list[dict[str, str]] = []
    for number, segments in enumerate(messages, start=1 + messages_before):
        # python-hl7 strips the message's text: only the end of its last segment can change.
        last = segments[-1].rstrip()
        texts = segments if last == segments[-1] else [*segments[:-1], last]
        encoding = _encoding(texts[0])
        try:
            reader = _Split(texts, encoding) if encoding else _Library("\r".join(segments))
            message = _Message(reader, number)
        except Exception as error:  # noqa: BLE001 - the library raises many kinds on malformed input
            raw = "\r".join(segments)
            problems.append(_problem(f"message {number}", raw, f"cannot be parsed as HL7 v2: {error}"))
            continue
        if message.kind.upper() != "ORU^R01":
            problems.append(
                _problem(
                    message.where,
                    "\r".join(segments),
                    f"{message_type_words(message.kind)}, not ORU^R01: no results",
                )
            )
            continue
        try:
            patient = message.patient(known)
        except KeyError:
            problems.append(
                _problem(message.where, "\r".join(segments), "no PID segment: the patient is unknown")
            )
            continue
        if not patient[0]:
            problems.append(
                _problem(message.where, "\r".join(segments), "PID-3 carries no patient identifier")
            )
            continue
        patients.append(patient)
        plain = encoding.plain if encoding else None
        component = encoding.component if encoding else ""
        unescape = reader.unescape
        obr: Any = None
        group = -1  # the OBR's row in ``groups`` once one of its OBX is read
        obr_status = ""
        number_of_obr = observations = results = 0
        for name, segment, text in reader.segments():
            if name == "OBR":
                obr, group, number_of_obr, observations = segment, -1, number_of_obr + 1, 0
            else:
                observations, results = observations + 1, results + 1
                if group < 0:
                    obr_status, *context = _context(reader, obr, message.lab)
                    group = len(groups)
                    groups.append((*patient, *context, message.offset))
                where = f"{message.where}, OBR {max(number_of_obr, 1)}, OBX {observations}"
                raw = text if len(text) <= RAW_TEXT_LIMIT else cut_raw(text)
                if plain is not None and plain(text):
                    row = _plain_observation(segment, component, unescape, obr_status, where, raw, group)
                else:
                    row = _observation(reader, segment, obr_status, where, raw, group)
                rows.append(row)
        if not results:
            # Kept for review rather than passed over: most often a message cut short in transfer.
            problems.append(
                _problem(message.where, "\r".join(segments), "no OBX segment: the message carries no result")
            )
    return rows, groups, patients, problems


def _frame(rows: list[tuple[Any, ...]], groups: list[tuple[str, ...]]) -> pd.DataFrame:
    """The observations as a frame of `ROW_COLUMNS`, each group's values taken from one array per column."""
    *columns, at = zip(*rows, strict=True)  # every row has every column
    texts = {
        name: pa.array(column, pa.large_string())
        for name, column in zip(OBSERVATION_ROW, columns, strict=True)
    }
    where = pa.array(at, pa.int64())
    shared = zip(GROUP_ROW, zip(*groups, strict=True), strict=True)
    texts.update((name, pa.array(column, pa.large_string()).take(where)) for name, column in shared)
    return pd.DataFrame({name: pd.Series(texts[name], dtype="str") for name in ROW_COLUMNS})


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
    rows, groups, patients, problems = observations(messages, messages_before)
    if stray:
        problems.insert(0, _problem("before the first MSH", "\r".join(stray), "text outside any message"))
    rejected = pd.DataFrame(problems, columns=list(REJECT_COLUMNS)).astype(str)
    if not rows:
        return Parsed(
            records=pd.DataFrame(columns=list(RAW_COLUMNS)),
            rejected=rejected,
            patients=pd.DataFrame(patients, columns=list(PATIENT_COLUMNS)),
        )
    frame = _frame(rows, groups)
    frame["analyte"] = _by_distinct(_analyte, frame["loinc"], frame["local_code"], frame["local_text"])
    pending = frame["status"].isin(NOT_YET) & frame["value"].eq("")
    frame = frame[~pending]
    offsets = frame["message_offset"]
    collected = frame["collected_at"].where(frame["collected_at"] != "", frame["observed_at"])

    def read_time(stamps: pd.Series, offsets: pd.Series) -> pd.Series:
        return hl7_to_iso(_with_message_offset(stamps, offsets), timezone)

    when = _by_distinct(read_time, collected, offsets)
    reported = _by_distinct(read_time, frame["reported_at"], offsets)
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
    missing = read.eq("").to_numpy()
    frame, written = frame[missing], written[missing]
    source = _time_field(frame) + " '" + written + "'"
    reason = (source + " is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])").where(
        ~year_outside(written), source + OUTSIDE_YEARS
    )
    reason = reason.where(written.ne(""), "no collection time: OBR-7 and OBX-14 are both empty")
    return frame.assign(reason=reason.astype("str"))[list(REJECT_COLUMNS)]


def _by_distinct(function: Callable[..., Any], *columns: pd.Series) -> Any:
    """``function(*columns)``, a function of each row alone, computed once per distinct row of the columns.

    A panel's observations share their times, a feed's its codes and ranges: the costly readings (regular
    expressions, time zones) run on a few values instead of every row.

    >>> _by_distinct(lambda a, b: a + b, pd.Series(["x", "y", "x"]), pd.Series(["1", "2", "1"])).tolist()
    ['x1', 'y2', 'x1']
    """
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, distinct = pd.factorize(column, use_na_sentinel=False)
        key = pd.factorize(key * len(distinct) + codes)[0]  # below the number of rows
    _, first, where = np.unique(key, return_index=True, return_inverse=True)
    result = function(*(column.iloc[first].reset_index(drop=True) for column in columns))
    return result.iloc[where].set_axis(columns[0].index)


def _analyte(loinc: pd.Series, local_code: pd.Series, local_text: pd.Series) -> pd.Series:
    """Canonical analyte per OBX: by LOINC when coded in LOINC, else by local alias; '' when neither."""
    by_loinc = loinc.map(LOINC)
    local = local_code.str.lower().map(LOCAL_ALIASES).fillna(local_text.str.lower().map(LOCAL_ALIASES))
    coded_in_loinc = loinc != ""
    return by_loinc.where(coded_in_loinc, local).fillna("")


def _cbc_records(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ranges = _by_distinct(split_range, frame["ref_raw"])
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
