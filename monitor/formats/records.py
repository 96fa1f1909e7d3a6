"""Turn raw result records (text, as a file or feed carried them) into canonical results, or reasons.

Every parser produces the same *raw* frame, all text (``monitor.formats.parsed.RAW_COLUMNS``), and
`normalise_results` validates and converts it in one vectorised pass. A record that cannot be trusted
is rejected with a reason naming the offending field and value; nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from monitor.analytes import ANALYTES, LOINC
from monitor.formats.parsed import RAW_COLUMNS
from monitor.formats.units import conversion_factors, conversion_offsets, to_canonical
from monitor.timestamps import ISO_WITH_OFFSET, OUTSIDE_YEARS, implausible, naive_iso

RESULT_COLUMNS = (
    "patient_id",
    "assigning_authority",
    "collected_at",
    "analyte",
    "loinc",
    "value_raw",
    "unit_raw",
    "value",
    "comparator",
    "unit",
    "ref_low",
    "ref_high",
    "ref_raw",
    "abnormal_flag",
    "status",
    "derived",
    "lab",
    "accession",
    "location",
    "raw_text",
    "reported_at",
)
REJECT_COLUMNS = ("location", "raw_text", "reason")

UNSPECIFIED_LAB = "unspecified"

# Status spellings -> stored status (HL7 v2 table 0085 letters and FHIR codes; docs/clinical-basis.md,
# Result status).
STATUS_ALIASES: dict[str, str] = {
    "": "final",
    "final": "final",
    "f": "final",
    "preliminary": "preliminary",
    "p": "preliminary",
    "corrected": "corrected",
    "amended": "corrected",
    "c": "corrected",
    "cancelled": "cancelled",
    "x": "cancelled",
    "a": "corrected",
    "s": "preliminary",  # partial results
    "r": "preliminary",  # entered, not verified
    "entered-in-error": "entered-in-error",
    "w": "entered-in-error",
    "d": "entered-in-error",
}
# Kept, but no longer a result: a withdrawn record need carry no value or unit.
WITHDRAWN = ("cancelled", "entered-in-error")


# How far after the import a collection time may be before it is refused as in the future: clocks of the
# lab and of this server that disagree by minutes are not an error; a date in the next year is
# (docs/clinical-basis.md, Plausible collection times).
FUTURE_TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Normalised:
    """Canonical results ready to store, and the records refused with their reasons."""

    results: pd.DataFrame
    rejected: pd.DataFrame


PLAUSIBILITY = (
    "{{label}} {{value}} {{unit}} is {{converted}} {{canonical}} after conversion, {side} the plausible "
    "limit {limit} {{canonical}}: check the unit"
)
# The same refusal for a value the conversion left as it was (sent in the canonical unit or one equal to
# it): saying "38.6 Cel is 38.6 Cel after conversion" would only repeat the number.
PLAUSIBILITY_AS_SENT = (
    "{{label}} {{value}} {{unit}} is {side} the plausible limit {limit} {{canonical}}: check the unit"
)
# How a canonical unit reads in a message: UCUM's "Cel" is printed as people write it.
UNIT_SHOWN = {"Cel": "°C"}


def _first_reason(
    fields: Callable[[pd.Index], pd.DataFrame], checks: list[tuple[pd.Series, str]], index: pd.Index
) -> pd.Series:
    """For each row, the message of the first check that fails, filled from ``fields``; NA if none.

    Checks are in priority order. Messages are built only for the rows they apply to, so a clean file
    of millions of rows costs one boolean mask per check.
    """
    reason = pd.Series(pd.NA, index=index, dtype="object")
    for mask, template in checks:
        failing = mask.fillna(False).astype(bool) & reason.isna()
        if failing.any():
            reason[failing] = _fill(template, fields(index[failing.to_numpy()]))
    return reason


def _fill(template: str, fields: pd.DataFrame) -> pd.Series:
    """``template`` with each ``{column}`` replaced by that row's text, vectorised over the rows."""
    pieces = re.split(r"\{(\w+)\}", template)
    message = pd.Series("", index=fields.index, dtype="object")
    for position, piece in enumerate(pieces):
        message = message + (fields[piece].fillna("").astype(str) if position % 2 else piece)
    return message


