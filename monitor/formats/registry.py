"""The formats read, one entry each, in the order they are recognised: a new format is one module and one
line in `FORMATS`.

An entry says how a file of the format is recognised from its beginning, how a text (or a piece of a large
file) is parsed, how a large file is cut into pieces so that memory stays bounded (or that it is read
whole), in which zone times written without an offset are read, and whether the format brings results or
clinical events. Detection, parsing, cutting and the zone rule all read it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol

from monitor.formats import csv_long, csv_wide, events, fhir, hl7v2
from monitor.formats.csv_long import UnusableFile
from monitor.formats.parsed import Parsed
from monitor.formats.pieces import csv_pieces, decoded, hl7_pieces

# Text a format is detected from (and a column map applied to: the header is in it).
HEAD_CHARS = 1 << 20
# Formats read whole (a JSON document; NDJSON, whose Observations may name a Patient on any line; events):
# beyond this size they are refused, since their memory grows with the file.
WHOLE_FILE_LIMIT = 64_000_000


class Parser(Protocol):
    """Parses a text: a whole file, or one piece of it with ``before`` lines or messages ahead of it."""

    def __call__(self, text: str, zone: str, before: int) -> Parsed: ...


Cutter = Callable[[Iterable[str]], Iterator[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class Format:
    """One format the importer reads.

    Attributes
    ----------
    name
        What the format is called (``--format``, the stored import's format).
    title
        How messages name it.
    looks_like
        True when a file's beginning is of this format.
    parse
        Reads a text into raw records; ``zone`` reads times without an offset ('' refuses them).
    cut
        Cuts a file's text, read in blocks, into (piece, lines or messages before it); None: read whole.
    zone
        ``site``: times without an offset are read in the zone named, else the site's (a feed's time is the
        sending site's local time; events are written by the care team). ``named``: only in a zone named;
        without one they are refused (the format asks for an offset).
    yields
        Whether the format brings results (and observations outside the CBC) or clinical events.
    """

    name: str
    title: str
    looks_like: Callable[[str], bool]
    parse: Parser
    cut: Cutter | None = None
    zone: Literal["site", "named"] = "site"
    yields: Literal["results", "events"] = "results"

    def reading_zone(self, named: str | None, *, site: str) -> str:
        """The zone a file's times without an offset are read in ('' when they are refused instead).

        >>> [format_named(name).reading_zone(None, site="Europe/Paris") for name in ("csv", "hl7")]
        ['', 'Europe/Paris']
        """
        if named:
            return named
        return site if self.zone == "site" else ""

    def pieces(self, text: Iterable[str]) -> Iterable[tuple[str, int]]:
        """(piece, lines or messages before it): cut when the format is, else the whole text at once."""
        return self.cut(text) if self.cut is not None else [("".join(text), 0)]

    def refuse_too_large(self, size: int) -> None:
        """Refuse a file read whole once it is larger than `WHOLE_FILE_LIMIT` bytes."""
        if self.cut is None and size > WHOLE_FILE_LIMIT:
            raise UnusableFile(
                f"{size / 1e6:,.0f} MB: a {self.title} file is read whole, and files of this format over "
                f"{WHOLE_FILE_LIMIT / 1e6:,.0f} MB are refused to keep memory bounded; split the export into "
                "smaller files"
            )


# In the order they are recognised: the first whose `looks_like` holds is the file's.
FORMATS: tuple[Format, ...] = (
    Format("hl7", "HL7 v2", hl7v2.looks_like_hl7, hl7v2.parse_piece, cut=hl7_pieces),
    Format("fhir", "FHIR", fhir.looks_like_fhir, fhir.parse_piece),
    Format(
        "csv",
        "canonical CSV",
        csv_long.looks_like_canonical_csv,
        csv_long.parse_piece,
        cut=csv_pieces,
        zone="named",
    ),
    Format("events", "clinical events", events.looks_like_events_csv, events.parse_piece, yields="events"),
    Format(
        "wide", "wide CSV", csv_wide.looks_like_wide_csv, csv_wide.parse_piece, cut=csv_pieces, zone="named"
    ),
)
FORMAT_NAMES = tuple(known.name for known in FORMATS)


def format_named(name: str) -> Format:
    """The format called ``name``.

    Raises
    ------
    KeyError
        When no format is called that.
    """
    for known in FORMATS:
        if known.name == name:
            return known
    raise KeyError(f"no format {name!r} (one of {', '.join(FORMAT_NAMES)})")


def detect_format(text: str) -> Format:
    """The format of a file's content, recognised from its beginning.

    >>> header = "patient_id,collected_at,analyte,value,unit"
    >>> detect_format("MSH|^~\\\\&|LAB").name, detect_format(header).name
    ('hl7', 'csv')

    Raises
    ------
    UnusableFile
        When the text is empty or of no format read here (with what to do about it).
    """
    if not text.strip():
        raise UnusableFile("the file is empty")
    for known in FORMATS:
        if known.looks_like(text):
            return known
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    nearest = _nearest_csv(header)
    if nearest is not None:
        raise UnusableFile(nearest)
    if header.count(";") >= 2 and "," not in header:
        raise UnusableFile(
            "the first line is separated by semicolons: the CSV formats read here are comma-separated "
            "(export with commas as separators and a point as the decimal mark)"
        )
    raise UnusableFile(
        "not a recognised format (HL7 v2, FHIR JSON/NDJSON, the canonical or wide CSV, or an events CSV); "
        "name the format (--format, or the Import page's Format), or rename a lab export's columns "
        "(--map, or Rename CSV columns)"
    )


def _nearest_csv(header: str) -> str | None:
    """What a CSV header lacks to be the canonical or events CSV it mostly names (more than half of that
    format's required columns), as that format's parser says it; None when it names neither.

    >>> _nearest_csv("patient_id,collected_at,analyte,value").split(" (")[0]
    'the header lacks unit'
    >>> _nearest_csv("MRN,Drawn,Test,Result") is None
    True
    """
    names = {name.strip().lower() for name in header.split(",")}
    for required, message in (
        (csv_long.REQUIRED, "the header lacks {} (expected " + ",".join(csv_long.HEADER) + ")"),
        (events.REQUIRED, "the events header lacks {}"),
    ):
        missing = [name for name in required if name not in names]
        if missing and len(missing) < len(required) / 2:
            return message.format(", ".join(missing))
    return None


def read_text(
    binary: BinaryIO, named: str | None, column_map: Mapping[str, str]
) -> tuple[Format, Iterator[str]]:
    """A file's format (``named``, else detected from its beginning) and its text, read in blocks, with
    the header's columns renamed by ``column_map`` first."""
    blocks = decoded(binary)
    head = ""
    for block in blocks:
        head += block
        if len(head) >= HEAD_CHARS:
            break
    head = csv_wide.rename_columns(head, dict(column_map))
    found = format_named(named) if named else detect_format(head)
    return found, itertools.chain([head], blocks)
