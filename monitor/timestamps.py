"""Times as sources write them, made unambiguous: ISO 8601 with an offset, stored later in UTC.

A time that carries no offset is read in the site's configured time zone (an IANA name); a date alone
is read as midnight there. A local time in the hour repeated when the clocks go back is read as its first
occurrence, and one in the hour skipped when they go forward as the first time after the gap (as
``java.time`` and most interface engines do): a count drawn that night lands, at most an hour out, rather
than being refused. A time that cannot be read becomes '' and the record is refused downstream.
"""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

import numpy as np
import pandas as pd

# HL7 v2 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ] (OBR-7, OBX-14, PID-7; docs/clinical-basis.md,
# HL7 v2 fields read).
_HL7_TS = (
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?(?P<tz>[+-]\d{4})?$"
)
# An offset only counts after a time of day: "2026-07-01" ends in "-01" but has no offset.
ISO_WITH_OFFSET = r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)$"


# Outside these years a laboratory time is a typing error (docs/clinical-basis.md, Plausible collection
# times); time-zone rules also end there.
PLAUSIBLE_YEARS = (1900, 2999)
OUTSIDE_YEARS = f" is outside the years {PLAUSIBLE_YEARS[0]}-{PLAUSIBLE_YEARS[1]} (in UTC)"
DAY = pd.Timedelta(days=1)


def year_outside(written: pd.Series) -> pd.Series:
    """Whether each time as written (ISO 8601 or HL7, year first) begins with a year outside
    ``PLAUSIBLE_YEARS``: why a time that could not be read was refused.

    >>> year_outside(pd.Series(["18991231", "1899-12-31T23:00Z", "20260105", "x", ""])).tolist()
    [True, True, False, False, False]
    """
    years = pd.to_numeric(written.astype(str).str.extract(r"^\s*(\d{4})", expand=False), errors="coerce")
    outside: pd.Series = (years < PLAUSIBLE_YEARS[0]) | (years > PLAUSIBLE_YEARS[1])
    return outside