UNIT_KIND_SEPARATOR = "\x1f"
# Columns with few distinct values in any file, worth working on distinct values only.
FEW_DISTINCT = (
    "assigning_authority",
    "analyte",
    "unit",
    "ref_low",
    "ref_high",
    "lab",
    "status",
    "loinc",
    "ref_raw",
    "abnormal_flag",
)


def each_distinct(values: pd.Series, compute: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``compute`` applied to the distinct values only, its answers spread back to every row.

    >>> each_distinct(pd.Series(["a", "b", "a"]), lambda v: v.str.upper()).tolist()
    ['A', 'B', 'A']
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    answers = compute(pd.Series(uniques)).array
    spread = pd.api.extensions.take(answers, codes, allow_fill=True)
    return pd.Series(spread, index=values.index)


def _canonical_analyte(names: pd.Series) -> pd.Series:
    lowered = names.str.lower()
    return lowered.where(lowered.isin(list(ANALYTES))).fillna(names.map(LOINC))


def _utc_instant(text: pd.Series) -> pd.Series:
    has_offset = text.str.contains(ISO_WITH_OFFSET, regex=True)
    return pd.to_datetime(text.where(has_offset), utc=True, format="ISO8601", errors="coerce")


def _iso_without_offset(text: pd.Series) -> pd.Series:
    """Whether each value is an ISO 8601 date-time that only lacks its offset (so that is the reason)."""
    bare = text.where(~text.str.contains(ISO_WITH_OFFSET, regex=True))
    return naive_iso(bare).notna()


def _split_pairs(pairs: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = pairs.str.split(UNIT_KIND_SEPARATOR, n=1, regex=False)
    return parts.str[0], parts.str[1].replace("", None)


def _factor_of_pair(pairs: pd.Series) -> pd.Series:
    return conversion_factors(*_split_pairs(pairs))


def _offset_of_pair(pairs: pd.Series) -> pd.Series:
    unit, kind = _split_pairs(pairs)
    return conversion_offsets(unit, kind.fillna(""))


_CENSORED = r"^(?P<comparator><=|>=|<|>|≤|≥)\s*(?P<number>.*)$"
_COMPARATORS = {"≤": "<=", "≥": ">="}


def _comparator(values: pd.Series) -> pd.Series:
    """``<`` for a censored value such as ``<0.1`` (``≤`` written ``<=``); '' for any other value."""
    return values.str.extract(_CENSORED)["comparator"].replace(_COMPARATORS).fillna("")


def _number_part(values: pd.Series) -> pd.Series:
    """The number of a censored value (``0.1`` of ``<0.1``); any other value as it is."""
    return values.str.extract(_CENSORED)["number"].fillna(values).str.strip()


def _number_or_blank(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parsed numbers, and a mask of fields that are present but not numbers."""

    def parse(distinct: pd.Series) -> pd.Series:
        return pd.to_numeric(distinct.where(distinct != ""), errors="coerce").astype("float64")

    numbers = each_distinct(text, parse).astype("float64")
    return numbers, (text != "") & numbers.isna()


def _label(analyte: pd.Series) -> pd.Series:
    return analyte.map({code: a.label for code, a in ANALYTES.items()}).fillna(analyte)


def duration_words(span: timedelta) -> str:
    """A tolerance as a message says it: whole hours in hours, anything else in minutes.

    >>> duration_words(timedelta(hours=1)), duration_words(timedelta(hours=3)), duration_words(timedelta(0))
    ('1 hour', '3 hours', '0 minutes')
    >>> duration_words(timedelta(minutes=90)), duration_words(timedelta(minutes=1))
    ('90 minutes', '1 minute')
    """
    minutes = int(span.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} hour{'' if minutes == 60 else 's'}"
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def _future(
    collected_at: pd.Series, imported_at: datetime | None, tolerance: timedelta
) -> tuple[pd.Series, str]:
    """Which collection times are more than ``tolerance`` after ``imported_at`` (none when it is None),
    and the end of the sentence that refuses them."""
    if imported_at is None:
        return pd.Series(False, index=collected_at.index), ""
    imported = pd.Timestamp(imported_at).tz_convert("UTC")
    ahead = collected_at > imported + tolerance
    words = f"more than {duration_words(tolerance)} after the import at {imported:%Y-%m-%dT%H:%M:%SZ}"
    return ahead, f" is in the future ({words})"


def normalise_results(
    raw: pd.DataFrame, *, imported_at: datetime | None = None, future_tolerance: timedelta = FUTURE_TOLERANCE
) -> Normalised:
    """Validate raw text records and convert them to canonical units.

    Parameters
    ----------
    raw : pd.DataFrame
        Text columns as in ``RAW_COLUMNS`` (missing optional fields as empty strings).
    imported_at : datetime, optional
        When the import runs (tz-aware): a collection time more than ``future_tolerance`` after it is
        refused (docs/clinical-basis.md, Plausible collection times). None (records read outside an
        import) checks no time against a clock.
    future_tolerance : timedelta
        How far after ``imported_at`` a collection time may be (default `FUTURE_TOLERANCE`, 1 hour).

    Returns
    -------
    Normalised
        ``results`` with ``RESULT_COLUMNS`` (``collected_at`` as UTC ``datetime64[us]``, numbers as float,
        ``value`` in the analyte's canonical unit), and ``rejected`` with ``REJECT_COLUMNS``.

    Examples
    --------
    >>> raw = pd.DataFrame({"patient_id": ["P1", "P1"], "collected_at": ["2026-01-05T08:00:00Z"] * 2,
    ...     "analyte": ["wbc", "anc"], "value": ["3800", "1.2"], "unit": ["/uL", "furlongs"],
    ...     "location": ["line 2", "line 3"], "raw_text": ["...", "..."]})
    >>> out = normalise_results(raw)
    >>> out.results["value"].tolist(), out.rejected["reason"].tolist()
    ([3.8], ["unknown unit 'furlongs' for Neutrophils (ANC)"])
    """
    raw = raw.reindex(columns=list(RAW_COLUMNS), fill_value="").fillna("").astype(str)
    # Work on distinct values and spread the answers back: a file of a million results holds a few
    # dozen analytes, units and statuses, and each collection time once per panel.
    text = {
        column: each_distinct(raw[column], lambda v: v.str.strip())
        if column in FEW_DISTINCT
        else raw[column]
        if column in ("raw_text", "location")
        else raw[column].str.strip()
        for column in RAW_COLUMNS
    }

    analyte_in = text["analyte"]
    analyte = each_distinct(analyte_in, _canonical_analyte)
    loinc = text["loinc"].where(
        text["loinc"] != "", each_distinct(analyte_in, lambda v: v.where(v.isin(list(LOINC))))
    )
    kinds = each_distinct(analyte, lambda v: v.map({code: a.kind for code, a in ANALYTES.items()}))

    # ISO 8601 with an explicit offset or Z: a time without one is ambiguous and is refused.
    collected_at = each_distinct(text["collected_at"], _utc_instant).astype("datetime64[us, UTC]")
    # Outside these years a collection time is a typing error (and beyond the calendar, with its offset).
    out_of_years = implausible(collected_at)
    collected_at = collected_at.where(~out_of_years)
    in_future, future_words = _future(collected_at, imported_at, future_tolerance)
    # Judged only where the time could not be read (few rows, if any): which reason to give.
    unread = collected_at.isna().to_numpy()
    only_offset_missing = pd.Series(False, index=collected_at.index)
    if unread.any():
        only_offset_missing[unread] = each_distinct(
            text["collected_at"][unread], _iso_without_offset
        ).to_numpy()

    comparator = each_distinct(text["value"], _comparator).replace("", None)
    value_in, value_not_number = _number_or_blank(each_distinct(text["value"], _number_part))
    low_in, low_not_number = _number_or_blank(text["ref_low"])
    high_in, high_not_number = _number_or_blank(text["ref_high"])
    unit_kind = text["unit"] + UNIT_KIND_SEPARATOR + kinds.fillna("")
    factors = each_distinct(unit_kind, _factor_of_pair)
    offsets = each_distinct(unit_kind, _offset_of_pair).astype("float64")
    value = to_canonical(value_in, factors, offsets)
    ref_low = to_canonical(low_in, factors, offsets)
    ref_high = to_canonical(high_in, factors, offsets)
    # A body temperature in Celsius between 77 and 113 is a Fahrenheit reading (25-45 °C) sent with the
    # wrong unit: refused as such, never converted on a guess (docs/clinical-basis.md, Temperatures).
    fahrenheit_as_celsius = (kinds.eq("temperature") & offsets.eq(0.0) & value.between(77.0, 113.0)).fillna(
        False
    )
    as_sent = value.eq(value_in).fillna(False)
    status = each_distinct(text["status"], lambda v: v.str.lower().map(STATUS_ALIASES))
    withdrawn = status.isin(WITHDRAWN)
    reported_at = pd.to_datetime(
        text["reported_at"].where(text["reported_at"].str.contains(ISO_WITH_OFFSET, regex=True)),
        utc=True,
        format="ISO8601",
        errors="coerce",
    ).astype("datetime64[us, UTC]")
    reported_at = reported_at.where(~implausible(reported_at))

    maximum = each_distinct(analyte, lambda v: v.map({c: a.plausible_max for c, a in ANALYTES.items()}))
    minimum = each_distinct(analyte, lambda v: v.map({c: a.plausible_min for c, a in ANALYTES.items()}))
    maximum, minimum = maximum.astype("float64"), minimum.astype("float64")

    def fields(rows: pd.Index) -> pd.DataFrame:
        """The text a refusal message quotes, built only for the refused rows."""
        known = analyte[rows]
        meta = ANALYTES
        return pd.DataFrame(
            {
                **{
                    c: text[c][rows]
                    for c in ("collected_at", "analyte", "value", "unit", "ref_low", "ref_high")
                },
                # The field and the time as the source wrote them (a CSV's collected_at when not given).
                "collected_as": text["collected_as"][rows].where(
                    text["collected_as"][rows] != "", "collected_at '" + text["collected_at"][rows] + "'"
                ),
                "status": text["status"][rows],
                "label": _label(known.fillna("")),
                "converted": value[rows].map("{:g}".format, na_action="ignore"),
                "canonical": known.map({code: UNIT_SHOWN.get(a.unit, a.unit) for code, a in meta.items()}),
                "maximum": known.map({code: f"{a.plausible_max:g}" for code, a in meta.items()}),
                "minimum": known.map({code: f"{a.plausible_min:g}" for code, a in meta.items()}),
            }
        )

    reason = _first_reason(
        fields,
        [
            (text["patient_id"] == "", "patient_id is empty"),
            (text["collected_at"] == "", "collected_at is empty"),
            (
                only_offset_missing,
                "collected_at '{collected_at}' has no time zone offset (add Z or +hh:mm, or give the zone it "
                "is in: --timezone, or the Import page's time zone)",
            ),
            (out_of_years, "{collected_as}" + OUTSIDE_YEARS),
            (in_future, "{collected_as}" + future_words),
            (
                collected_at.isna(),
                "collected_at '{collected_at}' is not an ISO 8601 date-time (e.g. 2026-03-16T09:40:00+01:00)",
            ),
            (analyte.isna(), "analyte '{analyte}' is neither a known analyte name nor a CBC LOINC code"),
            (text["value"].eq("") & ~withdrawn, "value is empty"),
            (value_not_number, "value '{value}' is not a number"),
            (text["unit"].eq("") & ~(withdrawn & text["value"].eq("")), "unit is empty for {label}"),
            (factors.isna() & text["unit"].ne(""), "unknown unit '{unit}' for {label}"),
            (low_not_number, "ref_low '{ref_low}' is not a number"),
            (high_not_number, "ref_high '{ref_high}' is not a number"),
            (ref_low > ref_high, "reference range is reversed (ref_low {ref_low} > ref_high {ref_high})"),
            (
                status.isna(),
                "status '{status}' is not one of " + ", ".join(sorted(set(STATUS_ALIASES.values()))),
            ),
            (
                fahrenheit_as_celsius,
                "{label} {value} {unit} is a Fahrenheit reading (25-45 °C is 77-113 °F) sent as Celsius: "
                "check the unit",
            ),
            ((value > maximum) & as_sent, PLAUSIBILITY_AS_SENT.format(side="above", limit="{maximum}")),
            ((value < minimum) & as_sent, PLAUSIBILITY_AS_SENT.format(side="below", limit="{minimum}")),
            (value > maximum, PLAUSIBILITY.format(side="above", limit="{maximum}")),
            (value < minimum, PLAUSIBILITY.format(side="below", limit="{minimum}")),
        ],
        raw.index,
    )
    rejected_mask = reason.notna()
    results = pd.DataFrame(
        {
            "patient_id": text["patient_id"],
            "assigning_authority": text["assigning_authority"],
            "collected_at": collected_at,
            "analyte": analyte,
            "loinc": loinc,
            "value_raw": text["value"],
            "unit_raw": text["unit"],
            "value": value,
            "comparator": comparator,
            "unit": each_distinct(analyte, lambda v: v.map({code: a.unit for code, a in ANALYTES.items()})),
            "ref_low": ref_low,
            "ref_high": ref_high,
            "ref_raw": reference_text(text["ref_raw"], text["ref_low"], text["ref_high"]),
            "abnormal_flag": text["abnormal_flag"].where(text["abnormal_flag"] != ""),
            "status": status,
            "derived": False,
            "lab": text["lab"].where(text["lab"] != "", UNSPECIFIED_LAB),
            "accession": text["accession"],
            "location": text["location"],
            "raw_text": raw["raw_text"],
            "reported_at": reported_at,
        }
    )[~rejected_mask]
    rejected = pd.DataFrame({"location": text["location"], "raw_text": raw["raw_text"], "reason": reason})[
        rejected_mask
    ]
    return _reject_conflicts(results.reset_index(drop=True), rejected.reset_index(drop=True))


def reference_text(given: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """The reference range as the store keeps it: as given, else its limits joined (NA when neither).

    >>> reference_text(pd.Series(["4-10", ""]), pd.Series(["", "1.5"]), pd.Series(["", ""])).tolist()
    ['4-10', '1.5-']
    """
    joined = (low + "-" + high).where((low != "") | (high != ""))
    return given.where(given != "", joined)


NATURAL_KEY = ("assigning_authority", "patient_id", "collected_at", "lab", "accession", "analyte")
# What makes two versions of a result the same: the converted value, range and status (so "2.4" and
# "2.40", or 2400 /uL and 2.4 x10^9/L, are one result, not a change).
RESULT_CONTENT = ("value", "comparator", "unit", "ref_low", "ref_high", "status")


# How far a record has progressed: a later record in the same file may move a result forward, never back.
STATUS_RANK = {"preliminary": 0, "final": 1, "corrected": 2, "cancelled": 3, "entered-in-error": 3}


def _reject_conflicts(results: pd.DataFrame, rejected: pd.DataFrame) -> Normalised:
    """Within one file, later records for the same specimen and analyte must follow on from earlier ones.

    A feed may carry a preliminary result and later its final or corrected version: each becomes the
    next *generation* (written in order, so the history keeps both). An identical repeat is dropped. A
    later record that neither advances the status nor corrects (e.g. two different "final" values) is
    refused, naming the record it contradicts: nothing in the file says which of the two the lab meant.
    """
    key = list(NATURAL_KEY)
    occurrence = results.groupby(key, sort=False, dropna=False).cumcount()
    kept = results[occurrence == 0].assign(generation=0)
    if occurrence.empty or occurrence.max() == 0:
        return Normalised(kept.reset_index(drop=True), rejected)
    last = kept.set_index(key)
    refused = [rejected]
    for round_ in range(1, int(occurrence.max()) + 1):
        later = results[occurrence == round_]
        before = last.reindex(pd.MultiIndex.from_frame(later[key]))
        same = np.ones(len(later), dtype=bool)
        for column in RESULT_CONTENT:
            mine, theirs = later[column].to_numpy(), before[column].to_numpy()
            same &= (mine == theirs) | (pd.isna(mine) & pd.isna(theirs))
        rank_now = later["status"].map(STATUS_RANK).to_numpy()
        rank_before = before["status"].map(STATUS_RANK).to_numpy()
        follows = (rank_now > rank_before) | (later["status"].to_numpy() == "corrected")
        advancing = later[~same & follows].assign(
            generation=before["generation"].to_numpy()[~same & follows] + 1
        )
        conflicts = ~same & ~follows
        refused.append(
            pd.DataFrame(
                {
                    "location": later["location"][conflicts],
                    "raw_text": later["raw_text"][conflicts],
                    "reason": "contradicts "
                    + before["location"].to_numpy()[conflicts]
                    + " (same patient, collection time, lab, accession and analyte, different result, "
                    + "and not a correction)",
                }
            )
        )
        kept = pd.concat([kept, advancing])
        last = pd.concat(
            [
                last.drop(index=pd.MultiIndex.from_frame(advancing[key]), errors="ignore"),
                advancing.set_index(key),
            ]
        )
    return Normalised(kept.reset_index(drop=True), pd.concat(refused, ignore_index=True))
