"""Per patient, now: which flags apply, why, the current WBC run below its limit, and episodes.

A result is below its limit when its value is below the ``lln`` that applies to it (already resolved by
``analysis.ranges_default``). As in ``analysis.grading``, values and limits are compared rounded to
``COMPARE_DECIMALS``; a censored "<B" is below when B <= LLN, "<=B" when B < LLN, and ">B" or ">=B" is never
counted as below. A result without an LLN cannot be judged: it is not below, so it ends a run.

The run-length rules (``persistent_min_days``, ``chronic_min_days``, ``run_days``) and ``days_since_cbc``
count calendar days in the site's time zone, as a clinician counts them: a count on 1 January at 08:00
and one on 15 January at 07:00 are 14 days apart, though 13 days 23 hours have elapsed
(docs/clinical-basis.md, Calendar days); so do ``episodes``. Withdrawn results
(``EXCLUDED_STATUSES``), results without a value or time, and (in ``patient_flags``) results collected
after ``as_of`` are ignored.

A result is above its limit when its value is above the ``uln`` that applies (the same source as the
``lln``: the lab's own range preferred, else a default): ``leukocytosis`` (WBC), ``neutrophilia`` (ANC) and
``lymphocytosis`` (ALC), told with the CTCAE "increased" grade where CTCAE has one (``ctcae_high_grade``;
docs/clinical-basis.md, High counts). A value equal to the limit is not above it; ">B" is above when
B >= ULN, ">=B" when B > ULN; "<B" never is. A count CTCAE grades high (Leukocytosis above 100, Lymphocyte
count increased above 4.0) is above too, whatever the limit: with no upper limit known, or within the lab's.
While G-CSF acts (given in the current chemotherapy cycle, or within ``GCSF_OPEN_DAYS`` of its start,
``GCSF_AFTER_DAYS`` of its end) a high WBC below CTCAE grade 3 and a high ANC are expected: no flag, and
``notes`` says why; unless the ANC is above ``GCSF_STOP_ANC`` (10), where the filgrastim label stops the
drug after the nadir: then both are flagged and say so.

The change flags exist per lineage: the bare ``new_onset``, ``persistent``, ``worsening`` and
``significant_drop`` (and ``chronic``, ``recovering``) judge the WBC; ``anc_*`` and ``alc_*`` judge the
neutrophils and lymphocytes with the same rules. Chronicity and recovery of the ANC and ALC are told in
the neutropenia and lymphopenia sentences.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis.changes import FEBRILE_UNJUDGED, FEBRILE_UNJUDGED_WORDS
from monitor.analysis.cycles.align import as_utc, cycles_from_events
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules
from monitor.analysis.cycles.support import gcsf_events
from monitor.analysis.forecast import GCSF_AFTER_DAYS, GCSF_OPEN_DAYS
from monitor.analysis.grading import (
    COMPARATOR_SPELLINGS,
    COMPARE_DECIMALS,
    CTCAE,
    DEFAULT_RULES,
    GradingRules,
    ctcae_grade,
    ctcae_high_grade,
    neutropenia_severity,
    rcv_bounds,
)
from monitor.analysis.setting_values import a_whole_number
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.analysis.support_flags import SUPPORT_FLAGS
from monitor.timestamps import calendar_days_between, days_between

__all__ = [
    "DEFAULT_FLAG_RULES",
    "EPISODE_COLUMNS",
    "FLAGS",
    "FLAG_COLUMNS",
    "HIGH_FLAGS",
    "LINEAGES",
    "FlagRules",
    "above_limit",
    "below_limit",
    "episodes",
    "flag_label",
    "patient_flags",
]

# Display order: febrile neutropenia (an emergency; judged from temperatures and ANCs by
# ``analysis.febrile``, not here, and put first by the status), the low counts, then each kind of change
# for WBC (the bare names, as exported before the lineages had their own), ANC and ALC. ANC and ALC
# chronicity and recovery are told in the neutropenia and lymphopenia sentences.
FLAGS: tuple[str, ...] = (
    "febrile_neutropenia",
    # A recent fever with no ANC to judge it by (``analysis.febrile.unjudged_now``), put first by the status.
    FEBRILE_UNJUDGED,
    "leukopenia",
    "neutropenia",
    "lymphopenia",
    # Counts above the upper limit that applies (a leukaemoid reaction or a leukaemia must not look normal).
    "leukocytosis",
    "neutrophilia",
    "lymphocytosis",
    "new_onset",
    "anc_new_onset",
    "alc_new_onset",
    "persistent",
    "anc_persistent",
    "alc_persistent",
    "chronic",
    "worsening",
    "anc_worsening",
    "alc_worsening",
    "significant_drop",
    "anc_significant_drop",
    "alc_significant_drop",
    "recovering",
)
LINEAGES = {"wbc": "leukopenia", "anc": "neutropenia", "alc": "lymphopenia"}
# The flag of each lineage's count above its upper limit (docs/clinical-basis.md, High counts).
HIGH_FLAGS = {"wbc": "leukocytosis", "anc": "neutrophilia", "alc": "lymphocytosis"}
# Whose upper limit a high count is judged against, as a sentence names it (``analysis.ranges_default``'s
# ``range_source``).
_WHOSE_LIMIT = {
    "patient override": "this patient's own upper limit",
    "reported": "the upper limit reported with the result",
    "lab": "the lab's configured upper limit",
    "default adult": "the adult default upper limit",
    "default age band": "the default upper limit for age",
}
FLAG_COLUMNS = (
    "patient_key",
    "flags",
    "explanations",
    "notes",
    "run_start",
    "run_results",
    "run_days",
    "days_since_cbc",
)
EPISODE_COLUMNS = ("patient_key", "start", "end", "ongoing", "nadir", "nadir_at", "n_results", "days")
_KEYS = ["patient_key", "analyte"]
# Counts are in 10^9/L (``monitor.analytes.COUNT_UNIT``), written as clinicians do.
_UNIT = "x10^9/L"
# A month of a trend: the mean calendar month.
MONTH_DAYS = 365.25 / 12


def flag_label(flag: str) -> str:
    """A flag as people read it: "anc_new_onset" -> "ANC new onset", "new_onset" -> "new onset"; the cycle
    decision support by its words (``analysis.cycles.support.SUPPORT_FLAGS``).

    >>> [flag_label(f) for f in ("significant_drop", "alc_worsening", "neutropenia", "gcsf_consider")]
    ['significant drop', 'ALC worsening', 'neutropenia', 'consider G-CSF prophylaxis']
    """
    if flag in SUPPORT_FLAGS:
        return SUPPORT_FLAGS[flag]
    if flag == FEBRILE_UNJUDGED:
        return FEBRILE_UNJUDGED_WORDS
    lineage, _, rest = flag.partition("_")
    if lineage in LINEAGES and rest:
        return f"{lineage.upper()} {rest.replace('_', ' ')}"
    return flag.replace("_", " ")


@dataclass(frozen=True, slots=True)
class FlagRules:
    """Site-configurable flag rules; the defaults and their sources.

    * ``persistent_min_results`` = 2, ``persistent_min_days`` = 14: a run below the limit confirmed by a
      repeat count at least two weeks (calendar days) later (product default, pending clinical sign-off;
      docs/clinical-basis.md, Flag defaults).
    * ``chronic_min_days`` = 90: chronic neutropenia lasts "at least 3 months" (Dale DC & Bolyard AA, Curr
      Opin Hematol 2017, PMC5380401; docs/clinical-basis.md, Chronic neutropenia), applied to every lineage.
    * ``slope_window_days`` = 180, ``slope_min_results`` = 3: Theil-Sen trend through the results outside
      chemotherapy cycles in the 180 days before the latest result, long enough to see a slow marrow
      failure (no source: site decision; docs/clinical-basis.md, Trend).
    * ``no_cbc_days`` = 30: the worklist's "No CBC for 30 days" filter and count list a patient whose last
      CBC is at least this many calendar days old (no source: site decision; docs/clinical-basis.md,
      Worklist filters). No flag depends on it.
    * ``grading``: CTCAE version, RCV Z (1.645, one-sided 95 %) and CVs, ``GradingRules``
      (docs/clinical-basis.md, Reference change values).
    """

    persistent_min_results: int = 2
    persistent_min_days: int = 14
    chronic_min_days: int = 90
    slope_window_days: int = 180
    slope_min_results: int = 3
    no_cbc_days: int = 30
    grading: GradingRules = DEFAULT_RULES

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if self.slope_min_results < 2:
            raise ValueError(f"a slope needs slope_min_results >= 2, not {self.slope_min_results}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> FlagRules:
        """Rules from site configuration; unset keys keep their defaults, unknown keys are errors.

        ``grading`` is passed to ``GradingRules.from_mapping``.

        >>> rules = FlagRules.from_mapping({"chronic_min_days": 180, "grading": {"rcv_z": 1.96}})
        >>> rules.chronic_min_days, rules.persistent_min_days, rules.grading.rcv_z
        (180, 14, 1.96)
        """
        unknown = set(mapping) - {*_COUNT_FIELDS, "grading"}
        if unknown:
            raise ValueError(f"unknown flag settings: {sorted(unknown)}")
        settings: dict[str, Any] = {}
        for name in set(mapping) & set(_COUNT_FIELDS):
            settings[name] = a_whole_number(name, mapping[name])
        if "grading" in mapping:
            settings["grading"] = GradingRules.from_mapping(mapping["grading"] or {})
        return cls(**settings)


_COUNT_FIELDS = tuple(f.name for f in fields(FlagRules) if f.name != "grading")
DEFAULT_FLAG_RULES = FlagRules()


def patient_flags(
    results: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    timezone: str,
    rules: FlagRules = DEFAULT_FLAG_RULES,
    events: pd.DataFrame | None = None,
    cycle_rules: CycleRules = DEFAULT_CYCLE_RULES,
) -> pd.DataFrame:
    """Flags, their explanations, the current WBC run below the limit and days since the last CBC.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key``, ``collected_at`` (tz-aware), ``analyte``, ``value``, ``lln``; optionally
        ``comparator`` and ``status``.
    as_of : pd.Timestamp
        Now (tz-aware); later results are ignored.
    timezone : str
        The site's time zone (IANA name), in which days are counted.
    rules : FlagRules
        Site rules.
    events : pd.DataFrame, optional
        Clinical events (``patient_key``, ``kind``, ``start_at``, optionally ``end_at``, ``label``,
        ``details``): results inside a chemotherapy cycle (``analysis.cycles``), or before the last cycle
        ended, are left out of the trend; G-CSF (``analysis.cycles.support.gcsf_events``) makes a high WBC
        below grade 3 and a high ANC expected.
    cycle_rules : CycleRules
        How long a cycle that no dose follows lasts (``default_cycle_days``).

    Returns
    -------
    pd.DataFrame
        One row per patient with a usable result, sorted, columns ``FLAG_COLUMNS``: ``flags`` (tuple in
        ``FLAGS`` order), ``explanations`` (tuple aligned to ``flags``), ``notes`` (tuple: a high count not
        flagged because it is expected after G-CSF, and why), ``run_start`` (NaT), ``run_results``
        and ``run_days`` (0) when the latest WBC is not below, and ``days_since_cbc``.

    Examples
    --------
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": "wbc", "value": [5.0, 3.8, 2.6], "lln": 4.0,
    ...     "collected_at": pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-22"], utc=True)})
    >>> flags = patient_flags(results, as_of=pd.Timestamp("2026-01-25", tz="UTC"), timezone="UTC")
    >>> flags.loc[0, "flags"]
    ('leukopenia', 'persistent', 'worsening', 'significant_drop')
    >>> flags[["run_results", "run_days", "days_since_cbc"]].to_dict("records")
    [{'run_results': 2, 'run_days': 14, 'days_since_cbc': 3}]
    """
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware, e.g. pd.Timestamp('2026-01-25', tz='UTC')")
    work = _usable(results, as_of=as_of)
    work = work.join(_chemotherapy_cycles(work, events, cycle_rules, timezone))
    state = _lineage_state(work, rules, timezone)
    state["gcsf"] = _gcsf_acting(state, events, cycle_rules, timezone)
    text = _sentences(state, rules)
    expected = text.pop("expected").dropna().reset_index(level="analyte", drop=True)
    patients = pd.Index(work["patient_key"].drop_duplicates().sort_values(), name="patient_key")
    named = text.reset_index().melt(id_vars=_KEYS, var_name="kind", value_name="text").dropna(subset="text")
    lineage = named["analyte"].astype(str)
    named["flag"] = np.select(
        [named["kind"].eq("below"), named["kind"].eq("above"), lineage.eq("wbc")],
        [lineage.map(LINEAGES), lineage.map(HIGH_FLAGS), named["kind"]],
        lineage + "_" + named["kind"],
    )
    order = {flag: position for position, flag in enumerate(FLAGS)}
    named = named.assign(order=named["flag"].map(order)).dropna(subset="order")
    named = named.sort_values(["patient_key", "order"], kind="stable").set_index("patient_key")
    flags = _tuples(named["flag"].astype(object), patients)
    explanations = _tuples(named["text"].astype(object), patients)
    notes = _tuples(expected.astype(object), patients)
    wbc = _wbc(state).reindex(patients)
    below = wbc["below"].fillna(False).astype(bool)
    last = work.groupby("patient_key")["collected_at"].max().reindex(patients)
    out = pd.DataFrame(
        {
            "flags": flags,
            "explanations": explanations,
            "notes": notes,
            "run_start": wbc["run_start"].where(below),
            "run_results": wbc["run_results"].where(below, 0).astype("int64"),
            "run_days": wbc["run_days"].where(below, 0).astype("int64"),
            "days_since_cbc": calendar_days_between(last, as_of, timezone).astype("int64"),
        },
        index=patients,
    )
    return out.reset_index()


def _chemotherapy_cycles(
    work: pd.DataFrame, events: pd.DataFrame | None, rules: CycleRules, timezone: str
) -> pd.DataFrame:
    """Per result, ``in_cycle`` (inside a chemotherapy cycle: from the start of a dosing day, its
    pre-treatment count included, to the start of the next dosing day or ``default_cycle_days``) and
    ``cycle_end`` (the end of the latest cycle that began before it; NaT when none did)."""
    out = pd.DataFrame(
        {"in_cycle": False, "cycle_end": pd.Series(pd.NaT, index=work.index, dtype="datetime64[us, UTC]")}
    )
    if events is None or events.empty or work.empty:
        return out
    cycles = cycles_from_events(events, rules, timezone)
    if cycles.empty:
        return out
    starts = pd.DataFrame(
        {
            "patient_key": cycles["patient_key"].astype("int64"),
            "day_start": as_utc(cycles["day_start"]),
            "cycle_end": as_utc(cycles["end"]),
        }
    ).sort_values("day_start")
    rows = pd.DataFrame(
        {
            "patient_key": work["patient_key"].astype("int64"),
            "collected_at": as_utc(work["collected_at"]),
            "row": np.arange(len(work)),
        }
    ).sort_values("collected_at")
    placed = pd.merge_asof(
        rows, starts, left_on="collected_at", right_on="day_start", by="patient_key", direction="backward"
    ).sort_values("row")
    # A result before every cycle matches none: its end is NaT, which the merge may leave without a zone.
    # (Taken as datetime arrays: to_numpy() on zoned times would make one Timestamp object per result.)
    ends = pd.to_datetime(placed["cycle_end"], utc=True).dt.as_unit("us")
    cycle_end = pd.Series(ends.array, index=work.index, dtype="datetime64[us, UTC]")
    collected = pd.Series(as_utc(placed["collected_at"]).array, index=work.index)
    return pd.DataFrame(
        {
            "in_cycle": (collected < cycle_end).fillna(False).to_numpy(dtype=bool),
            "cycle_end": cycle_end,
        }
    )


def episodes(results: pd.DataFrame, *, timezone: str, analyte: str = "wbc") -> pd.DataFrame:
    """Every unbroken run of ``analyte`` results below their limit, per patient.

    Parameters
    ----------
    results : pd.DataFrame
        As for ``patient_flags``.
    timezone : str
        The site's zone: ``days`` are calendar days in it, as the run-length flags count them.
    analyte : str
        The analyte whose runs are wanted.

    Returns
    -------
    pd.DataFrame
        Columns ``EPISODE_COLUMNS``, sorted by patient and start: ``start`` and ``end`` (first and last
        result below), ``ongoing`` (the patient's latest result is in it), ``nadir`` (the lowest value as
        stored, so "<0.1" is 0.1) and ``nadir_at`` (its first time), ``n_results`` and ``days`` (calendar
        days from start to end in ``timezone``).

    Examples
    --------
    >>> days = pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22"], utc=True)
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": "wbc", "value": [3.5, 2.9, 4.6, 3.1],
    ...     "lln": 4.0, "collected_at": days})
    >>> episodes(results, timezone="UTC")[["nadir", "n_results", "days", "ongoing"]].to_dict("records")
    [{'nadir': 2.9, 'n_results': 2, 'days': 7, 'ongoing': False},
     {'nadir': 3.1, 'n_results': 1, 'days': 0, 'ongoing': True}]
    """
    work = _usable(results)
    series = work[work["analyte"].eq(analyte).to_numpy(dtype=bool)]
    below = _below(series)
    patient = series["patient_key"]
    runs = series.assign(
        run=(~below).groupby(patient).cumsum(),
        is_last=series.groupby("patient_key").cumcount(ascending=False).eq(0),
    )[below.to_numpy()]
    grouped = runs.groupby(["patient_key", "run"], sort=True)
    out = grouped.agg(
        start=("collected_at", "first"),
        end=("collected_at", "last"),
        ongoing=("is_last", "any"),
        n_results=("value", "size"),
    )
    lowest = runs.loc[grouped["value"].idxmin().to_numpy()]
    out["nadir"] = lowest["value"].to_numpy()
    out["nadir_at"] = lowest["collected_at"].to_numpy()
    out["days"] = calendar_days_between(out["start"], out["end"], timezone).astype("int64")
    out["n_results"] = out["n_results"].astype("int64")
    return out.reset_index().reindex(columns=list(EPISODE_COLUMNS))


def _usable(results: pd.DataFrame, *, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """A sorted copy of the results that count, with ``comparator`` normalised (NA when uncensored)."""
    required = ["patient_key", "collected_at", "analyte", "value", "lln"]
    missing = [c for c in required if c not in results]
    if missing:
        raise ValueError(f"flags need columns {missing}; the frame has {list(results.columns)}")
    keep = results["value"].notna() & results["collected_at"].notna()
    if "status" in results:
        keep &= ~results["status"].isin(EXCLUDED_STATUSES)
    if as_of is not None:
        keep &= results["collected_at"] <= as_of
    columns = [*required, *(c for c in ("comparator", "flag_limit", "uln", "range_source") if c in results)]
    work = results.loc[keep.to_numpy(dtype=bool), columns].reset_index(drop=True)
    comparator = (
        work["comparator"].astype("string").str.strip().replace(COMPARATOR_SPELLINGS)
        if "comparator" in work
        else pd.Series(pd.NA, index=work.index, dtype="string")
    )
    work = work.assign(
        value=work["value"].astype("float64"), lln=work["lln"].astype("float64"), comparator=comparator
    )
    if "flag_limit" in work:
        work["flag_limit"] = work["flag_limit"].astype("float64")
    work["uln"] = work["uln"].astype("float64") if "uln" in work else np.nan
    return work.sort_values(["patient_key", "analyte", "collected_at"], kind="stable").reset_index(drop=True)


def below_limit(results: pd.DataFrame) -> pd.Series:
    """Whether each result (``value``, ``lln``, optional ``comparator``) is certainly below its limit.

    >>> below_limit(pd.DataFrame({"value": [3.9, 4.0, 4.5], "lln": [4.0, 4.0, None],
    ...     "comparator": [None, "<", "<"]})).tolist()
    [True, True, False]
    """
    comparator = (
        results["comparator"].astype("string").str.strip().replace(COMPARATOR_SPELLINGS)
        if "comparator" in results
        else pd.Series(pd.NA, index=results.index, dtype="string")
    )
    work = pd.DataFrame(
        {
            "value": results["value"].astype("float64"),
            "lln": results["lln"].astype("float64"),
            "comparator": comparator,
        },
        index=results.index,
    )
    if "flag_limit" in results:
        work["flag_limit"] = results["flag_limit"].astype("float64")
    return _below(work).fillna(False).astype(bool)


def _below(work: pd.DataFrame) -> pd.Series:
    """Whether each result is certainly below its limit (False when the limit is unknown).

    The limit is ``flag_limit`` when given (a child's neutropenia cut-off, ``analysis.ranges_default``),
    else the ``lln``.
    """
    value = work["value"].round(COMPARE_DECIMALS)
    lln = (work["flag_limit"] if "flag_limit" in work else work["lln"]).round(COMPARE_DECIMALS)
    comparator = work["comparator"]
    strict = comparator.eq("<").fillna(False).to_numpy(dtype=bool)
    below = pd.Series(np.where(strict, value <= lln, value < lln), index=work.index)
    return below & ~comparator.isin([">", ">="]).fillna(False)


def above_limit(results: pd.DataFrame) -> pd.Series:
    """Whether each result (``value``, ``uln``, optional ``comparator``) is certainly above its upper limit.

    A value equal to the limit is not above it; ">B" is above when B >= ULN, ">=B" when B > ULN; "<B" and
    "<=B" never are; without an upper limit nothing is.

    >>> above_limit(pd.DataFrame({"value": [11.0, 11.01, 11.0, 11.0, 50.0], "uln": [11.0, 11.0, 11.0, 11.0,
    ...     None], "comparator": [None, None, ">", ">=", None]})).tolist()
    [False, True, True, False, False]
    """
    value = results["value"].astype("float64").round(COMPARE_DECIMALS)
    uln = results["uln"].astype("float64").round(COMPARE_DECIMALS)
    comparator = (
        results["comparator"].astype("string").str.strip().replace(COMPARATOR_SPELLINGS)
        if "comparator" in results
        else pd.Series(pd.NA, index=results.index, dtype="string")
    )
    strict = comparator.eq(">").fillna(False).to_numpy(dtype=bool)
    above = pd.Series(np.where(strict, value >= uln, value > uln), index=results.index)
    return (above & ~comparator.isin(["<", "<="]).fillna(False)).astype(bool)


def _lineage_state(work: pd.DataFrame, rules: FlagRules, timezone: str) -> pd.DataFrame:
    """One row per patient and lineage: the latest result, its predecessor, its run, change and trend."""
    lineage = work[work["analyte"].isin(list(LINEAGES)).to_numpy(dtype=bool)]
    grade = ctcae_grade(lineage, rules=rules.grading).astype("float64")
    high_grade = ctcae_high_grade(lineage, rules=rules.grading).astype("float64")
    # Above the limit that applies, or above CTCAE's fixed threshold (Leukocytosis > 100, Lymphocyte count
    # increased > 4.0): a WBC of 150 with no upper limit known is not normal (docs/clinical-basis.md, High
    # counts).
    above = above_limit(lineage) | (high_grade >= 1).fillna(False)
    lineage = lineage.assign(below=_below(lineage), grade=grade, above=above, high_grade=high_grade)
    grouped = lineage.groupby(_KEYS, sort=False)
    # Runs: a result not below starts a new run number; the below results sharing a number form a run.
    run = (~lineage["below"]).groupby([lineage["patient_key"], lineage["analyte"]]).cumsum()
    below = lineage[lineage["below"].to_numpy(dtype=bool)]
    in_run = below.groupby([below["patient_key"], below["analyte"], run[below.index]], sort=False)
    lineage = lineage.assign(
        previous_value=grouped["value"].shift(),
        previous_comparator=grouped["comparator"].shift(),
        previous_below=grouped["below"].shift(fill_value=False).astype(bool),
        previous_grade=grouped["grade"].shift(),
        previous_at=grouped["collected_at"].shift(),
        run_start=in_run["collected_at"].transform("first"),
        run_first=in_run["value"].transform("first"),
        run_first_comparator=in_run["comparator"].transform("first", skipna=False),
        run_results=in_run.cumcount() + 1,
    )
    state = lineage.groupby(_KEYS, sort=True).tail(1).set_index(_KEYS)
    state["run_days"] = calendar_days_between(state["run_start"], state["collected_at"], timezone)
    state["change_days"] = calendar_days_between(state["previous_at"], state["collected_at"], timezone)
    return state.join(_trend(lineage, rules, timezone))


def _trend(lineage: pd.DataFrame, rules: FlagRules, timezone: str) -> pd.DataFrame:
    """The Theil-Sen line through the results outside chemotherapy cycles in the ``slope_window_days``
    before each patient's latest result: its slope per month and its relative change across the results.

    Censored results are left out, and so are those before the end of the last chemotherapy cycle; no
    trend is judged while the latest result is inside a cycle (the cycle table tells a treated course).
    ``trend_change`` is the line's value at the last result used over its value at the first, minus one:
    the fall the line shows over the days it was measured, never extrapolated beyond them.
    """
    latest = lineage.groupby(_KEYS)["collected_at"].transform("max")
    days = days_between(latest, lineage["collected_at"])
    inside = (days >= -rules.slope_window_days) & lineage["comparator"].isna() & ~lineage["in_cycle"]
    # Only since the last cycle ended: a line across a course compares the marrow before and after it.
    treated_until = lineage.groupby(_KEYS)["cycle_end"].transform("last")
    inside &= treated_until.isna() | (as_utc(lineage["collected_at"]) >= treated_until)
    window = lineage.loc[inside.to_numpy(dtype=bool), [*_KEYS, "value", "collected_at"]]
    window = window.assign(t=days[inside])
    stats = window.groupby(_KEYS).agg(
        trend_results=("value", "size"),
        t_first=("t", "min"),
        t_last=("t", "max"),
        first_at=("collected_at", "min"),
        last_at=("collected_at", "max"),
    )
    slope = _median_pairwise_slope(window[[*_KEYS, "value", "t"]]).reindex(stats.index)
    own_slope = slope.reindex(pd.MultiIndex.from_frame(window[_KEYS])).to_numpy(dtype=float)
    offset = pd.Series(window["value"].to_numpy() - own_slope * window["t"].to_numpy(), index=window.index)
    intercept = offset.groupby([window["patient_key"], window["analyte"]]).median().reindex(stats.index)
    start = intercept + slope * stats["t_first"]
    end = intercept + slope * stats["t_last"]
    latest_in_cycle = lineage.groupby(_KEYS)["in_cycle"].last().reindex(stats.index).astype(bool)
    enough = (stats["trend_results"] >= rules.slope_min_results) & (stats["t_last"] > stats["t_first"])
    enough &= (start > 0) & ~latest_in_cycle
    return pd.DataFrame(
        {
            "trend_change": (end / start - 1).where(enough),
            "trend_per_month": (slope * MONTH_DAYS).where(enough),
            "trend_results": stats["trend_results"],
            "trend_days": calendar_days_between(stats["first_at"], stats["last_at"], timezone),
        },
        index=stats.index,
    )


# The Theil-Sen median holds about this many slopes at once (2 MB of float64 per array): the groups are
# stacked by their number of results into (groups, n) arrays whose pairs are formed a chunk of rows at a
# time, and a group with more pairs than this alone is selected over its pairs in passes.
SLOPE_CHUNK = 1 << 18
# A long group's selection (``_select_rank``): bins per pass, and slopes few enough to keep and partition.
_SELECT_BINS = 4096
_SELECT_KEEP = 1 << 18


def _median_pairwise_slope(window: pd.DataFrame) -> pd.Series:
    """Per patient and lineage, the median slope over every pair of results at different times.

    The groups are stacked by their number of results n into (groups, n) arrays sorted by time; the pairs
    i < j of ``np.triu_indices(n, 1)`` give the slopes, NaN for a pair at equal times (it has none), and
    each row's median is taken with ``np.partition`` among the rows with as many slopes (NaN sorts last).
    The loops are over sizes and chunks, never over rows; at most about ``SLOPE_CHUNK`` slopes are held
    at once (a group with more pairs than that is selected over its pairs in passes, ``_group_median``).
    """
    ordered = window.sort_values([*_KEYS, "t"], kind="stable")
    group = ordered.groupby(_KEYS, sort=False).ngroup().to_numpy()
    keys = ordered.drop_duplicates(_KEYS).set_index(_KEYS).index  # group numbers in order of appearance
    t, value = ordered["t"].to_numpy(dtype=float), ordered["value"].to_numpy(dtype=float)
    size = np.bincount(group, minlength=len(keys))
    start = np.cumsum(size) - size
    median = np.full(len(keys), np.nan)
    for n in np.unique(size[size >= 2]).tolist():
        groups = np.flatnonzero(size == n)
        if n * (n - 1) // 2 > SLOPE_CHUNK:
            for g in groups.tolist():  # each alone holds more pairs than a chunk
                median[g] = _group_median(t[start[g] : start[g] + n], value[start[g] : start[g] + n])
            continue
        first, second = np.triu_indices(n, 1)
        step = max(1, SLOPE_CHUNK // len(first))
        for a in range(0, len(groups), step):
            chosen = groups[a : a + step]
            rows = start[chosen][:, None] + np.arange(n)
            times, values = t[rows], value[rows]
            apart = times[:, second] - times[:, first]
            slopes = values[:, second] - values[:, first]
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(slopes, apart, out=slopes)
            slopes[apart <= 0] = np.nan
            median[chosen] = _row_medians(slopes)
    found = ~np.isnan(median)
    return pd.Series(median[found], index=keys[found], dtype=float)


def _row_medians(slopes: np.ndarray) -> np.ndarray:
    """Each row's median of its non-NaN values (NaN for a row without any), rows taken by their count."""
    valid = slopes.shape[1] - np.isnan(slopes).sum(axis=1)
    out = np.full(len(slopes), np.nan)
    for k in np.unique(valid[valid > 0]).tolist():
        rows = np.flatnonzero(valid == k)
        low, high = (k - 1) // 2, k // 2
        part = np.partition(slopes if len(rows) == len(slopes) else slopes[rows], [low, high], axis=1)
        out[rows] = (part[:, low] + part[:, high]) / 2
    return out


def _group_median(t: np.ndarray, value: np.ndarray) -> float:
    """The median slope over the pairs at different times of one long group (``t`` sorted), in bounded
    memory: its one or two middle slopes selected by rank (``_select_rank``)."""
    _, ties = np.unique(t, return_counts=True)
    n = len(t)
    k = n * (n - 1) // 2 - int((ties * (ties - 1) // 2).sum())
    if k == 0:
        return float("nan")
    low, high = (k - 1) // 2, k // 2
    first = _select_rank(t, value, low)
    return first if high == low else (first + _select_rank(t, value, high)) / 2


def _select_rank(t: np.ndarray, value: np.ndarray, rank: int) -> float:
    """The slope of rank ``rank`` (0 first) among one group's pairs at different times, by passes over
    its pairs: each narrows the interval holding it to one of ``_SELECT_BINS`` bins, until its slopes are
    few enough to keep and partition."""
    low, high, before = -np.inf, np.inf, 0  # the slope is in (low, high]; ``before`` are <= low
    while True:
        count, least, most = 0, np.inf, -np.inf
        for slopes in _pair_slopes(t, value):
            inside = slopes[(slopes > low) & (slopes <= high)]
            if len(inside):
                count += len(inside)
                least, most = min(least, float(inside.min())), max(most, float(inside.max()))
        if least == most:
            return least
        if count <= _SELECT_KEEP:
            kept = np.concatenate([s[(s > low) & (s <= high)] for s in _pair_slopes(t, value)])
            return float(np.partition(kept, rank - before)[rank - before])
        inner = np.linspace(least, most, _SELECT_BINS + 1)[1:-1]
        bins = np.zeros(_SELECT_BINS, dtype=np.int64)
        for slopes in _pair_slopes(t, value):
            inside = slopes[(slopes > low) & (slopes <= high)]
            bins += np.bincount(np.searchsorted(inner, inside, side="left"), minlength=_SELECT_BINS)
        upto = before + np.cumsum(bins)
        b = int(np.searchsorted(upto, rank, side="right"))  # the first bin with more than ``rank`` up to it
        low, high = (inner[b - 1] if b > 0 else low), (inner[b] if b < len(inner) else high)
        before = int(upto[b - 1]) if b > 0 else before


def _pair_slopes(t: np.ndarray, value: np.ndarray) -> Iterator[np.ndarray]:
    """One group's slopes over its pairs at different times (``t`` sorted), about ``SLOPE_CHUNK`` at a
    time: the pairs of result i with every later one, for a run of i."""
    n = len(t)
    later = n - 1 - np.arange(n)  # pairs each result starts
    ends = np.cumsum(later)
    i = 0
    while i < n - 1:
        done = ends[i - 1] if i else 0
        stop = max(i + 1, int(np.searchsorted(ends, done + SLOPE_CHUNK, side="right")))
        stop = min(stop, n - 1)
        counts = later[i:stop]
        first = np.repeat(np.arange(i, stop), counts)
        second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(counts) - counts, counts)
        apart = t[second] - t[first]
        keep = apart > 0
        yield (value[second][keep] - value[first][keep]) / apart[keep]
        i = stop