def implausible(moments: pd.Series) -> pd.Series:
    """Whether each instant (UTC) falls outside ``PLAUSIBLE_YEARS``: a typing error, or a date at the edge
    of the calendar that an offset pushes beyond it (0001-01-01T00:00+14:00 is in year 0).

    >>> implausible(pd.to_datetime(pd.Series(["1899-12-31T23:00Z", "2026-01-05T08:00Z", None]),
    ...                             utc=True)).tolist()
    [True, False, False]
    """
    years = moments.dt.year
    outside: pd.Series = moments.notna() & ((years < PLAUSIBLE_YEARS[0]) | (years > PLAUSIBLE_YEARS[1]))
    return outside


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (e.g. Europe/London, UTC).

    Checked against the zone names, not by loading: a folder of the database ("Europe", half typed)
    would raise an OSError, and files that are not zones ("localtime", "posixrules") would load.

    >>> is_timezone("Europe/London"), is_timezone("Europe")
    (True, False)
    """
    return name in _zone_names()


def hl7_to_iso(values: pd.Series, timezone: str) -> pd.Series:
    """HL7 v2 timestamps as ISO 8601 strings with an offset ('' where unreadable or empty).

    >>> stamps = pd.Series(["20110103143428-0800", "201410060929", "20240229", "2024", "x"])
    >>> hl7_to_iso(stamps, "UTC").tolist()
    ['2011-01-03T22:34:28+00:00', '2014-10-06T09:29:00+00:00', '2024-02-29T00:00:00+00:00', '', '']
    """
    parts = values.fillna("").astype(str).str.strip().str.extract(_HL7_TS)
    complete = parts["mo"].notna() & parts["d"].notna()
    clock = (
        parts["h"].fillna("00")
        + ":"
        + parts["mi"].fillna("00")
        + ":"
        + parts["s"].fillna("00")
        + ("." + parts["f"]).fillna("")
    )
    local = parts["y"] + "-" + parts["mo"] + "-" + parts["d"] + "T" + clock
    offset = parts["tz"].str.slice(0, 3) + ":" + parts["tz"].str.slice(3, 5)
    text = (local + offset.fillna("")).where(complete, "")
    return localise_iso(text, timezone)


def naive_iso(text: pd.Series) -> pd.Series:
    """ISO 8601 date-times without an offset, as naive timestamps; NaT for any other value, including one
    whose offset `ISO_WITH_OFFSET` does not recognise but the parser does (``T8:15Z``, an hour of one digit).

    >>> naive_iso(pd.Series(["2026-03-02T08:15:00", "2026-03-02T8:15:00Z", "?"])).tolist()
    [Timestamp('2026-03-02 08:15:00'), NaT, NaT]
    """
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # naive values among some with an offset: told apart one by one (rare)
        parsed = None
    if parsed is not None and not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed

    def one(value: object) -> pd.Timestamp | None:
        moment = (
            pd.to_datetime(value, format="ISO8601", errors="coerce") if isinstance(value, str) else pd.NaT
        )
        return None if pd.isna(moment) or moment.tzinfo is not None else moment

    return pd.to_datetime(text.map(one), errors="coerce")


def localise_iso(values: pd.Series, timezone: str) -> pd.Series:
    """ISO 8601 strings, those without an offset read in ``timezone``; returned in UTC ('' if unreadable).

    >>> localise_iso(pd.Series(["2026-07-01T10:00:00", "2026-07-01T10:00:00Z", "2026-07-01", "?"]),
    ...              "Europe/Paris").tolist()
    ['2026-07-01T08:00:00+00:00', '2026-07-01T10:00:00+00:00', '2026-06-30T22:00:00+00:00', '']

    Around New York's clock changes of 2026: 01:30 on 1 November happened twice (first at -04:00),
    02:30 on 8 March never did (read as 03:00, -04:00):

    >>> localise_iso(pd.Series(["2026-11-01T01:30", "2026-03-08T02:30"]), "America/New_York").tolist()
    ['2026-11-01T05:30:00+00:00', '2026-03-08T07:00:00+00:00']
    """
    text = values.fillna("").astype(str).str.strip()
    has_offset = text.str.contains(ISO_WITH_OFFSET, regex=True)
    aware = pd.to_datetime(text.where(has_offset), utc=True, format="ISO8601", errors="coerce")
    naive = naive_iso(text.where(~has_offset & (text != "")))
    # Outside these years a laboratory time is a typing error; time-zone rules also end there.
    plausible = (naive.dt.year >= PLAUSIBLE_YEARS[0]) & (naive.dt.year <= PLAUSIBLE_YEARS[1])
    naive = naive.where(plausible)
    moment = aware.where(has_offset, localize(naive, timezone).dt.tz_convert("UTC"))
    moment = moment.where(~implausible(moment))
    return moment.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").where(moment.notna(), "")


def localize(naive: pd.Series[pd.Timestamp], timezone: str) -> pd.Series[pd.Timestamp]:
    """Naive local times as instants in ``timezone``, by the rule of this module: a time in the hour
    repeated when the clocks go back is its first occurrence, one in the skipped hour the first time after
    the gap (NaT stays NaT).

    >>> localize(pd.Series(pd.to_datetime(["2026-11-01 01:30"])), "America/New_York").tolist()
    [Timestamp('2026-11-01 01:30:00-0400', tz='America/New_York')]
    """
    first = np.ones(len(naive), dtype=bool)  # daylight time: the first of the two occurrences
    return naive.dt.tz_localize(timezone, ambiguous=first, nonexistent="shift_forward")


def local_days(times: pd.Series[pd.Timestamp], timezone: str) -> pd.Series[pd.Timestamp]:
    """Each time's calendar day in ``timezone``, as a naive midnight (NaT stays NaT).

    Differences of these are whole calendar days, whatever clock change lies between.

    >>> local_days(pd.Series(pd.to_datetime(["2026-03-30 00:30"], utc=True)), "Europe/London").tolist()
    [Timestamp('2026-03-30 00:00:00')]
    """
    return times.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()


def days_between(
    start: pd.Series[pd.Timestamp], end: pd.Timestamp | pd.Series[pd.Timestamp]
) -> pd.Series[float]:
    """Elapsed time from ``start`` to ``end``, in fractional days (NaN where either is missing).

    >>> start = pd.Series(pd.to_datetime(["2026-01-01 00:00", None], utc=True))
    >>> days_between(start, pd.Timestamp("2026-01-02 12:00", tz="UTC")).tolist()
    [1.5, nan]
    """
    return (end - start) / DAY


def whole_days_between(
    start: pd.Series[pd.Timestamp], end: pd.Timestamp | pd.Series[pd.Timestamp]
) -> pd.Series[int]:
    """Whole days elapsed from ``start`` to ``end``, rounded down (NaN, in floats, where one is missing).

    >>> start = pd.Series(pd.to_datetime(["2026-01-01 00:00", None], utc=True))
    >>> whole_days_between(start, pd.Timestamp("2026-01-02 12:00", tz="UTC")).tolist()
    [1.0, nan]
    """
    return (end - start) // DAY


def calendar_days_between(
    start: pd.Series[pd.Timestamp], end: pd.Timestamp | pd.Series[pd.Timestamp], timezone: str
) -> pd.Series[float]:
    """Calendar days from ``start``'s day to ``end``'s day in ``timezone``, as a clinician counts them
    (NaN where either is missing): 13 days 23 hours from a morning to the next-but-13 day's early morning
    is 14 days, and a day the clocks change on is one day.

    >>> start = pd.Series(pd.to_datetime(["2026-01-01 08:00", None], utc=True))
    >>> calendar_days_between(start, pd.Timestamp("2026-01-15 07:00", tz="UTC"), "UTC").tolist()
    [14.0, nan]
    >>> calendar_days_between(start, pd.Timestamp("2026-01-01 23:30", tz="UTC"), "Europe/Paris").tolist()
    [1.0, nan]
    """
    if isinstance(end, pd.Series):
        end_day: pd.Timestamp | pd.Series[pd.Timestamp] = local_days(end, timezone)
    else:
        end_day = pd.Timestamp(end).tz_convert(timezone).tz_localize(None).normalize()
    return ((end_day - local_days(start, timezone)) / DAY).astype("float64")
