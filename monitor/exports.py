"""Exports that are safe to open in a spreadsheet."""

from __future__ import annotations

import pandas as pd

# A cell starting with one of these is read as a formula by spreadsheet programs (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a formula: such cells get a leading apostrophe.

    Numbers stay numbers (a negative number is not text).

    >>> spreadsheet_safe(pd.DataFrame({"a": ["=HYPERLINK(1)", "ok", "-2+3"], "n": [-1.5, 2, 3]}))
                   a    n
    0  '=HYPERLINK(1) -1.5
    1             ok  2.0
    2          '-2+3  3.0
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_STARTS).fillna(False)
        if risky.any():
            out[column] = values.where(~risky, "'" + text)
    return out