def _sentences(state: pd.DataFrame, rules: FlagRules) -> pd.DataFrame:
    """Per patient and lineage, the sentence for each flag that applies (NA where it does not)."""
    limits = {
        i.analyte: rcv_bounds(i.cv_analytical, i.cv_within, z=rules.grading.rcv_z)
        for i in rules.grading.rcv_inputs
    }
    analyte = state.index.get_level_values("analyte").to_series(index=state.index)
    down = analyte.map({a: low for a, (low, _) in limits.items()}).astype("float64")
    up = analyte.map({a: high for a, (_, high) in limits.items()}).astype("float64")
    change = (state["value"] / state["previous_value"] - 1).where(state["previous_value"] > 0)
    current, previous = state["comparator"], state["previous_comparator"]
    # A censored value bounds the change from one side only: "<B" after an exact value is a certain fall.
    fall_sure = (current.isna() | current.isin(["<", "<="])) & (previous.isna() | previous.isin([">", ">="]))
    rise_sure = (current.isna() | current.isin([">", ">="])) & (previous.isna() | previous.isin(["<", "<="]))
    fall = (change <= down) & fall_sure.fillna(False)
    rise = (change >= up) & rise_sure.fillna(False)
    below = state["below"].astype(bool)
    grade_up = (state["grade"] > state["previous_grade"]).fillna(False)
    # A one-grade step alone is within analytical and biological variation (3.05 -> 2.95 is grade 1 -> 2):
    # it is worsening with a fall beyond the RCV, a rise of two grades or more, or a step into grade 3-4
    # (docs/clinical-basis.md, Worsening). Only the grade bands the fall crossed count: with an LLN at or
    # below the grade-2 threshold (ANC 1.5, WBC 3.0, ALC 0.8) grade 1 is empty, and 0 -> 2 is one step.
    crossed = state["grade"] - state["previous_grade"]
    crossed -= (
        _empty_grade_1(state, analyte, rules) & (state["previous_grade"] < 1) & (state["grade"] >= 2)
    ).astype("float64")
    grade_worse = (crossed >= 2) | ((state["grade"] >= 3) & (state["previous_grade"] < 3))
    grade_worse = grade_worse.fillna(False)
    # The trend: the Theil-Sen line's fall across its results beyond the RCV; a significant rise since
    # the previous result (recovery) overrides it (docs/clinical-basis.md, Trend).
    trend_fall = (state["trend_change"] <= down).fillna(False) & ~rise
    worsening = below & (grade_worse | fall | trend_fall)
    # Between two results both inside the reference range a fall is no flag (the chart still marks it).
    dropped = fall & (below | state["previous_below"].astype(bool))
    persistent = below & (state["run_results"] >= rules.persistent_min_results)
    persistent &= state["run_days"] >= rules.persistent_min_days
    chronic = below & (state["run_days"] >= rules.chronic_min_days)
    recovering = below & rise

    name = analyte.str.upper()
    value = _number(state["value"], current)
    lln = _number(state["flag_limit"] if "flag_limit" in state else state["lln"])
    before = _number(state["previous_value"], previous)
    run_first = _number(state["run_first"], state["run_first_comparator"])
    value_grade = _number(state["grade"], digits=0)
    is_below = name + " " + value + " below " + lln
    # A certain change involving a censored value is a bound: the change is at least that large.
    at_least = pd.Series("", index=state.index, dtype="string").where(
        current.isna() & previous.isna(), "at least "
    )
    change_days = state["change_days"]
    within = _concat(" in ", _number(change_days, digits=0), " days").where(change_days != 1, " in 1 day")
    within = within.where(change_days != 0, " the same day")
    fell = _concat(
        "fell ",
        at_least,
        _number(-100 * change, digits=1),
        "% from ",
        before,
        " to ",
        value,
        " ",
        _UNIT,
        within,
    )
    # The ANC's severity in the words clinicians use (docs/clinical-basis.md, Severity bands): "severe
    # neutropenia", and "profound" below 0.1; none for a count not below 1.5 (a Duffy-null or child's LLN).
    severity = neutropenia_severity(state["value"], comparator=current).where(analyte.eq("anc"), "")
    rcv_down = _number(100 * down, digits=1) + "%"
    # The change since the previous result, by its values: with its percentage when beyond the RCV, and the
    # grade it reached when the grade rose ("fell from 1.05 to 0.95 x10^9/L in 7 days, into CTCAE grade 3
    # (moderate neutropenia; was grade 2)").
    fell_plain = _concat("fell from ", before, " to ", value, " ", _UNIT, within)
    fell_text = _concat(fell, " (reference change value ", rcv_down, ")").where(fall, fell_plain)
    severity_words = (severity.fillna("") + " neutropenia; ").where(severity.fillna("").ne(""), "")
    into_grade = _concat(
        ", into CTCAE grade ",
        value_grade,
        " (",
        severity_words,
        "was grade ",
        _number(state["previous_grade"], digits=0),
        ")",
    )
    change_text = fell_text + into_grade.where(grade_up, "").fillna("")
    per_month = _number(-state["trend_per_month"], digits=2)
    trend_text = _concat(
        "falling by ",
        per_month,
        f" {_UNIT} per month over ",
        _number(state["trend_days"], digits=0),
        " days (Theil-Sen line through ",
        _number(state["trend_results"], digits=0),
        " results outside chemotherapy cycles, a fall beyond the reference change value of ",
        rcv_down,
        ")",
    )
    reasons = pd.concat(
        [change_text.where(fall | grade_up), trend_text.where(trend_fall)],
        axis=1,
    )
    n_results, n_days = _number(state["run_results"], digits=0), _number(state["run_days"], digits=0)
    since = state["run_start"].dt.strftime("%Y-%m-%d").astype("string")
    text = pd.DataFrame(index=state.index)
    severity_text = ("; " + severity.fillna("") + " neutropenia").where(severity.fillna("").ne(""), "")
    graded = ("(CTCAE grade " + value_grade.fillna("") + severity_text + ")").where(state["grade"] >= 1, "")
    text["below"] = (is_below + (" " + graded).where(graded.ne(""), "")).where(below)
    text["new_onset"] = (
        _concat(is_below, ", previous result ", before, " was not")
        .fillna(_concat(is_below, " on the first ", name, " result"))
        .where(below & ~state["previous_below"])
    )
    below_lln = _concat(name, " below ", lln)
    over = _concat(" consecutive results over ", n_days, " days (", run_first, " -> ", value, ")")
    text["persistent"] = _concat(below_lln, " on ", n_results, over).where(persistent)
    chronic_note = f" (chronic: {rules.chronic_min_days} days or more)"
    text["chronic"] = _concat(below_lln, " for ", n_days, " days since ", since, chronic_note).where(chronic)
    text["worsening"] = (name + " worsening: " + _joined(reasons, sep="; ")).where(worsening)
    new_grade = pd.Series("", index=state.index, dtype="string").where(~grade_up, "new ")
    grade_note = (
        (" (" + new_grade + "CTCAE grade " + value_grade.fillna("") + severity_text + ")")
        .where(state["grade"] >= 1, "")
        .fillna("")
    )
    text["significant_drop"] = (
        name + " " + fell + ", beyond the reference change value of " + rcv_down + grade_note
    ).where(dropped)
    # A rise is told by its values, not as a percentage: a count recovering from 0.07 to 0.55 rose 686 %.
    rose = _concat(" rose from ", before, " to ", value, " ", _UNIT, within)
    rcv_up = _concat(", beyond the reference change value of +", _number(100 * up, digits=1), "%")
    text["recovering"] = _concat(name, rose, rcv_up, ", still below ", lln).where(recovering)
    above_text = _above_text(state, name, rules)
    above = state["above"].astype(bool)
    # While G-CSF acts a high WBC below CTCAE grade 3 and a high ANC are expected: told, not flagged; a WBC
    # above 100 always is (docs/clinical-basis.md, High counts).
    gcsf = state["gcsf"] if "gcsf" in state else pd.Series(pd.NA, index=state.index, dtype="string")
    expected = above & gcsf.notna() & analyte.isin(list(GCSF_EXPECTED))
    expected &= ~(state["high_grade"] >= 3).fillna(False)
    # Past an ANC of GCSF_STOP_ANC the rise is no longer only expected: the filgrastim label stops the drug
    # there after the nadir, so the high WBC and ANC are flagged, and say so.
    values = pd.to_numeric(state["value"], errors="coerce")
    anc_now = values[analyte.eq("anc").to_numpy(dtype=bool)].droplevel("analyte")
    patient = pd.Series(state.index.get_level_values("patient_key"), index=state.index)
    stop = (patient.map(anc_now) > GCSF_STOP_ANC).fillna(False).astype(bool)
    past_stop = expected & stop
    expected &= ~stop
    text["above"] = above_text.where(above & ~expected)
    text["above"] = text["above"].where(
        ~past_stop,
        _concat(
            above_text,
            " while G-CSF acts (",
            gcsf.astype("string"),
            f"): the ANC is above {GCSF_STOP_ANC:g} x10^9/L, where the filgrastim label stops it after "
            "the nadir",
        ),
    )
    text["expected"] = _concat(
        above_text, ": expected after G-CSF (", gcsf.astype("string"), "), not flagged"
    )
    text["expected"] = text["expected"].where(expected)
    # ANC and ALC chronicity and recovery have no flags of their own (``patient_flags`` keeps only the
    # names in FLAGS): their neutropenia/lymphopenia sentence tells them.
    lineage_detail = _joined(text[["chronic", "recovering"]], sep="; ")
    text["below"] = text["below"] + ("; " + lineage_detail).fillna("").where(analyte.ne("wbc"), "")
    return text


