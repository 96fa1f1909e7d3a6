"""Treatment cycles (oncology): nadir, recovery, G-CSF and readiness per chemotherapy cycle (issue 4).

A ``chemotherapy`` event starts a cycle, which runs to the next one or for ``CycleRules.default_cycle_days``
(28) when none follows. Results are aligned to whole days since the cycle's start: the start is day 0, so
``C2D8`` (the dashboard's notation, D1 = day 0) is day 7 of cycle 2. Two chemotherapy events at the same
time start one cycle. Everything is computed for every patient at once.

Facts and sources: nadir timing and readiness thresholds, reference §7.1 and §7.3; G-CSF, §7.4; grades,
``analysis.grading``. Defaults without a published source (the 28-day open cycle, the cross-cycle trend
rules) are project choices awaiting clinical sign-off and are marked so on ``CycleRules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis.grading import COMPARE_DECIMALS, DEFAULT_RULES, GradingRules, ctcae_grade, rcv_bounds
from monitor.analysis.setting_values import a_boolean, a_number, a_whole_number
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.timestamps import local_days, localize

__all__ = [
    "COMPARISON_COLUMNS",
    "CYCLE_COLUMNS",
    "DEFAULT_CYCLE_RULES",
    "CycleRules",
    "Readiness",
    "before_after",
    "cycle_table",
    "readiness_now",
    "cycle_days",
    "cycle_notation",
    "cycle_trend",
    "treatment_cycles",
]

CYCLE_COLUMNS = (
    "patient_key",
    "cycle",
    "start",
    "end",
    "label",
    "regimen",
    "nadir_anc",
    "nadir_anc_comparator",
    "nadir_day",
    "nadir_anc_grade",
    "nadir_wbc",
    "nadir_wbc_comparator",
    "nadir_wbc_day",
    "nadir_wbc_grade",
    "days_grade3_plus_min",
    "days_grade3_plus_max",
    "recovery_day",
    "recovery_after_day",
    "anc_results",
    "nadir_sampled",
    "gcsf",
    "fever",
    "febrile_neutropenia",
    "length_days",
    "next_start",
    "ready_anc",
    "ready_plt",
    "ready_at_next",
    "readiness",
)
COMPARISON_COLUMNS = (
    "event_key",
    "analyte",
    "n_before",
    "median_before",
    "min_before",
    "max_before",
    "n_after",
    "median_after",
    "min_after",
    "max_after",
)
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Readiness:
    """Counts needed before the next cycle (x10^9/L); ``inclusive`` means "at or above".

    Default ANC >= 1.5 and platelets >= 100: the dashboard default of reference §7.3 (paclitaxel and
    docetaxel labels; the paclitaxel label writes ">", hence ``inclusive``).
    """

    anc_min: float = 1.5
    plt_min: float = 100.0
    inclusive: bool = True

    def __post_init__(self) -> None:
        for name in ("anc_min", "plt_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"readiness {name} must be a positive number, not {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Readiness:
        unknown = set(mapping) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown readiness settings: {sorted(unknown)}")
        settings = {k: a_number(f"readiness {k}", v) for k, v in mapping.items() if k != "inclusive"}
        if "inclusive" in mapping:
            settings["inclusive"] = a_boolean("readiness inclusive", mapping["inclusive"])
        return cls(**settings)

    def describe(self) -> str:
        sign = ">=" if self.inclusive else ">"
        return f"ANC {sign} {self.anc_min:g} and platelets {sign} {self.plt_min:g}"


@dataclass(frozen=True, slots=True)
class CycleRules:
    """Site-configurable cycle rules; the defaults and their sources.

    * ``default_cycle_days`` = 28: a cycle with no following chemotherapy ends 28 days after its start
      (project issue 4).
    * ``recovery_anc`` = 1.5: recovery is the first ANC at or above 1.5 x10^9/L after the nadir (the adult
      neutropenia bound and readiness ANC, reference §2.1 and §7.3).
    * ``readiness_window_days`` = 3: readiness is judged on the last ANC and platelets in the 3 days before
      the next start (project issue 4).
    * ``readiness`` and ``regimens``: the default readiness rule (reference §7.3) and rules per regimen,
      keyed by the regimen named in the chemotherapy event's details (case-insensitive).
    * ``nadir_window_days`` = (7, 14): a cycle's nadir is taken as sampled when an ANC was measured on days
      7 to 14 (reference §7.1: "nadir window ≈ day 7-14 of a 21-day cycle for most regimens"; set it per
      site for regimens with other timing). Only such cycles enter the cross-cycle trend.
    * ``trend_min_cycles`` = 2 and ``recovery_delay_days`` = 3: the nadir ANC is "deepening" when, over
      the cycles whose nadir was sampled, the last nadir is below the first by more than the ANC reference
      change value (reference §6) and the median change per cycle is a fall; recovery is "slower" when the
      last observed recovery comes at least 3 days later in its cycle than the first observed one (project
      choices, pending clinical sign-off).
    """

    default_cycle_days: int = 28
    recovery_anc: float = 1.5
    readiness_window_days: int = 3
    readiness: Readiness = Readiness()
    regimens: Mapping[str, Readiness] = field(default_factory=dict)
    nadir_window_days: tuple[int, int] = (7, 14)
    trend_min_cycles: int = 2
    recovery_delay_days: int = 3
    grading: GradingRules = DEFAULT_RULES

    def __post_init__(self) -> None:
        for name in (
            "default_cycle_days",
            "readiness_window_days",
            "trend_min_cycles",
            "recovery_delay_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if not self.recovery_anc > 0:
            raise ValueError(f"recovery_anc must be positive, not {self.recovery_anc!r}")
        first, last = self.nadir_window_days
        if not 0 <= first <= last:
            raise ValueError(
                f"nadir_window_days must be two days, first <= last, not {self.nadir_window_days}"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CycleRules:
        """Rules from site configuration; unset keys keep their defaults, unknown keys are errors.

        >>> rules = CycleRules.from_mapping({"regimens": {"AC-T": {"anc_min": 1.0, "plt_min": 75}}})
        >>> rules.regimens["ac-t"].describe(), rules.readiness.describe()
        ('ANC >= 1 and platelets >= 75', 'ANC >= 1.5 and platelets >= 100')
        """
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError(f"unknown cycle settings: {sorted(unknown)}")
        settings: dict[str, Any] = {}
        for name in (
            "default_cycle_days",
            "readiness_window_days",
            "trend_min_cycles",
            "recovery_delay_days",
        ):
            if name in mapping:
                settings[name] = a_whole_number(name, mapping[name])
        if "recovery_anc" in mapping:
            settings["recovery_anc"] = a_number("recovery_anc", mapping["recovery_anc"])
        if "nadir_window_days" in mapping:
            window = mapping["nadir_window_days"]
            if not isinstance(window, list | tuple) or len(window) != 2:
                raise ValueError(f"nadir_window_days is two days, e.g. [7, 14], not {window!r}")
            settings["nadir_window_days"] = tuple(a_whole_number("nadir_window_days", day) for day in window)
        if "readiness" in mapping:
            settings["readiness"] = Readiness.from_mapping(mapping["readiness"] or {})
        if "regimens" in mapping:
            settings["regimens"] = {
                str(name).strip().lower(): Readiness.from_mapping(rule or {})
                for name, rule in (mapping["regimens"] or {}).items()
            }
        if "grading" in mapping:
            settings["grading"] = GradingRules.from_mapping(mapping["grading"] or {})
        return cls(**settings)


DEFAULT_CYCLE_RULES = CycleRules()


def cycle_notation(day: int | float | None) -> str:
    """``day`` since the cycle start in the D# notation, where D1 is the start day.

    >>> cycle_notation(0), cycle_notation(7), cycle_notation(None)
    ('D1', 'D8', '')
    """
    return "" if day is None or pd.isna(day) else f"D{int(day) + 1}"


def cycle_days(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """``results`` inside a cycle, with ``cycle``, ``cycle_start`` and ``day`` (calendar days since the
    start's day in ``timezone``, the site's).

    For overlaying the counts of several cycles on one axis. Columns of ``results`` are kept.
    """
    cycles = _cycles(events, rules, timezone)
    return _in_cycles(_usable(results), cycles, timezone)


def treatment_cycles(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """One row per chemotherapy cycle of every patient: nadir, recovery, G-CSF, readiness at the next start.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key``, ``collected_at`` (tz-aware), ``analyte``, ``value``; optionally ``lln``,
        ``comparator`` and ``status`` (withdrawn results are ignored).
    events : pd.DataFrame
        ``patient_key``, ``kind``, ``start_at`` (tz-aware); optionally ``label`` and ``details`` (the
        regimen, for per-regimen readiness rules).
    rules : CycleRules
        Site rules.
    timezone : str
        The site's time zone: days are calendar days there (a count drawn at 08:00 a week after a
        chemotherapy given at noon is on day 7, D8; a day when the clocks change is still one day).

    Returns
    -------
    pd.DataFrame
        Columns ``CYCLE_COLUMNS``, sorted by patient and cycle (1-based). Days are calendar days since the
        start's day (day 0). Counts are samples, so durations are bounds: ``days_grade3_plus_min`` is the time
        confirmed at CTCAE grade 3 or worse (from the first to the last of each run of such ANCs; 0 for a
        single one) and ``days_grade3_plus_max`` the time until the ANC was next seen better (NA when the
        cycle's last ANC is still at grade 3 or worse); both 0 when no ANC reached grade 3.
        ``recovery_day`` is the first ANC at or above ``recovery_anc`` after a nadir below it (NA when the
        nadir was not below it, or no recovery was seen) and ``recovery_after_day`` the day of the count
        before it: recovery happened in between. ``fever`` describes recorded fevers of the cycle with the
        ANC nearest them (within a day); ``febrile_neutropenia`` is True when one meets CTCAE v5.0 grade 3
        (ANC < 1.0 with a single temperature > 38.3 °C, reference §1.1, §7.5), NA when that cannot be told
        (no temperature written, 38.0-38.3 °C whose duration is unknown, or no ANC within a day).
        ``length_days`` is the time to the next start (a postponed cycle is longer than planned).
        ``ready_at_next`` is True or False from the last ANC and platelets in the window before the next
        start, NA when a count is missing or there is no next cycle; ``readiness`` says why.

    Examples
    --------
    >>> start = pd.Timestamp("2026-03-02", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["chemotherapy", "gcsf", "chemotherapy"],
    ...     "start_at": [start, start + pd.Timedelta(days=1), start + pd.Timedelta(days=21)]})
    >>> days = [0, 7, 10, 14, 20, 20]
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc"] * 5 + ["plt"],
    ...     "value": [4.1, 0.8, 0.4, 1.6, 2.5, 180.0], "lln": 1.5,
    ...     "collected_at": [start + pd.Timedelta(days=d) for d in days]})
    >>> cycles = treatment_cycles(results, events)
    >>> cycles[["cycle", "nadir_anc", "nadir_day", "nadir_anc_grade"]].to_dict("records")
    [{'cycle': 1, 'nadir_anc': 0.4, 'nadir_day': 10, 'nadir_anc_grade': 4},
     {'cycle': 2, 'nadir_anc': nan, 'nadir_day': None, 'nadir_anc_grade': None}]
    >>> spells = ["days_grade3_plus_min", "days_grade3_plus_max", "recovery_after_day", "recovery_day"]
    >>> cycles[spells].iloc[0].tolist()
    [3, 7, 10, 14]
    >>> cycles[["gcsf", "length_days", "ready_at_next"]].to_dict("records")
    [{'gcsf': True, 'length_days': 21, 'ready_at_next': True},
     {'gcsf': False, 'length_days': None, 'ready_at_next': None}]
    """
    cycles = _cycles(events, rules, timezone)
    if cycles.empty:
        return pd.DataFrame(columns=list(CYCLE_COLUMNS))
    work = _usable(results)
    inside = _in_cycles(work, cycles, timezone)
    grading = rules.grading
    inside = inside.assign(grade=ctcae_grade(inside, rules=grading).astype("float64"))
    keys = ["patient_key", "cycle"]
    out = cycles.set_index(keys)
    for analyte, prefix in (("anc", "nadir_anc"), ("wbc", "nadir_wbc")):
        nadir = _nadir(inside[inside["analyte"].eq(analyte).to_numpy()], keys)
        out[prefix] = nadir["value"]
        out[f"{prefix}_comparator"] = nadir["comparator"]
        out["nadir_day" if analyte == "anc" else "nadir_wbc_day"] = nadir["day"]
        out[f"{prefix}_grade"] = nadir["grade"]
        if analyte == "anc":
            out["nadir_at"] = nadir["collected_at"]
    anc = inside[inside["analyte"].eq("anc").to_numpy()]
    severe = _grade3_plus_spells(anc, keys)
    out["days_grade3_plus_min"], out["days_grade3_plus_max"] = severe["min"], severe["max"]
    recovery = _recovery(anc, out, keys, rules.recovery_anc)
    out["recovery_day"], out["recovery_after_day"] = recovery["day"], recovery["after_day"]
    out["anc_results"] = anc.groupby(keys).size()
    first, last = rules.nadir_window_days
    in_window = anc[anc["day"].between(first, last).to_numpy(dtype=bool)]
    out["nadir_sampled"] = in_window.groupby(keys).size().gt(0)
    out["gcsf"] = _gcsf(events, cycles).reindex(out.index).fillna(False).astype(bool)
    out = out.join(_fevers(events, cycles, anc, keys, timezone))
    out["length_days"] = _calendar_days(out["start"], out["next_start"], timezone)
    out = out.join(_readiness(work, cycles, rules, timezone))
    out = out.reset_index()
    days = ("nadir_day", "nadir_wbc_day", "recovery_day", "recovery_after_day", "length_days")
    for name in (*days, "nadir_anc_grade", "nadir_wbc_grade"):
        out[name] = out[name].astype("Float64").apply(np.floor).astype("Int64")
    # 0 for a cycle without a count at grade 3+; the maximum is NA while the last count is still there.
    had_severe = pd.MultiIndex.from_frame(out[keys]).isin(severe.index)
    for name in ("days_grade3_plus_min", "days_grade3_plus_max"):
        out[name] = out[name].where(had_severe, 0).round().astype("Int64")
    out["fever"] = out["fever"].fillna("")
    out["febrile_neutropenia"] = (
        out["febrile_neutropenia"].astype("boolean").where(out["fever"].ne(""), False)
    )
    out["anc_results"] = out["anc_results"].fillna(0).astype("int64")
    out["nadir_sampled"] = out["nadir_sampled"].astype("boolean").fillna(False).astype(bool)
    return out.reindex(columns=list(CYCLE_COLUMNS))


def readiness_now(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """For patients in a chemotherapy cycle at ``as_of``: the cycle, its day and readiness if given now.

    Readiness is judged as at a next start at ``as_of`` under the same regimen: the last ANC and platelets
    of the ``readiness_window_days`` calendar days before it and of its own day (``treatment_cycles``).
    Returns columns ``patient_key``, ``cycle``, ``cycle_start``, ``cycle_day``, ``ready_now`` (True, False
    or NA) and ``readiness``.

    >>> start = pd.Timestamp("2026-03-02", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["chemotherapy"], "start_at": [start]})
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "plt"], "value": [1.2, 150.0],
    ...     "collected_at": start + pd.Timedelta(days=19)})
    >>> now = readiness_now(results, events, as_of=start + pd.Timedelta(days=20))
    >>> now[["cycle", "cycle_day", "ready_now"]].to_dict("records")
    [{'cycle': 1, 'cycle_day': 20, 'ready_now': False}]
    """
    columns = ["patient_key", "cycle", "cycle_start", "cycle_day", "ready_now", "readiness"]
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    cycles = _cycles(events, rules, timezone)
    current = cycles[((cycles["day_start"] <= as_of) & (cycles["end"] > as_of)).to_numpy(dtype=bool)].copy()
    if current.empty:
        return pd.DataFrame(columns=columns)
    current["next_start"] = as_of
    current["next_regimen"] = current["regimen"]
    work = _usable(results)
    judged = _readiness(work[(work["collected_at"] <= as_of).to_numpy(dtype=bool)], current, rules, timezone)
    judged = judged.reset_index()
    out = current[["patient_key", "cycle", "start"]].merge(judged, on=["patient_key", "cycle"])
    as_of_column = pd.Series(as_of, index=out.index).dt.as_unit("us")
    out["cycle_day"] = _calendar_days(out["start"], as_of_column, timezone).astype("int64")
    window = f"in the {rules.readiness_window_days} days before the next start"
    last_days = f"in the last {rules.readiness_window_days} days (a pre-cycle CBC is needed)"
    out["readiness"] = out["readiness"].str.replace(window, last_days, regex=False)
    return out.rename(columns={"ready_at_next": "ready_now", "start": "cycle_start"})[columns]


def cycle_trend(cycles: pd.DataFrame, *, rules: CycleRules = DEFAULT_CYCLE_RULES) -> pd.DataFrame:
    """Per patient, whether the nadir ANC deepens and recovery slows across cycles, said in words.

    Returns columns ``patient_key``, ``deepening_nadir``, ``slower_recovery`` (booleans) and ``trend``
    (a sentence, "" when there is nothing to say).

    Recovery is compared by its bounds: slower only when the last cycle's recovery came after its earliest
    possible day by ``recovery_delay_days`` or more than the first cycle's latest possible day. Days are
    written in the D# notation (D1 = the start day).

    >>> cycles = pd.DataFrame({"patient_key": 1, "cycle": [1, 2, 3], "nadir_anc": [1.2, 0.8, 0.4],
    ...     "nadir_sampled": True, "recovery_after_day": [10, 13, 17], "recovery_day": [14, 16, 19]})
    >>> print(cycle_trend(cycles).loc[0, "trend"])
    Nadir ANC deepening over 3 cycles (1.2 -> 0.4). Recovery slower (by D15 in cycle 1; after D18 in cycle 3).
    """
    columns = ["patient_key", "deepening_nadir", "slower_recovery", "trend"]
    if cycles.empty:
        return pd.DataFrame(columns=columns)
    anc_rcv = {i.analyte: i for i in rules.grading.rcv_inputs}.get("anc")
    fall_limit = (
        rcv_bounds(anc_rcv.cv_analytical, anc_rcv.cv_within, z=rules.grading.rcv_z)[0] if anc_rcv else 0.0
    )
    ordered = cycles.sort_values(["patient_key", "cycle"])
    sampled = ordered["nadir_sampled"] if "nadir_sampled" in ordered else True
    nadirs = ordered[ordered["nadir_anc"].notna() & sampled]
    stats = nadirs.groupby("patient_key").agg(
        n=("nadir_anc", "size"),
        first=("nadir_anc", "first"),
        last=("nadir_anc", "last"),
        median_step=("nadir_anc", lambda s: s.diff().median()),
    )
    deepening = (stats["n"] >= rules.trend_min_cycles) & (stats["last"] / stats["first"] - 1 <= fall_limit)
    deepening &= stats["median_step"] < 0
    seen = ordered[ordered["recovery_day"].notna()]
    first_seen, last_seen = seen.groupby("patient_key").head(1), seen.groupby("patient_key").tail(1)
    recovery = pd.DataFrame(
        {
            "first_day": first_seen.set_index("patient_key")["recovery_day"],
            "first_cycle": first_seen.set_index("patient_key")["cycle"],
            "last_after": last_seen.set_index("patient_key")[
                "recovery_after_day" if "recovery_after_day" in last_seen else "recovery_day"
            ],
            "last_cycle": last_seen.set_index("patient_key")["cycle"],
        }
    ).reindex(pd.Index(ordered["patient_key"].unique(), name="patient_key"))
    recovery = recovery.astype({"first_day": "float64", "last_after": "float64"})
    several = recovery["last_cycle"] > recovery["first_cycle"]
    # The earliest the last recovery can have been is the day after the count before it.
    later = (recovery["last_after"] + 1) - recovery["first_day"] >= rules.recovery_delay_days
    slower = (several & later).fillna(False)
    out = pd.DataFrame(index=recovery.index.rename("patient_key"))
    out["deepening_nadir"] = deepening.reindex(out.index).fillna(False).astype(bool)
    out["slower_recovery"] = slower.astype(bool)
    deep_text = (
        "Nadir ANC deepening over "
        + stats["n"].astype(str)
        + " cycles ("
        + stats["first"].map("{:g}".format).astype("string")
        + " -> "
        + stats["last"].map("{:g}".format).astype("string")
        + ")."
    ).reindex(out.index)

    def day(values: pd.Series) -> pd.Series:
        return values.map(cycle_notation).astype("string")

    def cycle(values: pd.Series) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else f"{int(v)}").astype("string")

    slow_text = (
        "Recovery slower (by " + day(recovery["first_day"]) + " in cycle " + cycle(recovery["first_cycle"])
        + "; after " + day(recovery["last_after"]) + " in cycle " + cycle(recovery["last_cycle"]) + ")."
    )  # fmt: skip
    parts = pd.DataFrame(
        {
            "deep": deep_text.where(out["deepening_nadir"], ""),
            "slow": slow_text.where(out["slower_recovery"], ""),
        }
    )
    out["trend"] = (parts["deep"] + " " + parts["slow"]).str.strip()
    return out.reset_index()[columns]


def before_after(results: pd.DataFrame, events: pd.DataFrame, *, window_days: int = 28) -> pd.DataFrame:
    """Median and range of each analyte in a window before and after each event.

    ``events`` needs ``event_key``, ``patient_key`` and ``start_at``. A result exactly at the event time
    counts as after. Returns columns ``COMPARISON_COLUMNS``, one row per event and analyte with results.

    >>> at = pd.Timestamp("2026-05-01", tz="UTC")
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": "anc", "value": [0.9, 1.1, 1.6, 2.0],
    ...     "collected_at": [at + pd.Timedelta(days=d) for d in (-20, -5, 10, 25)]})
    >>> events = pd.DataFrame({"event_key": [7], "patient_key": [1], "start_at": [at]})
    >>> before_after(results, events)[["median_before", "median_after", "n_after"]].to_dict("records")
    [{'median_before': 1.0, 'median_after': 1.8, 'n_after': 2}]
    """
    work = _usable(results)
    pairs = work.merge(_events(events)[["event_key", "patient_key", "start_at"]], on="patient_key")
    offset = (pairs["collected_at"] - pairs["start_at"]) / _DAY
    pairs = pairs.assign(side=np.where(offset < 0, "before", "after"))
    pairs = pairs[(offset.abs() <= window_days).to_numpy(dtype=bool)]
    if pairs.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    stats = pairs.groupby(["event_key", "analyte", "side"])["value"].agg(["size", "median", "min", "max"])
    wide = stats.unstack("side")
    out = pd.DataFrame(index=wide.index)
    for side in ("before", "after"):
        for stat, name in (("size", "n"), ("median", "median"), ("min", "min"), ("max", "max")):
            column = (stat, side)
            out[f"{name}_{side}"] = wide[column] if column in wide.columns else np.nan
        out[f"n_{side}"] = out[f"n_{side}"].fillna(0).astype("int64")
    return out.reset_index().reindex(columns=list(COMPARISON_COLUMNS))


def _utc(values: pd.Series) -> pd.Series:
    """Times as UTC at one resolution, whatever the source's (merges and comparisons need the same)."""
    return pd.to_datetime(values, utc=True).dt.as_unit("us")


