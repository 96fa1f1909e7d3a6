"""Text from a feed, a form or the store, made safe to show: as plain text in Streamlit's markdown, and in
plotly's hover and labels (which render a subset of HTML)."""

from __future__ import annotations

import html
import re

import pandas as pd

# Characters Streamlit's markdown gives a meaning: emphasis, code, links and images, colour and icon
# directives (":red[...]", ":material/...:"), HTML, LaTeX ("$...$"), strike-through, headings, tables,
# entities. Each is escaped with a backslash, which CommonMark renders as the character itself.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#!|:$~&])")
# A line that starts like a list item ("- x", "1. x", "+ x") or a quote is a block in markdown.
_BLOCK_START = re.compile(r"^(\s*)(?:([-+>])|(\d+)([.)]))")


def plain(value: object) -> str:
    """``value`` as one line of markdown that reads exactly as the text it holds.

    >>> plain("![x](http://evil.example/p.png) :red[STOP] $x$")
    '\\\\!\\\\[x\\\\](http\\\\://evil.example/p.png) \\\\:red\\\\[STOP\\\\] \\\\$x\\\\$'
    >>> plain("- item")
    '\\\\- item'
    >>> plain("10.0.4.12:2575")  # an ordered list's number keeps its digits: the delimiter is escaped
    '10\\\\.0.4.12\\\\:2575'
    >>> plain(None)
    ''
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = " ".join(str(value).split())  # one line: no headings, lists or tables made of line breaks
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    return _BLOCK_START.sub(_escaped_block_start, text)


def _escaped_block_start(found: re.Match[str]) -> str:
    """A list marker or quote at the start escaped: "\\-", "\\>", or "1\\." (CommonMark escapes only
    punctuation: a backslash before a digit would show)."""
    space, mark, number, delimiter = found.groups()
    return space + ("\\" + mark if mark else number + "\\" + delimiter)


def truth(value: object) -> bool | None:
    """A yes/no value read from a frame as Python's ``True``/``False``, or None when it is missing.

    A frame hands back numpy booleans (``np.True_ is True`` is false), or ``pd.NA`` in a nullable column,
    so a page that tests ``value is True`` would show neither branch.

    >>> import numpy as np
    >>> truth(np.True_), truth(np.False_), truth(pd.NA), truth(None), truth(float("nan")), truth(True)
    (True, False, None, None, None, True)
    """
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return bool(value)


def plain_html(value: object) -> str:
    """``value`` as text for plotly's labels and hover (``<b>``, ``<a href>`` and entities shown as typed)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def plain_html_series(values: pd.Series) -> pd.Series:
    """``plain_html`` of each value (missing stay missing)."""
    return values.map(plain_html, na_action="ignore")
