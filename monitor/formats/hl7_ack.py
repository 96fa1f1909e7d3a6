"""HL7 v2 acknowledgements (original mode) for the messages a live feed delivers.

HL7 v2.5.1 chapter 2 (2.9.2, original acknowledgment rules; 2.14.1 MSA; 2.14.5 ERR): the receiver answers
each message with an ACK whose MSA-1 is

- ``AA`` (application accept): the message was processed and what it carries is stored;
- ``AE`` (application error): it was processed, but some or all of its records were refused;
- ``AR`` (application reject): it was not processed: not a message this receiver takes, unreadable, or the
  receiver could not process it at all (the store unavailable): nothing of it is stored, and the sender
  may send it again.

MSA-2 echoes the message's control ID (MSH-10), so that the sender can match ACK to message; MSA-3 says
in words what happened (80 characters at most, the field's length in v2.5.1); one ERR segment per refusal
carries its place (ERR-2), an HL7 error code (ERR-3, table 0357), the severity (ERR-4) and the reason
(ERR-8). The ACK's MSH sends the message's sending and receiving application and facility back swapped,
in the message's own delimiters, processing ID and version. Pure: the caller gives the time and a control
ID of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from monitor.formats.hl7v2 import Header

ACCEPTED, ERROR, REJECTED = "AA", "AE", "AR"
# HL7 table 0357 (message error condition codes) used here.
UNSUPPORTED_TYPE = ("200", "Unsupported message type")
INTERNAL_ERROR = ("207", "Application internal error")
SEGMENT_ERROR = ("100", "Segment sequence error")
MSA_TEXT_LENGTH = 80
# ERR segments at most in one ACK: a message of a few hundred refused observations says how many more.
MOST_ERRORS = 20
_DEFAULT_DELIMITERS = "|^~\\&"
_OBR_OBX = re.compile(r"\bOBR (\d+), OBX (\d+)")
# ERR-8 is TX of 80 characters (v2.5.1): the reason in full stays with the refused record in the store.
ERR_TEXT_LENGTH = 80
# Table 0357 codes for a refused record, by what its reason says (in order; anything else: 207).
_REASON_CODES = (
    (
        ("is empty", "no collection time", "no patient identifier", "no pid segment", "no obx"),
        ("101", "Required field missing"),
    ),
    (
        ("is not a number", "is not an hl7 date", "is not an iso 8601", "value type", "not utf-8"),
        ("102", "Data type error"),
    ),
    (("unknown unit", "neither a known analyte", "is not one of"), ("103", "Table value not found")),
)


class Problem(NamedTuple):
    """One refusal to report: where (``location`` as the importer names it) and why."""

    location: str
    reason: str


def error_code(reason: str) -> tuple[str, str]:
    """The HL7 table 0357 code (and its name) of a refused record, from its reason.

    >>> error_code("value 'abc' is not a number"), error_code("unknown unit 'x' for WBC")
    (('102', 'Data type error'), ('103', 'Table value not found'))
    >>> error_code("Haemoglobin 125 g/dL is above the plausible limit 30 g/dL: check the unit")
    ('207', 'Application internal error')
    """
    lowered = reason.lower()
    for words, code in _REASON_CODES:
        if any(word in lowered for word in words):
            return code
    return INTERNAL_ERROR


def obx_sequence(segments: list[str], location: str) -> int | None:
    """Which OBX of the message (1 for the first, counted over every OBR) the importer's location
    ("..., OBR 2, OBX 1") names; None when it names none."""
    found = _OBR_OBX.search(location)
    if found is None:
        return None
    wanted_obr, wanted_obx = int(found.group(1)), int(found.group(2))
    obr = obx_in_obr = obx = 0
    for segment in segments:
        name = segment[:3]
        if name == "OBR":
            obr, obx_in_obr = obr + 1, 0
        elif name == "OBX":
            obx, obx_in_obr = obx + 1, obx_in_obr + 1
            if max(obr, 1) == wanted_obr and obx_in_obr == wanted_obx:
                return obx
    return None


def acknowledgement(
    header: Header | None,
    code: str,
    text: str,
    *,
    problems: Sequence[Problem] = (),
    error: tuple[str, str] | None = None,
    segments: Sequence[str] = (),
    control_id: str,
    now: datetime,
) -> str:
    """The ACK (segments joined by ``\\r``, no MLLP framing) answering the message of ``header``.

    ``header`` None: a message whose MSH could not be read; the ACK is then written in the default
    delimiters, version 2.5.1, with an empty MSA-2. ``error``: the table-0357 code each ERR carries (None:
    each refusal's own, `error_code`). ``segments``: the message's, to number the OBX an ERR names.
    """
    delimiters = header.delimiters if header is not None else _DEFAULT_DELIMITERS
    field, component = delimiters[0], delimiters[1]
    escape = _Escape(delimiters)
    msh = [
        "MSH",
        delimiters[1:],
        header.receiving_application if header else "",
        header.receiving_facility if header else "",
        header.sending_application if header else "",
        header.sending_facility if header else "",
        f"{now:%Y%m%d%H%M%S}{_offset(now)}",
        "",
        component.join(("ACK", _trigger(header), "ACK")) if _trigger(header) else "ACK",
        escape(control_id),
        (header.processing_id if header else "") or "P",
        (header.version if header else "") or "2.5.1",
    ]
    msa = ["MSA", code, escape(header.control_id if header else ""), escape(_cut(text, MSA_TEXT_LENGTH))]
    # MSH-1 is the field separator itself: MSH-2 follows it directly.
    lines = [f"MSH{field}{msh[1]}{field}" + field.join(msh[2:]), field.join(msa)]
    shown = list(problems[:MOST_ERRORS])
    received = list(segments)
    lines += [_err(problem, error, field, component, escape, received) for problem in shown]
    if len(problems) > len(shown):
        more = Problem("", f"{len(problems) - len(shown)} more refusals kept for review in the store")
        lines.append(_err(more, error or INTERNAL_ERROR, field, component, escape, received))
    return "\r".join(lines)


def refusal_summary(problems: Sequence[Problem], records: int) -> str:
    """MSA-3's words for a message some of whose records were refused."""
    if not problems:
        return "all results stored"
    first = problems[0].reason
    if records and len(problems) < records:
        return f"{len(problems)} of {records} records refused: {first}"
    return f"refused: {first}"


def _err(
    problem: Problem,
    error: tuple[str, str] | None,
    field: str,
    component: str,
    escape: _Escape,
    segments: list[str],
) -> str:
    """ERR: ERR-2 the OBX (its sequence in the message) when the location names one, ERR-3 the error code
    (``error``, else the reason's: `error_code`), ERR-4 severity E, ERR-8 the reason (80 characters)."""
    sequence = obx_sequence(segments, problem.location)
    where = component.join(("OBX", str(sequence))) if sequence is not None else ""
    number, name = error or error_code(problem.reason)
    code = component.join((number, name, "HL70357"))
    words = (
        problem.reason
        if where
        else (f"{problem.location}: {problem.reason}" if problem.location else problem.reason)
    )
    return field.join(["ERR", "", where, code, "E", "", "", "", escape(_cut(words, ERR_TEXT_LENGTH))])


class _Escape:
    """HL7 escape sequences (\\F\\, \\S\\, \\R\\, \\E\\, \\T\\) for the delimiters in a text, the text
    first made ASCII; line breaks become spaces (a segment ends at one)."""

    def __init__(self, delimiters: str) -> None:
        field, component, repetition, escape, subcomponent = (delimiters[n] for n in range(5))
        self.table = str.maketrans(
            {
                escape: f"{escape}E{escape}",
                field: f"{escape}F{escape}",
                component: f"{escape}S{escape}",
                repetition: f"{escape}R{escape}",
                subcomponent: f"{escape}T{escape}",
                "\r": " ",
                "\n": " ",
            }
        )

    def __call__(self, text: str) -> str:
        return _ascii(text).translate(self.table)


def _trigger(header: Header | None) -> str:
    """The ACK's trigger event: the message's own (R01 for ORU^R01), as v2.5.1 asks."""
    if header is None:
        return ""
    return header.kind.partition("^")[2]


def _offset(now: datetime) -> str:
    offset = now.utcoffset()
    if offset is None:
        return ""
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


# Characters of the importer's words (units, quotes) written in ASCII: an ACK is read by engines set to
# ASCII as well as UTF-8 (HL7 v2's default character set is ASCII when MSH-18 is empty).
_ASCII = str.maketrans(
    {
        "µ": "u",
        "μ": "u",
        "×": "x",
        "⁹": "^9",
        "¹": "^1",
        "²": "^2",
        "³": "^3",
        "–": "-",
        "—": "-",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "≥": ">=",
        "≤": "<=",
    }
)


def _ascii(text: str) -> str:
    """``text`` in ASCII: the importer's few typographic characters spelt out, any other shown as '?'."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")