def _events(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(start_at=_utc(events["start_at"]))


def _day_start(times: pd.Series, timezone: str) -> pd.Series:
    """The start of each time's calendar day in ``timezone``, as UTC (the first instant of a day that
    begins inside a clock change).

    >>> _day_start(pd.Series(pd.to_datetime(["2026-07-16 11:00"], utc=True)), "Europe/London").tolist()
    [Timestamp('2026-07-15 23:00:00+0000', tz='UTC')]
    """
    starts = localize(local_days(times, timezone), timezone)  # a repeated midnight: its first occurrence
    return starts.dt.tz_convert("UTC").dt.as_unit("us")


def _cycles(events: pd.DataFrame, rules: CycleRules, timezone: str) -> pd.DataFrame:
    """Cycles from the chemotherapy events: one per patient and calendar day of a start in ``timezone``.

    A cycle runs from the start of its dosing day (``day_start``: counts drawn that day are its D1, and
    their time before or after the dose cannot shift them) to the start of the next dosing day, or for
    ``default_cycle_days``. ``start`` keeps the event's own time.
    """
    events = _events(events)
    chemo = events[events["kind"].eq("chemotherapy").to_numpy(dtype=bool)]
    chemo = chemo.assign(
        label=chemo["label"] if "label" in chemo else "",
        regimen=(chemo["details"] if "details" in chemo else pd.Series("", index=chemo.index)).fillna(""),
        day_start=_day_start(chemo["start_at"], timezone),
    )
    chemo = chemo.sort_values(["patient_key", "start_at"], kind="stable")
    chemo = chemo.drop_duplicates(["patient_key", "day_start"])  # two drugs on one day: one cycle
    grouped = chemo.groupby("patient_key", sort=False)
    next_start = grouped["start_at"].shift(-1)
    next_day = grouped["day_start"].shift(-1)
    default_end = chemo["day_start"] + pd.Timedelta(days=rules.default_cycle_days)
    cycles = pd.DataFrame(
        {
            "patient_key": chemo["patient_key"],
            "cycle": grouped.cumcount() + 1,
            "start": chemo["start_at"],
            "day_start": chemo["day_start"],
            "end": next_day.where(next_day.notna(), default_end),
            "next_start": next_start,
            "label": chemo["label"],
            "regimen": chemo["regimen"].astype(str).str.strip(),
        }
    ).reset_index(drop=True)
    # The next start's regimen decides the readiness rule for it.
    cycles["next_regimen"] = cycles.groupby("patient_key")["regimen"].shift(-1)
    return cycles


def _usable(results: pd.DataFrame) -> pd.DataFrame:
    """Results with a value and a time, not withdrawn, with ``lln`` and ``comparator`` present."""
    keep = results["value"].notna() & results["collected_at"].notna()
    if "status" in results:
        keep &= ~results["status"].isin(EXCLUDED_STATUSES)
    work = results.loc[keep.to_numpy(dtype=bool)]
    comparator = work["comparator"] if "comparator" in work else pd.Series(pd.NA, index=work.index)
    comparator = comparator.astype("string").str.strip().replace({"": pd.NA})
    lln = work["lln"] if "lln" in work else pd.Series(np.nan, index=work.index)
    return (
        work.assign(
            value=work["value"].astype("float64"),
            comparator=comparator,
            lln=lln.astype("float64"),
            collected_at=_utc(work["collected_at"]),
        )
        .sort_values(["patient_key", "collected_at"], kind="stable")
        .reset_index(drop=True)
    )


def _calendar_days(start: pd.Series, later: pd.Series, timezone: str) -> pd.Series:
    """Whole calendar days from ``start``'s day to ``later``'s day in ``timezone`` (NaN where missing).

    >>> start = pd.Series(pd.to_datetime(["2026-03-20 00:00"]).tz_localize("Europe/London"))
    >>> later = pd.Series(pd.to_datetime(["2026-04-10 00:00"]).tz_localize("Europe/London"))
    >>> _calendar_days(start, later, "Europe/London").tolist()  # 21 days, one of them 23 hours long
    [21.0]
    """
    return ((local_days(later, timezone) - local_days(start, timezone)) / _DAY).astype("float64")


def _in_cycles(work: pd.DataFrame, cycles: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Each result inside a cycle, with the cycle number, its start and the calendar day since it."""
    if cycles.empty or work.empty:
        return work.iloc[0:0].assign(
            cycle=pd.Series(dtype="int64"), cycle_start=pd.NaT, day=pd.Series(dtype="int64")
        )
    starts = cycles[["patient_key", "cycle", "start", "day_start", "end"]].sort_values("day_start")
    placed = pd.merge_asof(
        work.sort_values("collected_at"),
        starts,
        left_on="collected_at",
        right_on="day_start",
        by="patient_key",
        direction="backward",
    )
    placed = placed[(placed["collected_at"] < placed["end"]).to_numpy(dtype=bool)]
    placed = placed.rename(columns={"start": "cycle_start"}).drop(columns=["day_start", "end"])
    placed["cycle"] = placed["cycle"].astype("int64")
    placed["day"] = _calendar_days(placed["cycle_start"], placed["collected_at"], timezone).astype("int64")
    return placed.sort_values(["patient_key", "cycle", "collected_at"], kind="stable").reset_index(drop=True)


def _nadir(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The lowest value per cycle (its first occurrence), with its day, comparator and grade."""
    if rows.empty:
        return pd.DataFrame(columns=["value", "comparator", "day", "grade", "collected_at"])
    lowest = rows.loc[rows.groupby(keys)["value"].idxmin().to_numpy()]
    return lowest.set_index(keys)[["value", "comparator", "day", "grade", "collected_at"]]


def _grade3_plus_spells(anc: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cycle with an ANC at grade 3 or worse: confirmed (``min``) and possible (``max``) days there.

    ``min`` sums, over each run of consecutive such counts, the time from its first to its last count;
    ``max`` sums the time from each such count to the next count of the cycle, NaN when the cycle's last
    count is still at grade 3 or worse.
    """
    if anc.empty:
        return pd.DataFrame(columns=["min", "max"], index=pd.MultiIndex.from_tuples([], names=keys))
    cycle = [anc[k] for k in keys]
    severe = anc["grade"].ge(3).fillna(False)
    gap = (anc.groupby(keys)["collected_at"].shift(-1) - anc["collected_at"]) / _DAY
    run = (~severe).groupby(cycle).cumsum()
    rows = anc[severe.to_numpy(dtype=bool)]
    if rows.empty:
        return pd.DataFrame(columns=["min", "max"], index=pd.MultiIndex.from_tuples([], names=keys))
    spans = rows.groupby([*[rows[k] for k in keys], run[rows.index]])["collected_at"].agg(["first", "last"])
    confirmed = ((spans["last"] - spans["first"]) / _DAY).groupby(level=keys).sum()
    possible = gap[rows.index].fillna(0).groupby([rows[k] for k in keys]).sum()
    still_severe = anc.groupby(keys)["grade"].last().ge(3).fillna(False)
    possible = possible.where(~still_severe.reindex(possible.index).fillna(False).astype(bool))
    return pd.DataFrame({"min": confirmed.round(), "max": possible.round()})


def _recovery(anc: pd.DataFrame, cycles: pd.DataFrame, keys: list[str], threshold: float) -> pd.DataFrame:
    """Per cycle, the day of the first ANC at or above ``threshold`` after a nadir below it (``day``), and
    the day of the count before it (``after_day``)."""
    empty = pd.DataFrame(columns=["day", "after_day"], dtype="float64")
    nadir = cycles[["nadir_anc", "nadir_at"]].dropna()
    nadir = nadir[nadir["nadir_anc"].round(COMPARE_DECIMALS) < threshold]
    if anc.empty or nadir.empty:
        return empty
    later = anc.assign(previous_day=anc.groupby(keys)["day"].shift()).merge(
        nadir.reset_index(), on=keys, how="inner"
    )
    above = later["value"].round(COMPARE_DECIMALS) >= threshold
    above &= ~later["comparator"].isin(["<", "<="]).fillna(False)
    found = later[(above & (later["collected_at"] > later["nadir_at"])).to_numpy(dtype=bool)]
    first = found.sort_values("collected_at", kind="stable").groupby(keys).head(1).set_index(keys)
    return pd.DataFrame({"day": first["day"], "after_day": first["previous_day"]}).astype("float64")


# A temperature written in an event's label or details, e.g. "Fever 38.6 C (oral)" or "38.4°C".
_TEMPERATURE = r"(?P<celsius>\d{2}(?:[.,]\d)?)\s*°?\s*C\b"


def _fevers(
    events: pd.DataFrame, cycles: pd.DataFrame, anc: pd.DataFrame, keys: list[str], timezone: str
) -> pd.DataFrame:
    """Per cycle with a recorded fever: a description and whether it is febrile neutropenia (CTCAE v5.0)."""
    empty = pd.DataFrame(
        columns=["fever", "febrile_neutropenia"], index=pd.MultiIndex.from_tuples([], names=keys)
    )
    events = _events(events)
    fevers = events[events["kind"].eq("fever").to_numpy(dtype=bool)]
    if fevers.empty:
        return empty
    text = (
        fevers.get("label", pd.Series("", index=fevers.index)).fillna("").astype(str)
        + " "
        + fevers.get("details", pd.Series("", index=fevers.index)).fillna("").astype(str)
    )
    celsius = text.str.extract(_TEMPERATURE)["celsius"].str.replace(",", ".").astype("float64")
    fevers = fevers.assign(celsius=celsius.to_numpy())[["patient_key", "start_at", "celsius"]]
    as_results = fevers.rename(columns={"start_at": "collected_at"}).assign(value=0.0)
    placed = _in_cycles(as_results, cycles, timezone).rename(columns={"collected_at": "at"})
    if placed.empty:
        return empty
    counts = anc[["patient_key", "collected_at", "value", "comparator"]].sort_values("collected_at")
    near = pd.merge_asof(
        placed.drop(columns="value").sort_values("at"),
        counts.rename(columns={"collected_at": "anc_at", "value": "anc"}),
        left_on="at",
        right_on="anc_at",
        by="patient_key",
        direction="nearest",
        tolerance=_DAY,
    )
    anc_low = near["anc"].round(COMPARE_DECIMALS) < 1.0
    anc_low &= ~near["comparator"].isin([">", ">="]).fillna(False)
    hot = near["celsius"] > 38.3
    unsure = near["celsius"].isna() | near["celsius"].between(38.0, 38.3) | near["anc"].isna()
    fn = pd.Series(np.where(hot & anc_low, True, False), index=near.index).astype("boolean")
    fn = fn.mask(unsure & ~(hot & anc_low) & ~(near["anc"] >= 1.0), pd.NA)
    described = (
        near["celsius"].map(lambda c: "fever" if pd.isna(c) else f"fever {c:g} C")
        + " on "
        + near["day"].map(cycle_notation)
        + np.where(near["anc"].isna(), " (no ANC within a day)", " with ANC " + near["anc"].map(_fmt))
    )
    near = near.assign(described=described, fn=fn)
    grouped = near.groupby(keys)
    out = pd.DataFrame(
        {
            "fever": grouped["described"].agg("; ".join),
            "febrile_neutropenia": grouped["fn"].agg(
                lambda v: True if v.eq(True).any() else (pd.NA if v.isna().any() else False)
            ),
        }
    )
    return out


def _gcsf(events: pd.DataFrame, cycles: pd.DataFrame) -> pd.Series:
    """True for cycles in which a G-CSF event starts."""
    events = _events(events)
    given = events[events["kind"].eq("gcsf").to_numpy(dtype=bool)][["patient_key", "start_at"]]
    if given.empty:
        return pd.Series(dtype=bool)
    spans = given.merge(cycles[["patient_key", "cycle", "day_start", "end"]], on="patient_key")
    spans = spans[((spans["start_at"] >= spans["day_start"]) & (spans["start_at"] < spans["end"])).to_numpy()]
    return spans.groupby(["patient_key", "cycle"]).size().gt(0)


def _readiness(work: pd.DataFrame, cycles: pd.DataFrame, rules: CycleRules, timezone: str) -> pd.DataFrame:
    """Per cycle with a next start: the last ANC and platelets in the window before it, and the verdict.

    The window is calendar days in ``timezone``: the ``readiness_window_days`` days before the next
    start's day, and that day itself (the pre-treatment counts drawn on the morning of a dosing day).
    """
    keys = ["patient_key", "cycle"]
    index = pd.MultiIndex.from_frame(cycles[keys])
    out = pd.DataFrame(index=index, columns=["ready_anc", "ready_plt", "ready_at_next", "readiness"])
    nexts = cycles[cycles["next_start"].notna()]
    if nexts.empty:
        out["readiness"] = "no next cycle"
        return out.astype({"ready_anc": "float64", "ready_plt": "float64", "ready_at_next": "boolean"})
    counts = work[work["analyte"].isin(["anc", "plt"]).to_numpy()][
        ["patient_key", "analyte", "collected_at", "value", "comparator"]
    ]
    near = counts.merge(nexts[[*keys, "next_start"]], on="patient_key")
    days_before = _calendar_days(near["collected_at"], near["next_start"], timezone)
    near = near[days_before.between(0, rules.readiness_window_days).to_numpy(dtype=bool)]
    last = near.sort_values("collected_at", kind="stable").groupby([*keys, "analyte"]).tail(1)
    wide = last.pivot_table(index=keys, columns="analyte", values="value", aggfunc="first")
    comparators = last.set_index([*keys, "analyte"])["comparator"].unstack("analyte")
    rule_of = dict(rules.regimens)
    regimen = nexts.set_index(keys)["next_regimen"].fillna("").str.strip().str.lower()
    anc_min = regimen.map(lambda r: rule_of.get(r, rules.readiness).anc_min)
    plt_min = regimen.map(lambda r: rule_of.get(r, rules.readiness).plt_min)
    inclusive = regimen.map(lambda r: rule_of.get(r, rules.readiness).inclusive).astype(bool)
    describe = regimen.map(lambda r: rule_of.get(r, rules.readiness).describe())
    anc = wide["anc"].reindex(regimen.index) if "anc" in wide else pd.Series(np.nan, index=regimen.index)
    plt = wide["plt"].reindex(regimen.index) if "plt" in wide else pd.Series(np.nan, index=regimen.index)
    anc_cmp = _comparator(comparators, "anc", regimen.index)
    plt_cmp = _comparator(comparators, "plt", regimen.index)
    anc_ok = _meets(anc, anc_cmp, anc_min, inclusive)
    plt_ok = _meets(plt, plt_cmp, plt_min, inclusive)
    ready = pd.Series(pd.NA, index=regimen.index, dtype="boolean")
    ready[(anc_ok.eq(False) | plt_ok.eq(False)).fillna(False)] = False
    ready[(anc_ok.eq(True) & plt_ok.eq(True)).fillna(False)] = True
    days = f"{rules.readiness_window_days} days"
    seen = "ANC " + anc_cmp.fillna("") + anc.map(_fmt) + ", platelets " + plt_cmp.fillna("") + plt.map(_fmt)
    reason = pd.Series(
        np.where(
            ready.isna(),
            "unknown: no "
            + np.where(anc.isna(), "ANC", "")
            + np.where(anc.isna() & plt.isna(), " or ", "")
            + np.where(plt.isna(), "platelets", "")
            + f" in the {days} before the next start",
            np.where(ready.fillna(False), "ready: ", "not ready: ") + seen + " against " + describe,
        ),
        index=regimen.index,
    )
    reason = reason.where(~(ready.isna() & anc.notna() & plt.notna()), "unknown: censored count " + seen)
    out.loc[regimen.index, "ready_anc"] = anc
    out.loc[regimen.index, "ready_plt"] = plt
    out.loc[regimen.index, "ready_at_next"] = ready
    out.loc[regimen.index, "readiness"] = reason
    out["ready_at_next"] = out["ready_at_next"].astype("boolean")
    out["readiness"] = out["readiness"].fillna("no next cycle").astype(str)
    return out.astype({"ready_anc": "float64", "ready_plt": "float64"})


def _comparator(comparators: pd.DataFrame, analyte: str, index: pd.Index) -> pd.Series:
    if analyte not in comparators:
        return pd.Series(pd.NA, index=index, dtype="string")
    return comparators[analyte].reindex(index).astype("string")


def _meets(value: pd.Series, comparator: pd.Series, minimum: pd.Series, inclusive: pd.Series) -> pd.Series:
    """Whether a count certainly meets its minimum: True, False, or NA (missing, or censored both ways)."""
    v, m = value.round(COMPARE_DECIMALS), minimum.astype("float64").round(COMPARE_DECIMALS)
    meets = pd.Series(np.where(inclusive, v >= m, v > m), index=value.index).astype("boolean")
    below_bound = comparator.isin(["<", "<="]).fillna(False)
    above_bound = comparator.isin([">", ">="]).fillna(False)
    # "<B": certainly short when B <= minimum; unknown otherwise. ">B": certainly enough when B >= minimum.
    meets = meets.mask(below_bound & meets.fillna(False), pd.NA)
    meets = meets.mask(above_bound & ~meets.fillna(True), pd.NA)
    return meets.mask(value.isna(), pd.NA)


def _fmt(value: float) -> str:
    return "?" if pd.isna(value) else f"{value:g}"


def cycle_table(frame: pd.DataFrame, *, timezone: str = "UTC") -> pd.DataFrame:
    """The cycles for people (terminal and dashboard): one narrow line each, days in the D# notation.

    Days are in the D# notation (D1 = the start day); a nadir from counts outside days 7-14 is marked.
    Start dates are calendar dates in ``timezone`` (the site's).
    """

    def number(prefix: str) -> pd.Series:
        values = frame[prefix].map(lambda v: "" if pd.isna(v) else f"{v:g}")
        return frame[f"{prefix}_comparator"].fillna("") + values

    def days(column: str) -> pd.Series:
        return frame[column].map(cycle_notation)

    def span(low: pd.Series, high: pd.Series) -> pd.Series:
        text = low.astype("string") + "-" + high.astype("string").fillna("?")
        return text.where((low != high).fillna(True), low.astype("string")).fillna("")

    nadir = number("nadir_anc") + np.where(frame["nadir_sampled"], "", " (not sampled D8-D15)")
    recovered = np.where(
        frame["recovery_day"].notna(),
        days("recovery_after_day").str.replace("D", "after D") + ", by " + days("recovery_day"),
        "",
    )
    ready = frame["ready_at_next"].map({True: "yes", False: "NO"}, na_action="ignore").fillna("unknown")
    return pd.DataFrame(
        {
            "cycle": frame["cycle"],
            # (as times even when there are no cycles: an empty column arrives untyped)
            "start": pd.to_datetime(frame["start"], utc=True).dt.tz_convert(timezone).dt.strftime("%Y-%m-%d"),
            "nadir ANC": nadir.where(frame["nadir_anc"].notna(), ""),
            "on": days("nadir_day"),
            "grade": frame["nadir_anc_grade"],
            "nadir WBC": number("nadir_wbc"),
            "days G3+": span(frame["days_grade3_plus_min"], frame["days_grade3_plus_max"]),
            "recovered": recovered,
            "FN": frame["febrile_neutropenia"]
            .map({True: "YES", False: "no"}, na_action="ignore")
            .fillna("?")
            .where(frame["fever"].ne(""), "-"),
            "G-CSF": frame["gcsf"].map({True: "yes", False: "no"}),
            # The last cycle's length is not known until the next one starts: left blank.
            "length": frame["length_days"]
            .astype("Float64")
            .round()
            .astype("Int64")
            .astype("string")
            .fillna(""),
            "ready at next": ready.where(frame["next_start"].notna(), "no next cycle"),
        }
    )