def _above_text(state: pd.DataFrame, name: pd.Series, rules: FlagRules) -> pd.Series:
    """The sentence of a count above its upper limit or graded high by CTCAE: the count with its unit, the
    limit and whose it is, and the CTCAE grade where CTCAE grades it ("WBC 105.6 x10^9/L above 10.8, the
    upper limit reported with the result (CTCAE v5.0 Leukocytosis grade 3: above 100.0 x10^9/L, leukostasis
    risk)"). A count CTCAE grades but the limit does not say so: "WBC 150.0 x10^9/L, no upper limit known,
    above CTCAE's threshold (...)", "ALC 4.5 x10^9/L within 4.8, the lab's configured upper limit, but
    above CTCAE's threshold (...)"."""
    version = rules.grading.ctcae_version
    criteria = CTCAE[version]
    analyte = state.index.get_level_values("analyte").to_series(index=state.index)
    value = _number(state["value"], state["comparator"])
    limit = _number(state["uln"])
    source = state["range_source"] if "range_source" in state else pd.Series(pd.NA, index=state.index)
    whose = source.astype("string").map(_WHOSE_LIMIT, na_action="ignore").astype("string")
    limit_text = (limit + ", " + whose).fillna(limit)
    told = _concat(name, " ", value, f" {_UNIT}")
    over_limit = above_limit(state)
    no_limit = told + ", no upper limit known, above CTCAE's threshold"
    within = _concat(told, " within ", limit_text, ", but above CTCAE's threshold")
    text = _concat(told, " above ", limit_text).where(
        over_limit, within.where(state["uln"].notna(), no_limit)
    )
    grade = state["high_grade"]
    notes = pd.Series("", index=state.index, dtype="string")
    for lineage in GRADED_LINEAGES:
        mine = analyte.eq(lineage)
        term = criteria.high_term(lineage)
        if term is None:
            count = {"wbc": "white cell", "anc": "neutrophil", "alc": "lymphocyte"}[lineage]
            notes = notes.mask(mine, f" (CTCAE v{version} has no term for a high {count} count: not graded)")
            continue
        first = term.bounds[0]
        graded = mine & (grade >= 1).fillna(False)
        # The threshold the grade rests on: the highest one the value is above.
        passed = pd.Series(
            [_threshold(term.bounds, term.first_grade, g) for g in grade.fillna(0).astype(int)],
            index=state.index,
            dtype="float64",
        )
        danger = ", leukostasis risk" if lineage == "wbc" else ""
        notes = notes.mask(
            graded,
            f" (CTCAE v{version} {term.term} grade "
            + _number(grade, digits=0)
            + ": above "
            + _number(passed)
            + f" {_UNIT}{danger})",
        )
        notes = notes.mask(
            mine & ~graded, f" (not graded: CTCAE v{version} {term.term} starts above {first:.1f} {_UNIT})"
        )
    return text + notes.fillna("")


