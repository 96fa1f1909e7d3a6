"""Which reference range applies to each result: patient override, reported, lab, or population default.

The lower limit of normal (LLN) matters beyond flagging: CTCAE v5.0 grade 1 exists only below the LLN of
the result. Ranges vary by lab, age, sex and ancestry, so the range the lab reported with the result is
preferred to any configured or population default, and a patient-specific override (e.g. a Duffy-null ANC
interval, Hibbs et al., Blood 2025) is preferred to all. A child of known age never gets adult cut-offs:
population defaults are age-banded (Davis's Lab & Diagnostic Tests), and a lab range configured without an
age band applies to adults only. A patient of unknown age gets, for WBC, ANC and ALC, the lowest default
of any age band in this table (the adult one), so that a count below every band's limit is still judged
low. The rules and their sources: docs/clinical-basis.md, Which range applies.

Below the reference interval is not the same as neutropenia in children: ``flag_limit`` is the limit the
neutropenia flag applies: for a child, the paediatric definition of neutropenia (``NEUTROPENIA_CUTOFFS``),
lowered only by a patient override (docs/clinical-basis.md, Paediatric neutropenia).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ADULT_MONTHS = 132  # Davis's last band is "11 yr-older adult": from 11 years, adult defaults
RANGE_SOURCES = (
    "patient override",
    "reported",
    "lab",
    "default adult",
    "default age band",
    "default any age",
    "none",
)


@dataclass(frozen=True, slots=True)
class DefaultRange:
    """A population default range for one analyte, sex and age band, in canonical units.

    Sources (docs/clinical-basis.md, Adult defaults and Paediatric defaults; clinical sign-off pending):

    * adult WBC LLN 4.0 x10^9/L: leukopenia in adults is "in general" a count below 4,000/uL and its
      definition varies between practices (Mayo Clinic), so 4.0 is a default only; ULN 11.0 (Merck Manual
      CBC table, US Core example);
    * adult ANC LLN 1.5: neutropenia is "usually defined" as ANC < 1.5 x10^9/L (Dale & Bolyard, Curr Opin
      Hematol 2017); ULN 7.7 (Merck);
    * adult ALC 1.0-4.8 and haemoglobin F 12-16 / M 14-17 g/dL (Merck Manual CBC table);
    * adult platelets 150-450 x10^9/L (HL7 US Core CBC DiagnosticReport example);
    * children: WBC, ANC and ALC by age band from Davis's Lab & Diagnostic Tests. Davis's "Birth" band is
      taken to cover the first month of life (our reading: the next band starts at 1 month). Davis's
      leukocyte table has no haemoglobin or platelet bands, so children get none.
    """

    analyte: str
    low: float
    high: float
    band: str  # "adult" or the age band as Davis's table names it
    min_months: float  # completed months of age at collection, inclusive
    max_months: float  # exclusive
    sex: str | None  # "F", "M" or None for either
    source: str


_MERCK = "Merck Manual CBC table"
_DAVIS = "Davis's Lab & Diagnostic Tests"
_ADULT = (ADULT_MONTHS, np.inf)
_BANDS = {"birth": (0, 1), "1-23 months": (1, 24), "2-10 years": (24, ADULT_MONTHS)}

DEFAULT_RANGES: tuple[DefaultRange, ...] = (
    DefaultRange(
        "wbc", 4.0, 11.0, "adult", *_ADULT, None, "leukopenia default LLN (Mayo Clinic); ULN " + _MERCK
    ),
    DefaultRange(
        "anc", 1.5, 7.7, "adult", *_ADULT, None, "neutropenia bound (Dale & Bolyard 2017); ULN " + _MERCK
    ),
    DefaultRange("alc", 1.0, 4.8, "adult", *_ADULT, None, _MERCK),
    DefaultRange("plt", 150.0, 450.0, "adult", *_ADULT, None, "HL7 US Core CBC example"),
    DefaultRange("hgb", 12.0, 16.0, "adult", *_ADULT, "F", _MERCK),
    DefaultRange("hgb", 14.0, 17.0, "adult", *_ADULT, "M", _MERCK),
    DefaultRange("wbc", 9.1, 30.1, "birth", *_BANDS["birth"], None, _DAVIS),
    DefaultRange("anc", 5.5, 18.3, "birth", *_BANDS["birth"], None, _DAVIS),
    DefaultRange("alc", 2.8, 9.3, "birth", *_BANDS["birth"], None, _DAVIS),
    DefaultRange("wbc", 6.1, 17.5, "1-23 months", *_BANDS["1-23 months"], None, _DAVIS),
    DefaultRange("anc", 1.9, 5.4, "1-23 months", *_BANDS["1-23 months"], None, _DAVIS),
    DefaultRange("alc", 3.7, 10.7, "1-23 months", *_BANDS["1-23 months"], None, _DAVIS),
    DefaultRange("wbc", 4.5, 13.5, "2-10 years", *_BANDS["2-10 years"], None, _DAVIS),
    DefaultRange("anc", 2.4, 7.3, "2-10 years", *_BANDS["2-10 years"], None, _DAVIS),
    DefaultRange("alc", 1.7, 5.1, "2-10 years", *_BANDS["2-10 years"], None, _DAVIS),
)


@dataclass(frozen=True, slots=True)
class NeutropeniaCutoff:
    """The ANC below which a child of this age is neutropenic (x10^9/L), from ``min_days`` of age
    (inclusive) to ``max_days`` (exclusive) and ``max_months`` completed months (exclusive).

    Sources (docs/clinical-basis.md, Paediatric neutropenia; clinical sign-off pending): 5-Minute Pediatric
    Consult, "Neutropenia": ANC < 1,500/uL for > 1 year of age, < 1,000/uL for < 1 year, < 5,000/uL in the
    first week of life; Pediatrics in Review, "Clinical Disorders of Neutropenia": the lower limit is
    1000/mm3 in infants between 2 weeks and 1 year of age, 1500/mm3 after infancy.
    """

    cutoff: float
    min_days: float
    max_days: float
    max_months: float
    label: str


NEUTROPENIA_CUTOFFS: tuple[NeutropeniaCutoff, ...] = (
    NeutropeniaCutoff(5.0, 0, 7, 1, "first week of life"),
    NeutropeniaCutoff(1.0, 7, np.inf, 12, "under 1 year"),
    NeutropeniaCutoff(1.5, 0, np.inf, ADULT_MONTHS, "1 year or older"),
)


def neutropenia_cutoff(age_days: pd.Series, age_months: pd.Series) -> pd.Series:
    """The paediatric neutropenia cut-off for each age (NaN for adults and unknown ages).

    The first fitting row of ``NEUTROPENIA_CUTOFFS`` wins: the first week of life (< 7 days) 5.0, then up
    to 12 completed months 1.0, then up to the adult defaults (11 years) 1.5 x10^9/L.

    >>> neutropenia_cutoff(pd.Series([3.0, 200.0, 1900.0, 5000.0, None]),
    ...     pd.Series([0.0, 6.0, 62.0, 164.0, None])).tolist()
    [5.0, 1.0, 1.5, nan, nan]
    """
    days, months = age_days.to_numpy(dtype="float64"), age_months.to_numpy(dtype="float64")
    fits = [(days >= c.min_days) & (days < c.max_days) & (months < c.max_months) for c in NEUTROPENIA_CUTOFFS]
    cutoff = np.select(fits, [c.cutoff for c in NEUTROPENIA_CUTOFFS], np.nan)
    return pd.Series(cutoff, index=age_days.index, dtype="float64")


def resolve_lower_limit(
    results: pd.DataFrame,
    *,
    overrides: pd.DataFrame | None,
    lab_ranges: pd.DataFrame | None,
    birth_dates: pd.DataFrame | None = None,
    defaults: tuple[DefaultRange, ...] = DEFAULT_RANGES,
) -> pd.DataFrame:
    """The reference range that applies to each result, and where it came from.

    The first source with a lower limit wins, and the upper limit comes from that same source (a range is
    never stitched together from two sources): a patient override, the range reported with the result,
    the lab's configured range, a population default for the patient's age (and sex, for haemoglobin);
    for a patient of unknown age, the lowest default of any age where the defaults cover every age
    (``default any age``, no upper limit): a count below it is below every age band's default limit.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key`` and ``analyte``; optionally ``ref_low``/``ref_high`` (reported range), ``lab``,
        and ``collected_at`` (needed with ``birth_dates``).
    overrides : pd.DataFrame or None
        Patient-specific ranges: ``patient_key``, ``analyte``, ``low``, ``high``, one row per pair.
    lab_ranges : pd.DataFrame or None
        Configured ranges: ``lab``, ``analyte``, ``low``, ``high`` and optionally ``sex`` ("F"/"M") and an
        age band ``min_months`` (inclusive, 0 when blank) / ``max_months`` (exclusive, open when blank).
        A row with neither is taken to be an adult range (11 years or more). The first fitting row wins.
    birth_dates : pd.DataFrame or None
        ``patient_key``, ``birth_date``, ``sex``. None declares an adult population of unknown sex; a
        patient missing from a given frame is of unknown age and gets no age-dependent range.
    defaults : tuple of DefaultRange
        Population defaults, ``DEFAULT_RANGES`` unless a site configures its own.

    Returns
    -------
    pd.DataFrame
        ``lln``, ``uln`` (float, NaN when unknown), ``range_source`` (one of ``RANGE_SOURCES``) and
        ``flag_limit``, aligned to ``results.index``. ``flag_limit`` is the limit below which a count is
        flagged low (leukopenia, neutropenia, lymphopenia): the ``lln``, except for the ANC of a child of
        known age, where it is the paediatric neutropenia cut-off (``neutropenia_cutoff``), whatever range
        the lab printed, or the lower of the cut-off and a patient override: an ANC below the interval but
        not below the cut-off is below the reference interval, not neutropenia. CTCAE grade 1 still uses
        the ``lln``.

    Examples
    --------
    >>> results = pd.DataFrame({"patient_key": [1, 2], "analyte": ["wbc", "wbc"], "ref_low": [3.5, None]})
    >>> resolved = resolve_lower_limit(results, overrides=None, lab_ranges=None)
    >>> resolved[["lln", "uln", "range_source"]].to_dict("list")
    {'lln': [3.5, 4.0], 'uln': [nan, 11.0], 'range_source': ['reported', 'default adult']}
    """
    work = pd.DataFrame(
        {"row": np.arange(len(results)), "patient_key": results["patient_key"].to_numpy()}
    ).assign(analyte=results["analyte"].array, lab=_column(results, "lab"))
    work = work.join(_age_and_sex(results, birth_dates))
    override = _lookup(work, overrides, ["patient_key", "analyte"])
    reported = pd.DataFrame({"low": _column(results, "ref_low"), "high": _column(results, "ref_high")})
    lab = _banded(work, lab_ranges, ["lab", "analyte"])
    default = _banded(work, _frame(defaults), ["analyte"])
    floor = _any_age(work, defaults)
    candidates = [override, reported.astype("float64"), lab, default, floor]
    # The sources by their position in ``RANGE_SOURCES``: the words are taken once per row at the end.
    default_label = np.where(default["band"].eq("adult").to_numpy(), 3, 4)
    chosen = [frame["low"].notna().to_numpy() for frame in candidates]
    labels: list[int | np.ndarray] = [0, 1, 2, default_label, 5]
    source = np.select(chosen, labels, 6)
    resolved = pd.DataFrame(
        {
            "lln": np.select(chosen, [frame["low"].to_numpy() for frame in candidates], np.nan),
            "uln": np.select(chosen, [frame["high"].to_numpy() for frame in candidates], np.nan),
            "range_source": pd.array(RANGE_SOURCES, dtype="string").take(source),
        }
    )
    cutoff = neutropenia_cutoff(work["age_days"], work["age_months"]).where(work["analyte"].eq("anc"))
    # A child's neutropenia is the age's cut-off whatever range the lab printed (a lab's adult or lower
    # range neither raises nor lowers it); only a clinician's range for this patient (e.g. Duffy-null)
    # may lower it.
    lln, limit = resolved["lln"].to_numpy(), cutoff.to_numpy()
    by_clinician = resolved["range_source"].eq("patient override").to_numpy(dtype=bool)
    child = ~np.isnan(limit)
    resolved["flag_limit"] = np.where(child & ~by_clinician, limit, np.fmin(lln, limit))
    return resolved.set_axis(results.index)


def _any_age(work: pd.DataFrame, defaults: tuple[DefaultRange, ...]) -> pd.DataFrame:
    """For results of patients of unknown age: the lowest default lower limit of any age, for analytes
    whose defaults (for either sex) cover every age from birth; no upper limit (NaN) and NaN elsewhere.

    With the defaults above that is the adult limit for WBC (4.0), ANC (1.5) and ALC (1.0), each below
    every paediatric band's default (Davis's Lab & Diagnostic Tests): a count under it is below the
    default limit of any age band, so a lab export without ranges or birth dates still has its leukopenia
    flagged. (It is not a definition of neutropenia at every age: infant neutropenia is ANC < 1.0,
    docs/clinical-basis.md, Paediatric defaults.) Haemoglobin and platelets have adult defaults only, so a
    patient of unknown age gets none.
    """
    floors: dict[str, float] = {}
    table = _frame(defaults)
    either_sex = table[table["sex"].isna()].sort_values(["analyte", "min_months"])
    for analyte, rows in either_sex.groupby("analyte"):
        starts, ends = rows["min_months"].to_numpy(), rows["max_months"].to_numpy()
        if starts[0] == 0 and np.isinf(ends[-1]) and np.array_equal(starts[1:], ends[:-1]):
            floors[str(analyte)] = float(rows["low"].min())
    unknown_age = work["age_months"].isna().to_numpy()
    codes, analytes = pd.factorize(work["analyte"])  # each analyte looked up once, not each result
    floor = np.append(pd.Series(analytes, dtype=object).map(floors).astype("float64").to_numpy(), np.nan)
    low = np.where(unknown_age, floor[codes], np.nan)  # code -1 (no analyte): the NaN appended
    return pd.DataFrame({"low": low, "high": np.full(len(work), np.nan)})


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column's values, or all missing when the frame has no such column."""
    return frame[name].to_numpy() if name in frame else np.full(len(frame), np.nan)


