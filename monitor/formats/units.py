"""Unit normalisation: every spelling labs use, converted once to the canonical unit of its analyte.

Conversion factors are exact by unit definition (UCUM, Regenstrief Institute): 1 x10^9/L = 1 x10^3/uL =
1,000 /uL = 1,000 /mm3. Spellings are UCUM codes and the non-UCUM ones seen in HL7 v2 feeds
(docs/clinical-basis.md, Units and UCUM).
An unknown spelling is never guessed: it has no factor and the record is rejected with the unit named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Multiply a value in the spelled unit by the factor to get the canonical unit.
# Keys are compared after `unit_key` (white space removed, micro sign folded to "u", HL7 \S\ un-escaped,
# lower-cased). Spellings whose case carries meaning are in CASE_SENSITIVE instead.
COUNT_FACTORS: dict[str, float] = {
    # x10^9/L and its equivalents (the HL7 mCODE equivalent-unit value set, and feeds' spellings)
    "10*9/l": 1.0,
    "10^9/l": 1.0,
    "x10^9/l": 1.0,
    "x10e9/l": 1.0,
    "10e9/l": 1.0,
    "giga.l-1": 1.0,
    "/nl": 1.0,
    "10*3/ul": 1.0,
    "10^3/ul": 1.0,
    "x10^3/ul": 1.0,
    "x10e3/ul": 1.0,
    "10e3/ul": 1.0,
    "k/ul": 1.0,
    "thou/ul": 1.0,
    "thousand/ul": 1.0,
    "10*3/mm3": 1.0,
    "10^3/mm3": 1.0,
    "10*6/ml": 1.0,
    # per microlitre (1 mm3 = 1 uL)
    "/ul": 0.001,
    "cells/ul": 0.001,
    "{cells}/ul": 0.001,
    "/mm3": 0.001,
    "cells/mm3": 0.001,
    "/cumm": 0.001,
}
COUNT_CASE_SENSITIVE: dict[str, float] = {
    # "G/L" (giga per litre, European usage) is not "g/L" (grams per litre).
    "G/L": 1.0,
    "G/l": 1.0,
}
HGB_FACTORS: dict[str, float] = {
    "g/dl": 1.0,
    "gm/dl": 1.0,
    "gm%": 1.0,
    "g%": 1.0,
    "g/l": 0.1,
    # Exact by definition (1 mL = 0.01 dL). Real haemoglobin is never sent so (0.125 g/mL), but a feed that
    # mislabels g/dL as g/mL (the NIST LRI sample) is then refused as implausible, naming both magnitudes.
    "g/ml": 100.0,
    # g/dL x 0.6206 = mmol/L (monomer), as CTCAE v5.0 prints 10.0 g/dL = 6.2 mmol/L
    "mmol/l": 1.0 / 0.6206,
}
PERCENT_FACTORS: dict[str, float] = {"%": 1.0, "percent": 1.0}
# Temperatures: degrees Celsius as UCUM ("Cel") and as feeds write them, and degrees Fahrenheit, which need
# an offset as well as a factor: °C = (°F - 32) x 5/9 (exact by definition of the Fahrenheit scale).
FAHRENHEIT = ("[degf]", "degf", "°f", "degreesf")
TEMPERATURE_FACTORS: dict[str, float] = {
    **dict.fromkeys(("cel", "degc", "°c", "degreesc", "[degc]"), 1.0),
    **dict.fromkeys(FAHRENHEIT, 5.0 / 9.0),
}
# Added after the factor: -32 x 5/9 for Fahrenheit, 0 for every other unit.
TEMPERATURE_OFFSETS: dict[str, float] = dict.fromkeys(FAHRENHEIT, -32.0 * 5.0 / 9.0)

FACTORS_BY_KIND: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "count": (COUNT_FACTORS, COUNT_CASE_SENSITIVE),
    "hgb": (HGB_FACTORS, {}),
    "percent": (PERCENT_FACTORS, {}),
    "temperature": (TEMPERATURE_FACTORS, {}),
}

# Values are rounded after conversion so that a boundary such as 1500 /uL compares as exactly 1.5.
CANONICAL_DECIMALS = 6


def unit_key(units: pd.Series) -> pd.Series:
    """The lookup form of unit spellings: no spaces, micro sign as 'u', HL7 escapes undone.

    >>> unit_key(pd.Series(["K/µL", "10\\\\S\\\\9/L", " x10E3 / uL"])).tolist()
    ['k/ul', '10^9/l', 'x10e3/ul']
    """
    cleaned = (
        units.fillna("")
        .astype(str)
        .str.replace("\\S\\", "^", regex=False)
        .str.replace(r"\s+", "", regex=True)
        .str.replace("µ", "u", regex=False)
        .str.replace("μ", "u", regex=False)
    )
    return cleaned.str.lower()


def conversion_factors(units: pd.Series, kinds: pd.Series) -> pd.Series:
    """The factor to the canonical unit for each (unit, analyte kind); NaN where the unit is unknown.

    >>> conversion_factors(pd.Series(["cells/uL", "g/L", "G/L", "g/L"]),
    ...                    pd.Series(["count", "hgb", "count", "count"])).tolist()
    [0.001, 0.1, 1.0, nan]
    """
    keys = unit_key(units)
    exact = units.fillna("").astype(str).str.strip()
    factors = pd.Series(np.nan, index=units.index, dtype="float64")
    for kind, (table, case_sensitive) in FACTORS_BY_KIND.items():
        mine = kinds == kind
        factors = factors.mask(mine, keys.map(table))
        if case_sensitive:
            factors = factors.mask(mine & factors.isna(), exact.map(case_sensitive))
    return factors.astype("float64")


def conversion_offsets(units: pd.Series, kinds: pd.Series) -> pd.Series:
    """What is added after the factor for each (unit, analyte kind): only Fahrenheit has an offset.

    >>> kinds = pd.Series(["temperature", "temperature", "count"])
    >>> conversion_offsets(pd.Series(["[degF]", "Cel", "/uL"]), kinds).round(4).tolist()
    [-17.7778, 0.0, 0.0]
    """
    offsets = unit_key(units).map(TEMPERATURE_OFFSETS).fillna(0.0).astype("float64")
    return offsets.where(kinds.eq("temperature").to_numpy(dtype=bool), 0.0)


def to_canonical(values: pd.Series, factors: pd.Series, offsets: pd.Series | float = 0.0) -> pd.Series:
    """Values multiplied by their factors (plus the offset of an interval scale such as °F), rounded to
    remove binary noise (e.g. 1500 x 0.001 -> 1.5; 100.4 °F -> 38.0 °C)."""
    return (values * factors + offsets).round(CANONICAL_DECIMALS)


# Decimals a value in the canonical unit is printed with when the lab's own text is not at hand: labs print
# counts in 10^9/L to at most 3 decimals (a count per uL converts exactly into 3) and haemoglobin in g/dL to
# 1, so these never cut a printed digit, and a converted value (6.2 mmol/L is 9.990332 g/dL) prints as
# 9.99, never "9.99033".
PRINTED_DECIMALS = {"hgb": 2, "temp": 2}
COUNT_PRINTED_DECIMALS = 3
ONE_DECIMAL_AT_LEAST = ("temp",)


def printed(values: pd.Series, analytes: pd.Series) -> pd.Series:
    """Canonical values as text, rounded to ``PRINTED_DECIMALS`` for their analyte, without trailing zeros.

    >>> printed(pd.Series([9.990332, 2.0, 0.05, 74.999]), pd.Series(["hgb", "wbc", "anc", "plt"])).tolist()
    ['9.99', '2', '0.05', '74.999']
    >>> printed(pd.Series([38.0, 37.8333]), pd.Series(["temp", "temp"])).tolist()
    ['38.0', '37.83']
    """
    decimals = analytes.map(PRINTED_DECIMALS).fillna(COUNT_PRINTED_DECIMALS).to_numpy(dtype="float64")
    scale = 10.0**decimals
    rounded = np.round(values.to_numpy(dtype="float64") * scale) / scale
    text = (
        pd.Series(rounded, index=values.index, dtype="float64")
        .map("{:g}".format, na_action="ignore")
        .astype("str")  # text even when every value is missing (or there is none)
    )
    # A temperature is read with its tenths, as thermometers print it: 38.0, never "38".
    has_point = text.str.contains(".", regex=False, na=True).to_numpy(dtype=bool)
    whole = analytes.isin(ONE_DECIMAL_AT_LEAST).to_numpy(dtype=bool) & ~has_point
    return text.where(~whole, text + ".0")
