"""Reference ranges as labs write them (HL7 OBX-7, report text), split into low and high limits."""

from __future__ import annotations

import pandas as pd

_NUMBER = r"\d+(?:[.,]\d+)?"
_PATTERNS = (
    # "4.0-11.0", "4.0 - 11.0", "4300 to 10800", "4.0–11.0"
    rf"^\s*(?P<low>{_NUMBER})\s*(?:-|–|—|to|TO)\s*(?P<high>{_NUMBER})\s*$",
    # "<0.5", "<= 0.5", "≤0.5": an upper limit only
    rf"^\s*(?:<=?|≤)\s*(?P<high>{_NUMBER})\s*$",
    # ">150", ">= 150", "≥150": a lower limit only
    rf"^\s*(?:>=?|≥)\s*(?P<low>{_NUMBER})\s*$",
)


def split_range(text: pd.Series) -> pd.DataFrame:
    """``low`` and ``high`` limits as text ('' where absent), and ``understood`` per range string.

    An empty range is understood (there is none); one in a form not listed above is not, and its limits
    stay empty: the range is then unknown, never guessed.

    >>> split_range(pd.Series(["4.0-11.0", "4300 to 10800", "<0.5", ">150", "", "normal"])).values.tolist()
    [['4.0', '11.0', True], ['4300', '10800', True], ['', '0.5', True], ['150', '', True], ['', '', True], \
['', '', False]]
    """
    text = text.fillna("").astype(str)
    low = pd.Series("", index=text.index, dtype="object")
    high = pd.Series("", index=text.index, dtype="object")
    understood = text.str.strip() == ""
    for pattern in _PATTERNS:
        found = text.str.extract(pattern)
        hit = found.notna().any(axis=1) & ~understood
        if "low" in found:
            low = low.mask(hit, found["low"].fillna(""))
        if "high" in found:
            high = high.mask(hit, found["high"].fillna(""))
        understood |= hit
    # A decimal comma (e.g. "4,0-11,0") is a decimal point written the European way.
    return pd.DataFrame(
        {
            "low": low.str.replace(",", ".", regex=False),
            "high": high.str.replace(",", ".", regex=False),
            "understood": understood,
        }
    )