def _frame(defaults: tuple[DefaultRange, ...]) -> pd.DataFrame:
    columns = ["analyte", "low", "high", "band", "min_months", "max_months", "sex"]
    return pd.DataFrame([[getattr(d, c) for c in columns] for d in defaults], columns=columns)


def _age_and_sex(results: pd.DataFrame, birth_dates: pd.DataFrame | None) -> pd.DataFrame:
    """Completed months of age at collection (NaN when unknown) and sex "F"/"M" (NA when unknown)."""
    if birth_dates is not None and "collected_at" not in results:
        raise ValueError("resolve_lower_limit needs results['collected_at'] to use birth_dates")
    if birth_dates is None:
        return pd.DataFrame(
            {
                "age_months": float(ADULT_MONTHS),
                "age_days": np.inf,
                "sex": pd.array([pd.NA] * len(results), dtype="string"),
            },
            index=range(len(results)),
        )
    people = birth_dates[["patient_key", "birth_date", "sex"]]
    # Age depends on the patient and the (UTC) day only: computed once per distinct pair, not per result
    # (a panel's results share theirs).
    day = pd.to_datetime(results["collected_at"], utc=True).dt.tz_localize(None).dt.floor("D")
    pairs = pd.DataFrame({"patient_key": results["patient_key"].to_numpy(), "day": day.to_numpy()})
    patient_code, _ = pd.factorize(pairs["patient_key"], use_na_sentinel=False)
    day_code, days_seen = pd.factorize(pairs["day"], use_na_sentinel=False)
    codes, _ = pd.factorize(patient_code.astype("int64") * (len(days_seen) + 1) + day_code)
    first = np.unique(codes, return_index=True)[1]  # the first result of each distinct pair, in order
    known = (
        pairs.iloc[first]
        .reset_index(drop=True)
        .merge(people, on="patient_key", how="left", validate="many_to_one")
    )
    born = pd.to_datetime(known["birth_date"])
    taken = known["day"]
    months = (
        (taken.dt.year - born.dt.year) * 12
        + (taken.dt.month - born.dt.month)
        - (taken.dt.day < born.dt.day).astype(int)
    ).astype("float64")
    days = (taken - born).dt.days.astype("float64")
    sex = known["sex"].astype("string").str.strip().str.upper().str[0]
    ages = pd.DataFrame(
        {
            "age_months": months.where(months >= 0),
            "age_days": days.where(months >= 0),
            "sex": sex.where(sex.isin(["F", "M"])),
        }
    )
    return ages.take(codes).reset_index(drop=True)