# The lineages a high-count sentence names a CTCAE term (or its absence) for.
GRADED_LINEAGES = tuple(HIGH_FLAGS)
# The lineages whose high count is expected while G-CSF acts (below CTCAE grade 3: a WBC above 100 is always
# flagged); lymphocytes are not what G-CSF raises (docs/clinical-basis.md, High counts).
GCSF_EXPECTED = ("wbc", "anc")
# The ANC (x10^9/L) above which a high count on G-CSF is flagged all the same: the filgrastim label has the
# drug stopped once the ANC passes 10,000/mm3 after the chemotherapy nadir (docs/clinical-basis.md, High
# counts).
GCSF_STOP_ANC = 10.0


def _gcsf_acting(
    state: pd.DataFrame, events: pd.DataFrame | None, rules: CycleRules, timezone: str
) -> pd.Series:
    """Per patient and lineage, the G-CSF acting on the latest result, in words ("Pegfilgrastim 6 mg on
    2026-11-21"; NA when none): the latest G-CSF given before the result in the same chemotherapy cycle, or
    within the window the nadir forecast uses (from its start to ``GCSF_AFTER_DAYS`` after its end, or
    ``GCSF_OPEN_DAYS`` after its start when no end is recorded)."""
    out = pd.Series(pd.NA, index=state.index, dtype="string")
    if events is None or events.empty or state.empty:
        return out
    given = gcsf_events(events)
    if given.empty:
        return out
    start = as_utc(given["start_at"])
    end = (
        pd.to_datetime(given["end_at"], utc=True)
        if "end_at" in given
        else pd.Series(pd.NaT, index=given.index, dtype="datetime64[ns, UTC]")
    )
    label = (
        given["label"].astype("string").str.strip() if "label" in given else pd.Series("", index=given.index)
    )
    label = label.fillna("").replace("", "G-CSF")
    day = start.dt.tz_convert(timezone).dt.strftime("%Y-%m-%d")
    doses = pd.DataFrame(
        {
            "patient_key": given["patient_key"].astype("int64").to_numpy(),
            "given_at": start.to_numpy(),
            "acting_until": (end + pd.Timedelta(days=GCSF_AFTER_DAYS))
            .fillna(start + pd.Timedelta(days=GCSF_OPEN_DAYS))
            .to_numpy(),
            "words": (label + " on " + day).to_numpy(),
        }
    )
    latest = state[["collected_at"]].reset_index()
    latest = latest.assign(
        patient_key=latest["patient_key"].astype("int64"), at=as_utc(latest["collected_at"])
    )
    pairs = latest.merge(doses, on="patient_key")
    pairs = pairs[(pairs["given_at"] <= pairs["at"]).to_numpy(dtype=bool)]
    acting = pairs["at"] < pairs["acting_until"]
    cycles = cycles_from_events(events, rules, timezone)
    if not cycles.empty:
        spans = pairs.reset_index().merge(
            cycles[["patient_key", "day_start", "end"]].assign(
                patient_key=cycles["patient_key"].astype("int64")
            ),
            on="patient_key",
        )
        first, last = as_utc(spans["day_start"]), as_utc(spans["end"])
        same = (spans["given_at"] >= first) & (spans["at"] >= first) & (spans["at"] < last)
        in_cycle = spans.loc[same.to_numpy(dtype=bool), "index"].unique()
        acting |= pairs.index.isin(in_cycle)
    chosen = pairs[acting.to_numpy(dtype=bool)].sort_values("given_at").groupby(_KEYS).tail(1)
    found = chosen.set_index(_KEYS)["words"].astype("string")
    return found.reindex(state.index).astype("string")


