"""Grade cytopenias (CTCAE), name neutropenia severity, and flag significant changes (RCV).

The rules and their primary sources are in docs/clinical-basis.md: CTCAE v5.0 and v6.0 thresholds (NCI
CTCAE v5.0, 2017), neutropenia severity, and reference change values from biological variation (Statland et
al. 1978, Dot et al. 1992, Fokkema et al. 2006). Values are in canonical units
(``monitor.analytes``: counts in 10^9/L, haemoglobin in g/dL). Reference ranges: ``analysis.ranges_default``.

Comparisons use the value as stored, rounded to ``COMPARE_DECIMALS`` places only to absorb floating-point
noise from unit conversion (so 1500 /uL -> 1.5 is never 1.4999999); labs report at most 3 decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis.ranges_default import DEFAULT_RANGES, RANGE_SOURCES, DefaultRange, resolve_lower_limit
from monitor.analysis.setting_values import a_number
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.formats.units import HGB_FACTORS, unit_key

__all__ = [
    "CTCAE",
    "CTCAE_V5",
    "CTCAE_V6",
    "DEFAULT_RANGES",
    "DEFAULT_RULES",
    "NEUTROPENIA_SEVERITY",
    "RANGE_SOURCES",
    "RCV_INPUTS",
    "CtcaeCriteria",
    "CtcaeHighTerm",
    "CtcaeTerm",
    "DefaultRange",
    "GradingRules",
    "PrintedColumn",
    "RcvInput",
    "SeverityBands",
    "ctcae_grade",
    "ctcae_high_grade",
    "neutropenia_severity",
    "rcv_bounds",
    "resolve_lower_limit",
    "significant_change",
]

COMPARE_DECIMALS = 6
COMPARATORS = ("<", "<=", ">", ">=")
# Comparators as feeds write them, read as the canonical form (blank is none).
COMPARATOR_SPELLINGS: dict[str, str | pd.api.typing.NAType] = {"": pd.NA, "≤": "<=", "≥": ">="}


@dataclass(frozen=True, slots=True)
class CtcaeTerm:
    """One CTCAE "decreased" term as absolute thresholds, in the analyte's canonical unit.

    ``bounds`` descend; CTCAE's "<A - B" means A > x >= B (docs/clinical-basis.md, Boundaries and censored
    values), so a value below ``bounds[i]`` is at least grade ``first_absolute_grade + i``. When
    ``grade1_below_lln``, a value at or above ``bounds[0]`` is grade 1 below the result's LLN, 0 at or above
    it, and undeterminable without it (docs/clinical-basis.md, Grade 1 and the lower limit of normal).
    """

    analyte: str
    term: str
    unit: str
    bounds: tuple[float, ...]
    first_absolute_grade: int = 2
    grade1_below_lln: bool = True
    printed: tuple[PrintedColumn, ...] = ()


@dataclass(frozen=True, slots=True)
class PrintedColumn:
    """A CTCAE column printed in another unit than the canonical one, whose numbers are not an exact
    conversion of the canonical column's (Anemia: 10.0 g/dL is printed as 6.2 mmol/L, which is 9.990 g/dL).

    A result the lab reported in one of ``spellings`` (compared as ``units.unit_key`` gives them) is graded
    against ``bounds`` in that unit, its value converted back with the factor ``units`` used at import
    (docs/clinical-basis.md, Grading in the reported unit).
    """

    unit: str
    spellings: tuple[str, ...]
    factor: float
    bounds: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CtcaeHighTerm:
    """One CTCAE "increased" term as absolute thresholds, in the analyte's canonical unit.

    ``bounds`` ascend; CTCAE's ">A - B" means A < x <= B and a final ">A" means x > A (docs/clinical-basis.md,
    High counts), so a value above ``bounds[i]`` is at least grade ``first_grade + i``. Grades CTCAE defines
    only clinically (Leukocytosis grade 4: "clinical manifestations of leucostasis") are never assigned.
    """

    analyte: str
    term: str
    unit: str
    bounds: tuple[float, ...]
    first_grade: int


@dataclass(frozen=True, slots=True)
class CtcaeCriteria:
    """A CTCAE version's laboratory-gradable haematology terms.

    v5.0: NCI CTCAE v5.0 (27 Nov 2017) as transcribed in pharmaverse/admiral
    ``data-raw/adlb_grading/ncictcaev5.json``; the NCI PDF itself was not opened. Anemia is converted from
    g/L to g/dL (100 g/L = 10.0 g/dL, 80 g/L = 8.0 g/dL); its grade 4 is clinical, not lab-derivable.
    v6.0: admiral ``ncictcaev6.json``, UNVERIFIED against the NCI v6.0 document (2025). Sources and links:
    docs/clinical-basis.md, CTCAE v5.0 grading. Reviewer: pending clinical sign-off.
    """

    version: str
    source: str
    verified: bool
    terms: tuple[CtcaeTerm, ...]
    high_terms: tuple[CtcaeHighTerm, ...] = ()

    def term(self, analyte: str) -> CtcaeTerm | None:
        """The term graded for ``analyte``, or None."""
        return next((t for t in self.terms if t.analyte == analyte), None)

    def high_term(self, analyte: str) -> CtcaeHighTerm | None:
        """The "increased" term graded for ``analyte``, or None (CTCAE has none for the neutrophils)."""
        return next((t for t in self.high_terms if t.analyte == analyte), None)


_WBC = CtcaeTerm("wbc", "White blood cell decreased", "10^9/L", (3.0, 2.0, 1.0))
# CTCAE v5.0 Anemia as printed: grade 1 < LLN - 10.0 g/dL; < LLN - 6.2 mmol/L; < LLN - 100 g/L; grade 2
# < 10.0 - 8.0 g/dL; < 6.2 - 4.9 mmol/L; < 100 - 80 g/L; grade 3 < 8.0 g/dL; < 4.9 mmol/L; < 80 g/L. The
# g/L column is exactly 10 x the g/dL one; the mmol/L column is not (6.2 mmol/L is 9.99 g/dL), so a result
# reported in mmol/L is graded against the mmol/L column.
_ANEMIA = CtcaeTerm(
    "hgb",
    "Anemia",
    "g/dL",
    (10.0, 8.0),
    printed=(
        PrintedColumn("mmol/L", ("mmol/l",), HGB_FACTORS["mmol/l"], (6.2, 4.9)),
        PrintedColumn("g/L", ("g/l",), HGB_FACTORS["g/l"], (100.0, 80.0)),
    ),
)
CTCAE_V5 = CtcaeCriteria(
    "5.0",
    "NCI CTCAE v5.0 (2017) via pharmaverse/admiral ncictcaev5.json",
    True,
    (
        _WBC,
        CtcaeTerm("anc", "Neutrophil count decreased", "10^9/L", (1.5, 1.0, 0.5)),
        CtcaeTerm("alc", "Lymphocyte count decreased", "10^9/L", (0.8, 0.5, 0.2)),
        CtcaeTerm("plt", "Platelet count decreased", "10^9/L", (75.0, 50.0, 25.0)),
        _ANEMIA,
    ),
    (
        # Leukocytosis: grades 1 and 2 "-", grade 3 ">100,000/mm3", grade 4 "Clinical manifestations of
        # leucostasis; urgent intervention indicated" (clinical: never from a count).
        CtcaeHighTerm("wbc", "Leukocytosis", "10^9/L", (100.0,), 3),
        # Lymphocyte count increased: grade 2 ">4000/mm3 - 20,000/mm3", grade 3 ">20,000/mm3".
        CtcaeHighTerm("alc", "Lymphocyte count increased", "10^9/L", (4.0, 20.0), 2),
    ),
)
# v6.0: neutrophil grade 1 no longer refers to the LLN; "Thrombocytopenia" replaces "Platelet count
# decreased" with grade 4 below 10; WBC and Anemia unchanged; no "Lymphocyte count decreased"
# (docs/clinical-basis.md, CTCAE v6.0 (unverified transcription)).
CTCAE_V6 = CtcaeCriteria(
    "6.0",
    "NCI CTCAE v6.0 (2025) via pharmaverse/admiral ncictcaev6.json, UNVERIFIED",
    False,
    (
        _WBC,
        CtcaeTerm("anc", "Neutrophil count decreased", "10^9/L", (1.5, 1.0, 0.5, 0.1), 1, False),
        CtcaeTerm("plt", "Thrombocytopenia", "10^9/L", (75.0, 50.0, 10.0)),
        _ANEMIA,
    ),
    # Lymphocyte count increased unchanged from v5.0; Leukocytosis not transcribed (no grade under v6.0).
    (CtcaeHighTerm("alc", "Lymphocyte count increased", "10^9/L", (4.0, 20.0), 2),),
)
CTCAE = {criteria.version: criteria for criteria in (CTCAE_V5, CTCAE_V6)}


@dataclass(frozen=True, slots=True)
class SeverityBands:
    """Neutropenia severity by ANC, half-open like CTCAE (lower bound inclusive).

    Mild [1.0, 1.5), moderate [0.5, 1.0), severe < 0.5 (ASCO/IDSA 2018, Taplitz RA et al., J Clin Oncol
    2018;36:3043-54), profound < 0.1 x10^9/L (IDSA-derived pathway); docs/clinical-basis.md, Severity
    bands. Reviewer: pending clinical sign-off.
    """

    bounds: tuple[float, ...] = (1.5, 1.0, 0.5, 0.1)
    labels: tuple[str, ...] = ("mild", "moderate", "severe", "profound")


NEUTROPENIA_SEVERITY = SeverityBands()


def _check_cvs(cv_analytical: float, cv_within: float) -> None:
    for name, cv in (("cv_analytical", cv_analytical), ("cv_within", cv_within)):
        if not 0 <= cv < 1:
            raise ValueError(f"{name} is a fraction (0.015 for 1.5 %), not {cv}")


@dataclass(frozen=True, slots=True)
class RcvInput:
    """Analytical (CVA) and within-subject (CVI) coefficients of variation, as fractions.

    Sources: docs/clinical-basis.md, Reference change values.
    """

    analyte: str
    cv_analytical: float
    cv_within: float
    source: str

    def __post_init__(self) -> None:
        _check_cvs(self.cv_analytical, self.cv_within)


def _cv_source(analytical: str, within: str) -> str:
    """Where a default pair of CVs comes from, as the Settings page shows it."""
    return f"CVA {analytical}; CVI {within}; see docs/clinical-basis.md, Reference change values"


_STATLAND = "Statland et al. 1978, week-to-week"
RCV_INPUTS: tuple[RcvInput, ...] = (
    # CVI 10.8 % is for men (women 15.7 %): the smaller CVI flags more changes.
    RcvInput("wbc", 0.015, 0.108, _cv_source("Sysmex XN-10 (Pighi et al.)", "Dot et al. 1992, men")),
    RcvInput("anc", 0.019, 0.260, _cv_source("Sysmex XN-10 (Pighi et al.)", _STATLAND)),
    RcvInput("alc", 0.020, 0.132, _cv_source("2 % assumed", _STATLAND)),
    RcvInput("amc", 0.050, 0.193, _cv_source("5 % assumed", _STATLAND)),
)


@dataclass(frozen=True, slots=True)
class GradingRules:
    """Site-configurable grading settings; the defaults and their sources.

    * ``ctcae_version``: "5.0" (NCI CTCAE v5.0, 2017); "6.0" is an UNVERIFIED transcription. Never mix
      versions in one graded series (docs/clinical-basis.md, CTCAE v5.0 grading).
    * ``rcv_z``: 1.645, one-sided 95 %, for a significant fall (docs/clinical-basis.md, Reference change
      values).
    * ``rcv_inputs``: CVs per analyte, ``RCV_INPUTS``; use the lab's own QC CV when known.
    """

    ctcae_version: str = "5.0"
    rcv_z: float = 1.645
    rcv_inputs: tuple[RcvInput, ...] = RCV_INPUTS

    def __post_init__(self) -> None:
        if self.ctcae_version not in CTCAE:
            raise ValueError(f"ctcae_version {self.ctcae_version!r} is not one of {sorted(CTCAE)}")
        if not self.rcv_z > 0:
            raise ValueError(f"rcv_z must be positive, not {self.rcv_z}")
        analytes = [i.analyte for i in self.rcv_inputs]
        if len(set(analytes)) != len(analytes):
            raise ValueError(f"rcv_inputs lists an analyte twice: {analytes}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> GradingRules:
        """Rules from site configuration; unset keys keep their defaults, unknown keys are errors.

        ``rcv_inputs`` maps an analyte to any of ``cv_analytical``, ``cv_within`` (fractions) and
        ``source``; an analyte not listed keeps its default CVs.

        >>> rules = GradingRules.from_mapping({"rcv_z": 1.96, "rcv_inputs": {"wbc": {"cv_within": 0.157}}})
        >>> rules.rcv_z, rules.rcv_inputs[0].cv_within, rules.rcv_inputs[0].source
        (1.96, 0.157, 'site configuration')
        """
        unknown = set(mapping) - {"ctcae_version", "rcv_z", "rcv_inputs"}
        if unknown:
            raise ValueError(f"unknown grading settings: {sorted(unknown)}")
        inputs = {item.analyte: item for item in RCV_INPUTS}
        for analyte, given in (mapping.get("rcv_inputs") or {}).items():
            if set(given) - {"cv_analytical", "cv_within", "source"}:
                raise ValueError(f"rcv_inputs.{analyte} takes cv_analytical, cv_within, source: {given}")
            fields = {"source": "site configuration", **given}
            base = inputs.get(analyte)
            inputs[analyte] = replace(base, **fields) if base else RcvInput(analyte=analyte, **fields)
        settings: dict[str, Any] = {"rcv_inputs": tuple(inputs.values())}
        if "ctcae_version" in mapping:
            settings["ctcae_version"] = str(mapping["ctcae_version"])
        if "rcv_z" in mapping:
            settings["rcv_z"] = a_number("rcv_z", mapping["rcv_z"])
        return cls(**settings)


DEFAULT_RULES = GradingRules()


def ctcae_grade(
    results: pd.DataFrame, *, version: str | None = None, rules: GradingRules = DEFAULT_RULES
) -> pd.Series:
    """CTCAE grade of each result: 0 (not low), 1-4, or NA (no term, no value, or grade 1 without LLN).

    Grades 2-4 are absolute; grade 1 needs the result's own LLN (CTCAE v5.0), so a lab or Duffy-null
    LLN below the grade-2 bound leaves grade 1 empty and an ANC of 1.3 is grade 2 although "normal".
    A censored value gets the grade that is certain, the least severe one its bound allows: "<0.6" ANC is
    grade 3 (it could be 4), "<0.1" is grade 4, "<=B" is graded as B. A ">B" value is graded as B (which
    is the most severe grade it allows; such values are high and grade 0 in practice).

    Parameters
    ----------
    results : pd.DataFrame
        ``analyte``, ``value``, ``lln`` (NaN when unknown), optionally ``comparator`` ("<", "<=", ">",
        ">=" or NA), ``unit`` (checked against the canonical unit when present) and ``unit_raw`` (the
        unit the lab reported: a haemoglobin reported in mmol/L or g/L is graded against CTCAE's column
        for that unit, so 6.2 mmol/L is grade 1 although it is 9.99 g/dL).
    version : str, optional
        "5.0" or "6.0"; ``rules.ctcae_version`` when not given.
    rules : GradingRules
        Site settings.

    Returns
    -------
    pd.Series
        Nullable ``Int64`` grades named ``grade``, aligned to ``results.index``.

    Examples
    --------
    >>> results = pd.DataFrame({"analyte": ["wbc", "wbc", "anc", "anc"], "value": [3.0, 2.0, 1.3, 1.7],
    ...     "lln": [4.0, None, 1.21, None]})
    >>> ctcae_grade(results).tolist()
    [1, 2, 2, <NA>]
    >>> hb = pd.DataFrame({"analyte": "hgb", "value": [9.990332, 7.895585], "lln": 12.0,
    ...     "unit_raw": "mmol/L"})
    >>> ctcae_grade(hb).tolist()
    [1, 2]
    """
    criteria = CTCAE[_known_version(version or rules.ctcae_version)]
    _require(results, ("analyte", "value", "lln"), "ctcae_grade")
    value = _rounded(results["value"])
    lln = _rounded(results["lln"])
    strict = _strictly_below(results.get("comparator"), len(results))
    grade = np.full(len(results), np.nan)
    for term in criteria.terms:
        rows = results["analyte"].eq(term.analyte).fillna(False).to_numpy(dtype=bool)
        if "unit" in results:
            units = results["unit"][rows]
            if (units.notna() & units.ne(term.unit)).any():
                wrong = sorted(units[units.ne(term.unit)].dropna().unique())
                raise ValueError(f"{term.analyte} must be in {term.unit} to grade, not {wrong}")
        level = _level(value[rows], strict[rows], term.bounds)
        if term.printed and "unit_raw" in results:
            reported = unit_key(results["unit_raw"][rows]).to_numpy()
            for column in term.printed:
                mine = np.isin(reported, column.spellings)
                in_unit = np.round(value[rows][mine] / column.factor, COMPARE_DECIMALS)
                level[mine] = _level(in_unit, strict[rows][mine], column.bounds)
        absolute = np.where(level > 0, term.first_absolute_grade - 1 + level, 0).astype(float)
        if term.grade1_below_lln:
            # "<B" is certainly below the LLN only when B <= LLN.
            below = np.where(strict[rows], value[rows] <= lln[rows], value[rows] < lln[rows])
            grade1 = np.where(np.isnan(lln[rows]), np.nan, below.astype(float))
            absolute = np.where(level > 0, absolute, grade1)
        grade[rows] = np.where(np.isnan(value[rows]), np.nan, absolute)
    return pd.Series(grade, index=results.index, name="grade").astype("Int64")


def ctcae_high_grade(
    results: pd.DataFrame, *, version: str | None = None, rules: GradingRules = DEFAULT_RULES
) -> pd.Series:
    """CTCAE grade of each result by the version's "increased" terms: 0 (not above the term's first
    threshold), the grade, or NA (no such term for the analyte, or no value).

    v5.0 grades WBC by "Leukocytosis" (grade 3 above 100 x10^9/L; its grade 4 is clinical, leucostasis, and
    never assigned) and ALC by "Lymphocyte count increased" (grade 2 above 4.0, grade 3 above 20.0); it has
    no term for a high neutrophil count. ">A - B" means A < x <= B: a value equal to a threshold is not above
    it. A censored value gets the grade that is certain: ">100" is above 100 (grade 3), ">=100" is not
    certainly above it, and "<B" or "<=B" is never certainly above anything (grade 0).

    Parameters
    ----------
    results : pd.DataFrame
        ``analyte``, ``value``, optionally ``comparator``.
    version : str, optional
        "5.0" or "6.0"; ``rules.ctcae_version`` when not given.
    rules : GradingRules
        Site settings.

    Returns
    -------
    pd.Series
        Nullable ``Int64`` grades named ``high_grade``, aligned to ``results.index``.

    Examples
    --------
    >>> results = pd.DataFrame({"analyte": ["wbc", "wbc", "alc", "alc", "alc", "anc"],
    ...     "value": [100.0, 100.01, 4.0, 20.0, 20.01, 58.0]})
    >>> ctcae_high_grade(results).tolist()
    [0, 3, 0, 2, 3, <NA>]
    """
    criteria = CTCAE[_known_version(version or rules.ctcae_version)]
    _require(results, ("analyte", "value"), "ctcae_high_grade")
    value = _rounded(results["value"])
    comparator = _comparators(results.get("comparator"), len(results))
    # ">B" is strictly above B (above A when B >= A); "<B" and "<=B" are never certainly above anything.
    strict = comparator.eq(">").fillna(False).to_numpy(dtype=bool)
    below = comparator.isin(["<", "<="]).fillna(False).to_numpy(dtype=bool)
    grade = np.full(len(results), np.nan)
    for term in criteria.high_terms:
        rows = results["analyte"].eq(term.analyte).fillna(False).to_numpy(dtype=bool)
        edges = np.asarray(term.bounds)[None, :]
        mine = value[rows][:, None]
        above = np.where(strict[rows][:, None], mine >= edges, mine > edges) & ~below[rows][:, None]
        level = above.sum(axis=1)
        graded = np.where(level > 0, term.first_grade - 1 + level, 0).astype(float)
        grade[rows] = np.where(np.isnan(value[rows]), np.nan, graded)
    return pd.Series(grade, index=results.index, name="high_grade").astype("Int64")


def neutropenia_severity(anc: pd.Series, *, comparator: pd.Series | None = None) -> pd.Series:
    """Neutropenia severity of each ANC (10^9/L): "profound", "severe", "moderate", "mild" or "".

    Half-open bands (docs/clinical-basis.md, Severity bands): mild [1.0, 1.5), moderate [0.5, 1.0), severe
    < 0.5, profound < 0.1.
    A censored "<B" value gets the least severe label its bound allows, as in ``ctcae_grade``.

    Parameters
    ----------
    anc : pd.Series
        Absolute neutrophil counts in 10^9/L.
    comparator : pd.Series, optional
        "<", "<=", ">", ">=" or NA per value, aligned to ``anc``.

    Returns
    -------
    pd.Series
        ``string`` labels named ``severity``, NA where the count is missing.

    Examples
    --------
    >>> neutropenia_severity(pd.Series([1.5, 1.0, 0.5, 0.05, None])).tolist()
    ['', 'mild', 'moderate', 'profound', <NA>]
    """
    value = _rounded(anc)
    strict = _strictly_below(comparator, len(anc))
    level = _level(value, strict, NEUTROPENIA_SEVERITY.bounds)
    labels = np.array(("", *NEUTROPENIA_SEVERITY.labels), dtype=object)[level]
    return pd.Series(labels, index=anc.index, name="severity", dtype="string").mask(np.isnan(value))


def rcv_bounds(cv_analytical: float, cv_within: float, *, z: float = 1.645) -> tuple[float, float]:
    """Log-normal (asymmetric) reference change value as fractions ``(down, up)``.

    sigma = sqrt(ln(CVA^2 + 1) + ln(CVI^2 + 1)); RCV = exp(+/- Z * sqrt(2) * sigma) - 1 (Fokkema MR et al.,
    Clin Chem 2006;52:1602-3; docs/clinical-basis.md, Reference change values). Cell counts are
    right-skewed and cannot fall by more than 100 %.

    Parameters
    ----------
    cv_analytical, cv_within : float
        Analytical and within-subject CVs as fractions (0.015 for 1.5 %).
    z : float
        1.645 one-sided 95 % (default), 1.96 two-sided 95 %.

    Returns
    -------
    tuple of float
        The largest fall and rise (fractions of the earlier value) expected from noise alone.

    Examples
    --------
    >>> [round(b, 3) for b in rcv_bounds(0.015, 0.108)]
    [-0.223, 0.288]
    """
    _check_cvs(cv_analytical, cv_within)
    spread = z * math.sqrt(2.0) * math.sqrt(math.log1p(cv_analytical**2) + math.log1p(cv_within**2))
    return math.expm1(-spread), math.expm1(spread)


def significant_change(results: pd.DataFrame, *, rules: GradingRules = DEFAULT_RULES) -> pd.DataFrame:
    """Change from the previous result of the same patient and analyte, and whether it exceeds the RCV.

    Withdrawn results (``status`` in ``EXCLUDED_STATUSES``), censored values (a ``comparator``) and
    results without a value or time are skipped: they get no change and are never the previous result.
    A change at or beyond a bound is significant; analytes without ``rules.rcv_inputs`` get NA flags.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key``, ``analyte``, ``collected_at``, ``value``; optionally ``status``, ``comparator``.
    rules : GradingRules
        ``rcv_z`` and ``rcv_inputs``.

    Returns
    -------
    pd.DataFrame
        ``previous_value``, ``previous_at``, ``change`` (fraction, value / previous - 1),
        ``significant_fall`` and ``significant_rise`` (nullable boolean), aligned to ``results.index``.

    Examples
    --------
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": "wbc", "value": [6.0, 4.0, 3.9],
    ...     "collected_at": pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-15"], utc=True)})
    >>> significant_change(results)["significant_fall"].tolist()
    [<NA>, True, False]
    """
    keys = ["patient_key", "analyte", "collected_at", "value"]
    _require(results, keys, "significant_change")
    work = results.reset_index(drop=True)
    usable = work["value"].notna() & work["collected_at"].notna()
    usable &= _comparators(work.get("comparator"), len(work)).isna().to_numpy()
    if "status" in work:
        usable &= ~work["status"].isin(EXCLUDED_STATUSES)
    series = work.loc[usable, keys].sort_values(keys[:3], kind="stable")
    grouped = series.groupby(keys[:2], sort=False)
    previous = grouped["value"].shift()
    change = (series["value"] / previous - 1).where(previous > 0)
    limits = {i.analyte: rcv_bounds(i.cv_analytical, i.cv_within, z=rules.rcv_z) for i in rules.rcv_inputs}
    down = series["analyte"].map({analyte: low for analyte, (low, _) in limits.items()}).astype("float64")
    up = series["analyte"].map({analyte: high for analyte, (_, high) in limits.items()}).astype("float64")
    known = change.notna() & down.notna()
    changes = pd.DataFrame(
        {
            "previous_value": previous.astype("float64"),
            "previous_at": grouped["collected_at"].shift(),
            "change": change.astype("float64"),
            "significant_fall": (change <= down).astype("boolean").where(known),
            "significant_rise": (change >= up).astype("boolean").where(known),
        }
    )
    return changes.reindex(work.index).set_axis(results.index)


def _known_version(version: str) -> str:
    if version not in CTCAE:
        raise ValueError(f"CTCAE version {version!r} is not one of {sorted(CTCAE)}")
    return version


def _require(results: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> None:
    missing = [c for c in columns if c not in results]
    if missing:
        raise ValueError(f"{where} needs columns {missing}; the frame has {list(results.columns)}")


def _rounded(values: pd.Series) -> np.ndarray:
    return np.round(pd.to_numeric(values).astype("float64").to_numpy(), COMPARE_DECIMALS)


def _comparators(comparator: pd.Series | None, length: int) -> pd.Series:
    """Comparators as "<", "<=", ">", ">=" or NA (blank is NA; "≤"/"≥" are spelled out)."""
    if comparator is None:
        return pd.Series(pd.NA, index=range(length), dtype="string")
    text = comparator.astype("string").str.strip().replace(COMPARATOR_SPELLINGS)
    unknown = text.notna() & ~text.isin(COMPARATORS)
    if unknown.any():
        raise ValueError(f"unknown comparators {sorted(text[unknown].unique())}; use one of {COMPARATORS}")
    return text.reset_index(drop=True)


def _strictly_below(comparator: pd.Series | None, length: int) -> np.ndarray:
    """True where a value is censored "<B" (the true value is strictly below B)."""
    return _comparators(comparator, length).eq("<").fillna(False).to_numpy(dtype=bool)


def _level(value: np.ndarray, strict: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    """How many of the descending bounds each value is certainly below ("<B" is below every b >= B)."""
    edges = np.asarray(bounds)[None, :]
    below = np.where(strict[:, None], value[:, None] <= edges, value[:, None] < edges)
    levels: np.ndarray = below.sum(axis=1)  # (numpy's stubs type a reduction along an axis as Any)
    return levels
