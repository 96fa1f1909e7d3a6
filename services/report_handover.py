"""The team handover list as a PDF, drawn line by line with ReportLab's canvas.

A handover runs to hundreds of rows: laid out by WeasyPrint (as the patient summary is) a row cost about
15 ms, 8.4 s for 500 patients; drawn here, with each cell's text wrapped by the font's own widths, 500 rows
take well under a second (docs/benchmarks.md, Printed reports). The text is real text in the DejaVu fonts
(selectable, searchable); a name in a right-to-left script is drawn in its visual order (python-bidi, with
Arabic letters joined by arabic-reshaper first). Every page repeats the column headings, the synthetic
banner where the list holds demo patients, and the footer with the disclaimer and "Page x of y".
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FontMissing", "HandoverRow", "handover_pdf"]

# Debian's fonts-dejavu-core (``make printing``); found through fontconfig where they live elsewhere.
FONT_FILES = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSans-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
}
FONT_PATTERNS = {"DejaVuSans": "DejaVu Sans", "DejaVuSans-Bold": "DejaVu Sans:bold"}
SIZE, LEADING, PAD = 7.0, 8.4, 2.5
MARGIN, TOP_SPACE, FOOT_SPACE = 36.0, 30.0, 34.0
# Column widths as shares of the line.
HEADINGS = ("#, tier", "Patient", "Latest counts", "Last CBC, cycle, due", "Flags", "Why in this place")
SHARES = (0.05, 0.15, 0.11, 0.14, 0.275, 0.275)
RED, GREY, RULE = (0.63, 0.0, 0.0), (0.27, 0.27, 0.27), (0.8, 0.8, 0.8)
_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")

# One row: the text of each column, lines separated by "\n"; the name (the second column's first line) is
# the one text that may run right to left.
HandoverRow = tuple[str, str, str, str, str, str]


def handover_pdf(
    rows: Sequence[HandoverRow],
    *,
    title: str,
    subtitle: str,
    legend: str,
    footer: str,
    disclaimer: str,
    banner: str | None,
    paper: str,
) -> tuple[bytes, int]:
    """The list drawn on landscape ``paper`` ("A4" or "letter"); returns the PDF's bytes and its pages."""
    from reportlab.lib.pagesizes import A4, landscape, letter
    from reportlab.pdfgen import canvas

    _register_fonts()
    width, height = landscape(A4 if paper.lower() == "a4" else letter)
    columns = [share * (width - 2 * MARGIN) for share in SHARES]
    out = io.BytesIO()
    pages: list[dict[str, Any]] = []

    class Numbered(canvas.Canvas):  # type: ignore[misc]
        """A canvas that draws each page's footer once the number of pages is known."""

        def showPage(self) -> None:  # noqa: N802 - ReportLab's name
            pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for number, state in enumerate(pages, start=1):
                self.__dict__.update(state)
                _footer(self, width, footer, disclaimer, f"Page {number} of {len(pages)}")
                canvas.Canvas.showPage(self)
            canvas.Canvas.save(self)

    page = Numbered(out, pagesize=(width, height), pageCompression=1)
    page.setTitle(title)
    page.setAuthor("Leukopenia monitor")

    def start(first: bool) -> float:
        y = height - MARGIN + 10
        if banner:
            page.setFillColorRGB(*RED)
            page.rect(width / 2 - 170, y - 4, 340, 15, stroke=0, fill=1)
            page.setFillColorRGB(1, 1, 1)
            page.setFont("DejaVuSans-Bold", 8.5)
            page.drawCentredString(width / 2, y, banner)
            page.setFillColorRGB(0, 0, 0)
        y -= TOP_SPACE
        if first:
            page.setFont("DejaVuSans-Bold", 14)
            for line in _wrapped(title, "DejaVuSans-Bold", 14, width - 2 * MARGIN):
                page.drawString(MARGIN, y, line)
                y -= 16
            page.setFont("DejaVuSans", 7.5)
            for line in _wrapped(subtitle, "DejaVuSans", 7.5, width - 2 * MARGIN):
                page.drawString(MARGIN, y, line)
                y -= 10
            y -= 4
        return _headings(page, columns, y)

    y = start(first=True)
    for row in rows:
        cells = [
            _cell_lines(text, column, rtl=(number == 1))
            for number, (text, column) in enumerate(zip(row, columns, strict=True))
        ]
        needed = max(len(lines) for lines in cells) * LEADING + 2 * PAD
        if y - needed < FOOT_SPACE + MARGIN / 2:
            page.showPage()
            y = start(first=False)
        x = MARGIN
        page.setFont("DejaVuSans", SIZE)
        for lines, column in zip(cells, columns, strict=True):
            for k, line in enumerate(lines):
                page.drawString(x + PAD, y - PAD - SIZE - k * LEADING, line)
            x += column
        y -= needed
        page.setStrokeColorRGB(*RULE)
        page.setLineWidth(0.4)
        page.line(MARGIN, y, width - MARGIN, y)
    if not rows:
        page.setFont("DejaVuSans", 8)
        page.drawString(MARGIN, y - 12, "No patient in this team.")
        y -= 16
    page.setFillColorRGB(*GREY)
    legend_lines = _wrapped(legend, "DejaVuSans", 6.5, width - 2 * MARGIN)
    if y - 8 * len(legend_lines) - 6 < FOOT_SPACE + MARGIN / 2:
        page.showPage()
        y = start(first=False)
    page.setFont("DejaVuSans", 6.5)
    for line in legend_lines:
        y -= 8
        page.drawString(MARGIN, y - 4, line)
    page.showPage()
    page.save()
    return out.getvalue(), len(pages)