def _lookup(work: pd.DataFrame, table: pd.DataFrame | None, keys: list[str]) -> pd.DataFrame:
    """``low``/``high`` from a table with one row per key (a duplicate key is a configuration error)."""
    if table is None or table.empty:
        return pd.DataFrame({"low": np.full(len(work), np.nan), "high": np.nan})
    found = work[keys].merge(table[[*keys, "low", "high"]], on=keys, how="left", validate="many_to_one")
    return found[["low", "high"]].astype("float64")


def _banded(work: pd.DataFrame, table: pd.DataFrame | None, keys: list[str]) -> pd.DataFrame:
    """``low``/``high``/``band`` of the first row of ``table`` whose keys, sex and age band fit each result.

    A band that starts at 0 months and never ends also fits a patient of unknown age; a row without sex
    fits either sex.
    """
    empty = pd.DataFrame({"low": np.full(len(work), np.nan), "high": np.nan, "band": ""})
    if table is None or table.empty or any(key not in work or work[key].isna().all() for key in keys):
        return empty
    low_edge, high_edge = (_column(table, name).astype("float64") for name in ("min_months", "max_months"))
    unbanded = np.isnan(low_edge) & np.isnan(high_edge)  # a range with no age band is an adult one
    table = table.assign(
        min_months=np.where(unbanded, ADULT_MONTHS, np.where(np.isnan(low_edge), 0.0, low_edge)),
        max_months=np.where(np.isnan(high_edge), np.inf, high_edge),
        sex=table["sex"] if "sex" in table else None,
        band=table["band"] if "band" in table else "",
    )
    table = table.rename(columns={"sex": "range_sex"}).reset_index(drop=True).rename_axis("order")
    # Match each distinct (keys, age, sex) once, not each result: a patient's results share most of them.
    probe = [*keys, "age_months", "sex"]
    codes, distinct = _factorize_rows(work[probe])
    pairs = distinct.reset_index(names="combo").merge(table.reset_index(), on=keys)
    age, band_low, band_high = pairs["age_months"], pairs["min_months"], pairs["max_months"]
    fits_age = ((age >= band_low) | (band_low <= 0)) & ((age < band_high) | np.isinf(band_high))
    fits_sex = pairs["range_sex"].isna() | (pairs["range_sex"] == pairs["sex"]).fillna(False)
    first = pairs[fits_age & fits_sex].sort_values(["combo", "order"]).drop_duplicates("combo")
    chosen = first.set_index("combo")[["low", "high", "band"]].reindex(range(len(distinct)))
    banded: pd.DataFrame = chosen.iloc[codes].reset_index(drop=True)  # (the stubs: Any for an array index)
    return banded.assign(band=banded["band"].fillna(""))


def _factorize_rows(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Codes of each row's combination of values (missing values included) and the distinct rows."""
    keyed = frame.reset_index(drop=True)
    grouped = keyed.groupby(list(keyed.columns), dropna=False, sort=False)
    codes = grouped.ngroup().to_numpy()
    distinct = keyed.loc[grouped.head(1).index].reset_index(drop=True)
    return codes, distinct
