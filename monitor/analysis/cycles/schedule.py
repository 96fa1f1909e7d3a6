"""When the next dose is expected: the planned cycle length of each cycle, and the readiness window before it.

The planned length is the regimen's, when the chemotherapy event's details name one ("every 21 days",
"q3w", "21-day cycle"), else the median length of the patient's previous cycles, else the site's
``default_cycle_days``. The next dose is expected on the start's calendar day plus that length (day
``next_dose_day``, D22 for 21 days), and readiness is judged from ``readiness_window_days`` before it
(``readiness_from_day``, D19). No primary source gives when the pre-cycle count is drawn: the window is a
site decision (docs/clinical-basis.md, Readiness for the planned next dose).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.rules import CycleRules
from monitor.timestamps import DAY, local_days

# A cycle length as regimens write it; weeks are 7 days. (Longer than 12 weeks is not a cycle length.)
# Words first: "three-weekly" and "tri-weekly" are "3-weekly"; "fortnightly" and "biweekly" are "2-weekly"
# ("biweekly" also means twice a week in general English; in oncology regimens it is every two weeks).
_WORDS = {
    r"\bone\b": "1",
    r"\btwo\b": "2",
    r"\bthree\b": "3",
    r"\bfour\b": "4",
    r"\bfive\b": "5",
    r"\bsix\b": "6",
    r"\bseven\b": "7",
    r"\beight\b": "8",
    r"\btri\s*-?\s*(?=weekly)": "3-",
    r"\bbi\s*-?\s*weekly\b": "2-weekly",
    r"\bfortnightly\b": "2-weekly",
}
# Days: "every 21 days", "q21d", "q21", "21-day cycles", "6 cycles of 21 days", "R-CHOP-14".
_DAYS = (
    r"\b(?:every|q)\s*(?P<d>\d{1,2})\s*-?\s*d(?:ays?)?\b|\bq(?P<q>\d{1,2})\b(?!\s*-?\s*w)"
    r"|(?<![\w/.])(?P<n>\d{1,2})\s*-?\s*days?\s+cycles?\b"
    r"|cycles?\s+of\s+(?P<of>\d{1,2})\s*-?\s*days?\b"
    r"|\b[a-z]{2,}-(?P<named>1[0-9]|2[0-9]|3[0-5])\b(?!\s*-?\s*(?:d(?:ays?)?|w(?:ee)?ks?|weekly)\b)"
)
# Weeks: "every 3 weeks", "q3w", "3-weekly"; "weekly" and "every week" alone are 7 days.
_WEEKS = (
    r"\b(?:every|q)\s*(?P<w>\d{1,2})\s*-?\s*w(?:ee)?k?s?\b|(?<![\w/.])(?P<nw>\d{1,2})\s*-?\s*weekly\b"
    r"|(?P<weekly>(?<![\w-])weekly\b|\bevery\s+week\b)"
)
MAX_PLANNED_DAYS = 84
# Dose days named inside a cycle, D1 first: "D1 and D8", "D1,8", "days 1 and 8", "D1+D15", "d1, d8, d15",
# "days 1, 8 and 15", "day 1 and day 8". A range ("D1-3") is not a list of dose days and is not read.
_DOSE_DAYS = (
    r"\b(?:days?\s*|d)0?1(?P<rest>(?:\s*(?:,|\+|&|/|\band\b)\s*(?:days?\s*|d)?\d{1,2}\b"
    r"(?!\s*-?\s*(?:mg|g\b|%|cycles?|courses?|weeks?|w\b|days?\b|x\b)))+)"
)
# A dose within this many calendar days of a named in-cycle day is that day's dose (scheduling moves doses
# by a day or two). No source: site decision (docs/clinical-basis.md, Cycle days).
IN_CYCLE_TOLERANCE_DAYS = 2


def regimen_cycle_days(regimen: pd.Series) -> pd.Series:
    """The cycle length a regimen's text states, in days (NaN when it states none).

    Each distinct text is read once (a cohort's events repeat a few regimens).

    >>> regimen_cycle_days(pd.Series(["Carboplatin-paclitaxel every 21 days; lung", "AC q2w", "FOLFOX",
    ...     "docetaxel 75 mg/m2, 21-day cycles", "paclitaxel weekly", "3-weekly", "R-CHOP-14",
    ...     "every three weeks", "fortnightly", "q21", "6 cycles of 21 days"])).tolist()
    [21.0, 14.0, nan, 21.0, 7.0, 21.0, 14.0, 21.0, 14.0, 21.0, 21.0]
    """
    text = regimen.fillna("").astype(str).str.lower()
    unique = pd.Series(text.unique())
    words = unique
    for pattern, digits in _WORDS.items():
        words = words.str.replace(pattern, digits, regex=True)
    days = words.str.extract(_DAYS)
    weeks = words.str.extract(_WEEKS)
    found = pd.to_numeric(
        days["d"].fillna(days["q"]).fillna(days["n"]).fillna(days["of"]).fillna(days["named"]),
        errors="coerce",
    )
    found = found.fillna(pd.to_numeric(weeks["w"].fillna(weeks["nw"]), errors="coerce") * 7)
    found = found.fillna(weeks["weekly"].notna().map({True: 7.0, False: np.nan}))
    found = found.where(found.between(1, MAX_PLANNED_DAYS)).astype("float64")
    return text.map(pd.Series(found.to_numpy(), index=unique.to_numpy())).astype("float64")


def regimen_dose_days(regimen: pd.Series) -> pd.Series:
    """The later dose days a regimen's text names inside its cycle, as cycle days since D1 (day 0): a tuple
    per text, empty when it names none (D1 alone, or no days at all).

    >>> regimen_dose_days(pd.Series(["gemcitabine 1000 mg/m2 D1 and D8 every 21 days", "ABVD D1+D15 q28d",
    ...     "paclitaxel d1, d8, d15; carboplatin d1 q21d", "days 1, 8 and 15 every 28 days", "D1,8 q21",
    ...     "docetaxel q21d", "etoposide D1-3 q21d"])).tolist()
    [(7,), (14,), (7, 14), (7, 14), (7,), (), ()]
    """
    text = regimen.fillna("").astype(str).str.lower()
    unique = pd.Series(text.unique())
    rest = unique.str.extract(_DOSE_DAYS)["rest"].fillna("")
    numbers = rest.str.findall(r"\d{1,2}")
    named = numbers.map(lambda found: tuple(sorted({int(n) - 1 for n in found if int(n) > 1})))
    return text.map(pd.Series(named.to_numpy(), index=unique.to_numpy()))


def planned_lengths(cycles: pd.DataFrame, rules: CycleRules, timezone: str) -> pd.DataFrame:
    """Per cycle (``cycles_from_events``): ``planned_days``, the length expected at its start, and
    ``planned_basis`` ("regimen", "previous cycles", "site default"); ``next_dose_day`` (the planned
    length: the day the next dose is expected, D# = day + 1) and ``readiness_from_day`` (that day less
    ``readiness_window_days``, not before day 0). Index as ``cycles``.
    """
    from_regimen = regimen_cycle_days(cycles["regimen"])
    # (calendar days in ``timezone``, as ``align.calendar_days``; align builds the cycles with this module)
    lengths = (local_days(cycles["next_start"], timezone) - local_days(cycles["start"], timezone)) / DAY
    lengths = lengths.astype("float64")
    # The median of the cycles before this one (all complete: each was followed by the next).
    patient = cycles["patient_key"]
    running = lengths.groupby(patient).expanding().median().droplevel(0).reindex(cycles.index)
    earlier = running.groupby(patient).shift(1).astype("float64")
    previous = (earlier + 0.5).apply(np.floor)  # a median of 21.5 days: 22
    planned = from_regimen.fillna(previous).fillna(float(rules.default_cycle_days))
    basis = pd.Series("site default", index=cycles.index, dtype=object)
    basis = basis.where(previous.isna(), "previous cycles").where(from_regimen.isna(), "regimen")
    next_day = planned.astype("int64")
    return pd.DataFrame(
        {
            "planned_days": next_day,
            "planned_basis": basis,
            "next_dose_day": next_day,
            "readiness_from_day": (next_day - rules.readiness_window_days).clip(lower=0),
        },
        index=cycles.index,
    )


def day_date(cycle_start: pd.Series, day: pd.Series, timezone: str) -> pd.Series:
    """The calendar date in ``timezone`` of ``day`` of each cycle, as YYYY-MM-DD ("" where unknown).

    >>> start = pd.Series(pd.to_datetime(["2026-03-02 10:00"], utc=True))
    >>> day_date(start, pd.Series([21]), "UTC").tolist()
    ['2026-03-23']
    """
    dates = local_days(pd.to_datetime(cycle_start, utc=True), timezone) + pd.to_timedelta(
        day.astype("float64"), unit="D"
    )
    return dates.dt.strftime("%Y-%m-%d").fillna("")
