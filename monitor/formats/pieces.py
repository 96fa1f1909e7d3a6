"""A large file in pieces that each parse on their own, so that memory stays bounded for any file size.

A piece of a CSV file is the header and whole rows, cut between two panels (derived counts need every row
of a panel) and never inside a quoted field; a piece of an HL7 file is whole messages. Each piece comes
with its offset (data lines or messages before it), from which the parsers number lines and messages as
the file's.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from monitor.formats.csv_long import UnusableFile, header_names
from monitor.formats.derive import PANEL

# Bytes decoded at a time.
BLOCK_BYTES = 1 << 20
# Characters of text parsed at a time: about 200,000 canonical CSV results.
PIECE_CHARS = 16_000_000
# A piece that cannot be cut by this many pieces' length (one line or message this long, or a quote that
# never closes) makes the file unusable rather than memory grow with it.
LONGEST_PIECES = 4
_NEWLINE = re.compile("\n")
_SEGMENT_START = re.compile(r"(?:^|[\r\n\x0b\x1c])MSH")


def decoded(binary: BinaryIO) -> Iterator[str]:
    """The text of a file read in blocks: UTF-8 (with or without a byte-order mark), or UTF-16 when it
    starts with one.

    Raises
    ------
    UnusableFile
        At the first byte that cannot be decoded, or a NUL character (binary, not text).
    """
    start = binary.read(3)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding, name, block, consumed = "utf-16", "UTF-16", start, 0
    elif start == codecs.BOM_UTF8:
        encoding, name, block, consumed = "utf-8", "UTF-8", b"", len(start)  # the mark is not text
    else:
        encoding, name, block, consumed = "utf-8", "UTF-8", start, 0
    decoder = codecs.getincrementaldecoder(encoding)()
    characters = 0
    while True:
        block += binary.read(BLOCK_BYTES)
        final = len(block) < BLOCK_BYTES
        # The decoder still holds the first bytes of a character cut by the previous block: positions in
        # an error count from them.
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(block, final=final)
        except UnicodeDecodeError as error:
            at = consumed - pending + error.start
            raise UnusableFile(f"not {name} text (byte {at} cannot be decoded)") from None
        if "\x00" in text:
            at = characters + text.index("\x00")
            raise UnusableFile(f"contains a NUL byte at character {at}: binary, not text")
        consumed, characters = consumed + len(block), characters + len(text)
        if text:
            yield text
        if final:
            return
        block = b""


def csv_pieces(text: Iterable[str], size: int | None = None) -> Iterator[tuple[str, int]]:
    """(piece, lines before it) for a CSV file's text: each piece is the header and whole rows, cut at a
    line where the panel changes and an even number of quotes lies before it.

    Raises
    ------
    UnusableFile
        When no such cut is found within ``LONGEST_PIECES`` pieces' length.
    """
    size = size or PIECE_CHARS
    blocks = iter(text)
    buffer = ""
    for block in blocks:
        buffer += block
        if "\n" in buffer:
            break
        _refuse_uncut(buffer, size, "line 1 (the header)")
    header, newline, buffer = buffer.partition("\n")
    header += newline
    names = [name.lower() for name in header_names(header)]
    key_at = [names.index(field) for field in PANEL if field in names]  # those of a panel's key present
    offset = 0
    for block in itertools.chain([""], blocks):
        buffer += block
        while len(buffer) >= size:
            cut = _panel_boundary(buffer, size, key_at)
            if cut is None:
                _refuse_uncut(buffer, size, f"line {offset + 2}")
                break
            piece, buffer = buffer[:cut], buffer[cut:]
            yield header + piece, offset
            offset += piece.count("\n")
    if buffer.strip() or offset == 0:
        yield header + buffer, offset


def _panel_boundary(buffer: str, size: int, key_at: list[int]) -> int | None:
    """Where to cut ``buffer`` at about ``size`` characters: after a whole record, before the first record
    of a panel; None to read on (no whole record yet)."""
    within = buffer.rfind("\n", 0, size) + 1 or buffer.find("\n") + 1
    ends = _record_ends(buffer[:within])
    if not ends:
        return None
    # Walk back over the records of the last panel (rows of a panel are together in a lab's export).
    bounds = [0, *ends]
    last = _key(buffer[bounds[-2] : bounds[-1]], key_at)
    for number in range(len(bounds) - 2, 0, -1):
        if _key(buffer[bounds[number - 1] : bounds[number]], key_at) != last:
            return bounds[number]
    return ends[-1]  # one panel fills the piece: cut after its last whole record


def _record_ends(region: str) -> list[int]:
    """Offsets just past each newline of ``region`` that ends a record (not inside a quoted field)."""
    if '"' not in region:
        return [match.end() for match in _NEWLINE.finditer(region)]
    ends, inside, start = [], False, 0
    while (newline := region.find("\n", start)) >= 0:
        inside ^= region.count('"', start, newline) % 2 == 1
        if not inside:
            ends.append(newline + 1)
        start = newline + 1
    return ends


def _key(record: str, key_at: list[int]) -> tuple[str, ...]:
    line = record.rstrip("\r\n")
    fields = next(csv.reader(io.StringIO(line)), []) if '"' in line else line.split(",")
    return tuple(fields[i] if i < len(fields) else "" for i in key_at)


def _refuse_uncut(buffer: str, size: int, where: str) -> None:
    if len(buffer) > LONGEST_PIECES * size:
        raise UnusableFile(
            f"{where} onwards: no end of a record within {LONGEST_PIECES * size / 1e6:,.0f} million "
            "characters (a line that long, or a quote that never closes); refused to keep memory bounded"
        )


def hl7_pieces(text: Iterable[str], size: int | None = None) -> Iterator[tuple[str, int]]:
    """(piece, messages before it) for an HL7 v2 file's text: each piece holds whole messages.

    Raises
    ------
    UnusableFile
        When one message is longer than ``LONGEST_PIECES`` pieces.
    """
    size = size or PIECE_CHARS
    buffer = ""
    offset = 0
    for block in text:
        buffer += block
        while len(buffer) >= size:
            # Before the first message that begins past ``size``; else before the last one begun (it may
            # not be whole yet).
            after = _SEGMENT_START.search(buffer, size)
            if after is not None:
                cut = after.start()
            else:
                starts = [match.start() for match in _SEGMENT_START.finditer(buffer, 1, size)]
                cut = starts[-1] if starts else 0
            if cut <= 0:
                _refuse_uncut(buffer, size, f"message {offset + 1}")
                break  # one message so far: read on
            piece, buffer = buffer[:cut], buffer[cut:]
            yield piece, offset
            offset += len(_SEGMENT_START.findall(piece))
    if buffer.strip() or offset == 0:
        yield buffer, offset