def _threshold(bounds: tuple[float, ...], first_grade: int, grade: int) -> float:
    """The threshold a high grade rests on (NaN below the first)."""
    position = grade - first_grade
    return bounds[position] if 0 <= position < len(bounds) else float("nan")


def _empty_grade_1(state: pd.DataFrame, analyte: pd.Series, rules: FlagRules) -> pd.Series:
    """Whether the CTCAE grade-1 band [grade-2 threshold, LLN) of each row's lineage is empty: its LLN is
    at or below the grade-2 threshold (``analysis.grading``'s CTCAE terms whose grade 1 is "< LLN")."""
    criteria = CTCAE.get(rules.grading.ctcae_version)
    terms = criteria.terms if criteria is not None else ()
    threshold = {t.analyte: t.bounds[0] for t in terms if t.grade1_below_lln and t.first_absolute_grade == 2}
    grade_2_below = analyte.map(threshold).astype("float64").round(COMPARE_DECIMALS)
    lln = state["lln"].astype("float64").round(COMPARE_DECIMALS)
    return (lln <= grade_2_below).fillna(False).astype(bool)


def _concat(*parts: pd.Series | str) -> pd.Series:
    """Element-wise concatenation of string Series and literals; NA where any part is NA."""
    joined = functools.reduce(operator.add, parts)
    if not isinstance(joined, pd.Series):
        raise TypeError("_concat needs at least one Series among its parts")
    return joined