def _headings(page: Any, columns: list[float], y: float) -> float:
    page.setFillColorRGB(0.93, 0.95, 0.96)
    page.rect(MARGIN, y - LEADING - 2 * PAD, sum(columns), LEADING + 2 * PAD, stroke=0, fill=1)
    page.setFillColorRGB(0, 0, 0)
    page.setFont("DejaVuSans-Bold", SIZE)
    x = MARGIN
    for heading, column in zip(HEADINGS, columns, strict=True):
        page.drawString(x + PAD, y - PAD - SIZE, heading)
        x += column
    return y - LEADING - 2 * PAD


def _footer(page: Any, width: float, footer: str, disclaimer: str, number: str) -> None:
    page.setFillColorRGB(*GREY)
    page.setFont("DejaVuSans", 6.5)
    room = width - 2 * MARGIN - 60
    lines = [*_wrapped(footer, "DejaVuSans", 6.5, room)[:2], *_wrapped(disclaimer, "DejaVuSans", 6.5, room)]
    for k, line in enumerate(lines):
        page.drawString(MARGIN, MARGIN - 4 - k * 8, line)
    page.setFont("DejaVuSans", 7)
    page.drawRightString(width - MARGIN, MARGIN - 4, number)
    page.setFillColorRGB(0, 0, 0)


def _cell_lines(text: str, width: float, *, rtl: bool) -> list[str]:
    """A cell's text wrapped to its column; the first line of a right-to-left cell in visual order, and
    said to be unprintable where the font has no glyph for its letters (a CJK or Indic name: the summary,
    laid out by Pango with the system's fonts, prints it)."""
    lines: list[str] = []
    for number, part in enumerate(text.split("\n")):
        if rtl and number == 0 and not _drawable(part):
            part = "(name in a script this list's font lacks: see the patient's summary)"
        wrapped = _wrapped(part, "DejaVuSans", SIZE, width - 2 * PAD)
        if rtl and number == 0:
            wrapped = [_visual(line) for line in wrapped]
        lines.extend(wrapped)
    return lines or [""]


def _drawable(text: str) -> bool:
    """Whether the regular font has a glyph for every character of ``text``."""
    from reportlab.pdfbase import pdfmetrics

    glyphs = pdfmetrics.getFont("DejaVuSans").face.charToGlyph
    return all(ord(char) in glyphs or char.isspace() for char in text)


def _visual(line: str) -> str:
    """A line holding right-to-left letters in the order it is drawn (left to right)."""
    if not _RIGHT_TO_LEFT.search(line):
        return line
    from bidi import get_display

    if _ARABIC.search(line):
        import arabic_reshaper

        line = arabic_reshaper.reshape(line)
    return str(get_display(line))


def _wrapped(text: str, font: str, size: float, width: float) -> list[str]:
    """``text`` in lines no wider than ``width``: broken at spaces, and a word wider than the line (a long
    identifier) broken where it fills it."""
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines: list[str] = []
    for line in simpleSplit(text, font, size, width) or [""]:
        while stringWidth(line, font, size) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and stringWidth(line[:cut], font, size) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    return lines


@cache
def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for name, path in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, _font_file(name, path)))


def _font_file(name: str, path: str) -> str:
    if Path(path).is_file():
        return path
    try:
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", FONT_PATTERNS[name]], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found and Path(found).is_file():
        return found
    raise FontMissing(
        f"no {FONT_PATTERNS[name]} font: apt-get install fonts-dejavu-core (or `make printing`)"
    )


class FontMissing(RuntimeError):
    """A font the handover draws with is not installed."""