def _number(values: pd.Series, comparator: pd.Series | None = None, *, digits: int = 3) -> pd.Series:
    """Numbers as text ("4.0", "0.05", "<0.1"); ``digits=0`` gives integers, NA stays NA."""
    rounded = values.astype("float64").round(digits)
    text = (rounded.astype("Int64") if digits == 0 else rounded).astype("string")
    return text if comparator is None else comparator.fillna("") + text


def _joined(parts: pd.DataFrame, *, sep: str = ", ") -> pd.Series:
    """Row-wise join of the non-NA strings in ``parts``; NA when all are NA."""
    joined = sum(((sep + parts[c]).fillna("") for c in parts), start=pd.Series("", index=parts.index))
    return joined.str[len(sep) :].replace({"": pd.NA}).astype("string")


def _wbc(frame: pd.DataFrame) -> pd.DataFrame:
    """The WBC rows of a (patient_key, analyte)-indexed frame, indexed by patient_key."""
    return frame[frame.index.get_level_values("analyte") == "wbc"].droplevel("analyte")


def _tuples(values: pd.Series, patients: pd.Index) -> pd.Series:
    """Per patient, a tuple of ``values`` in order; empty for patients without any."""
    grouped = values.groupby(level=0, sort=False).agg(tuple)
    out = pd.Series([()] * len(patients), index=patients, dtype=object)
    out.loc[grouped.index] = grouped
    return out
