"""Febrile neutropenia from recorded temperatures and ANCs, for every patient, by IDSA 2010 and CTCAE v5.0.

Each fever (a temperature >= 38.0 °C, or a fever event written in free text where no temperature was
measured near it) is paired with the ANC in force at it: the lower of the latest ANC at or before it (at
most ``anc_before_hours`` earlier) and the first ANC after it (at most ``anc_after_hours`` later), either
alone when only one exists; a higher count after the fever never withdraws an episode
(docs/clinical-basis.md, Febrile neutropenia). Both definitions are judged on
every pair; their thresholds are theirs, not settings:

* IDSA 2010 (Freifeld AG et al., Clin Infect Dis 2011;52(4):e56-e93): a single temperature >= 38.3 °C, or
  >= 38.0 °C sustained over an hour (two readings >= 38.0 at least ``sustained_minutes`` apart, none below
  38.0 in between); ANC < 0.5, or < 1.0 and expected to fall below 0.5 within ``falling_hours``: the line
  through the paired ANC and the ANC before it (drawn within ``falling_lookback_hours`` before it) reaches
  < 0.5 within ``falling_hours`` after the paired ANC.
* CTCAE v5.0 (NCI 2017, "Febrile neutropenia"): a single temperature > 38.3 °C, or >= 38.0 °C for more than
  an hour (readings >= 38.0 spanning more than ``sustained_minutes``, none below); ANC < 1.0.

Temperatures are compared at 0.1 °C, rounded half up (a value sent in °F is converted at import, then
rounded here: 101.0 °F = 38.33 °C compares as 38.3, IDSA's >= 38.3 but not CTCAE's > 38.3). A censored ANC
("<0.1") counts as below a threshold when its bound says so. An episode starts at the first qualifying
pair and ends at the first time when the ANC in force is >= ``end_anc`` and no fever has been recorded
for ``afebrile_hours``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from monitor.analysis.grading import COMPARE_DECIMALS
from monitor.analysis.setting_values import a_number, a_whole_number
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.analytes import ANALYTES
from monitor.formats.units import FAHRENHEIT, TEMPERATURE_FACTORS, TEMPERATURE_OFFSETS, to_canonical

__all__ = [
    "DEFAULT_FEBRILE_RULES",
    "EPISODE_COLUMNS",
    "FebrileRules",
    "febrile_episodes",
    "febrile_now",
    "fever_pairs",
    "on_day",
    "on_day_text",
    "unjudged_now",
]

# The definitions' own thresholds (°C and 10^9/L): fixed by their sources, never site settings.
FEVER_C = 38.0
SINGLE_C = 38.3
IDSA_ANC = 0.5
CTCAE_ANC = 1.0
IDSA = "IDSA 2010"
CTCAE = "CTCAE v5.0"
# A temperature written in a fever event's label or details, e.g. "Fever 38.6 C (oral)", "38.4°C",
# "Fever 102 F" or "101.3°F" (Fahrenheit converted as the importer converts it).
TEMPERATURE_TEXT = r"(?P<number>\d{2,3}(?:[.,]\d+)?)\s*°?\s*(?P<unit>[CF])\b"
EPISODE_COLUMNS = (
    "patient_key",
    "episode",
    "start",
    "end",
    "ongoing",
    "until",
    "idsa",
    "ctcae",
    "free_text",
    "sentence",
)


@dataclass(frozen=True, slots=True)
class FebrileRules:
    """The site's febrile-neutropenia settings (the definitions' thresholds are not among them).

    * ``anc_before_hours`` = 24, ``anc_after_hours`` = 12: the ANC in force for a temperature is the lower
      of the latest drawn up to 24 h before it and the first drawn up to 12 h after it (no source: site
      default).
    * ``sustained_minutes`` = 60: "over an hour" (IDSA 2010: at least 60 minutes apart) and "for more than
      one hour" (CTCAE v5.0: more than 60 minutes).
    * ``falling_hours`` = 48: IDSA 2010, an ANC "expected to decrease to < 500 cells/mm3 during the next
      48 h"; ``falling_lookback_hours`` = 48: how far back the earlier ANC of the line may be (no source:
      site decision).
    * ``end_anc`` = 0.5, ``afebrile_hours`` = 24: an episode ends when the ANC in force is >= 0.5 and no
      fever has been recorded for 24 h (no source: site decision).
    * ``unjudged_hours`` = 48: the patient's latest fever within the last 48 h that has no ANC in its
      pairing window (and no episode open) makes febrile neutropenia unknown, told with the counts
      nearest to it (no source: site decision).
    * ``free_text_window_hours`` = 1: a fever written in an event is set aside only when a temperature was
      measured within 1 h of it, the same reading written twice; a reading further away, lower or not,
      never sets it aside (no source: site decision).
    """

    anc_before_hours: int = 24
    anc_after_hours: int = 12
    sustained_minutes: int = 60
    falling_hours: int = 48
    falling_lookback_hours: int = 48
    end_anc: float = 0.5
    afebrile_hours: int = 24
    free_text_window_hours: int = 1
    unjudged_hours: int = 48

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number, not {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> FebrileRules:
        """Rules from site configuration; unset keys keep their defaults, unknown keys are errors.

        >>> FebrileRules.from_mapping({"afebrile_hours": 48}).afebrile_hours
        48
        """
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError(f"unknown febrile settings: {sorted(unknown)}")
        settings: dict[str, Any] = {
            name: a_number(name, value) if name == "end_anc" else a_whole_number(name, value)
            for name, value in mapping.items()
        }
        return cls(**settings)


DEFAULT_FEBRILE_RULES = FebrileRules()


def _usable(results: pd.DataFrame, analyte: str, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """One analyte's results that count, sorted: value, comparator (NA when exact), time as UTC."""
    keep = results["analyte"].eq(analyte) & results["value"].notna() & results["collected_at"].notna()
    if "status" in results:
        keep &= ~results["status"].isin(EXCLUDED_STATUSES)
    rows = results.loc[keep.to_numpy(dtype=bool)]
    comparator = rows["comparator"] if "comparator" in rows else pd.Series(pd.NA, index=rows.index)
    out = pd.DataFrame(
        {
            "patient_key": rows["patient_key"].astype("int64"),
            "at": pd.to_datetime(rows["collected_at"], utc=True).dt.as_unit("us"),
            "value": rows["value"].astype("float64"),
            "comparator": comparator.astype("string").str.strip().replace({"": pd.NA}),
        }
    )
    if as_of is not None:
        out = out[(out["at"] <= as_of).to_numpy(dtype=bool)]
    return out.sort_values(["patient_key", "at"], kind="stable").reset_index(drop=True)


def _tenths(celsius: pd.Series) -> pd.Series:
    """Temperatures at 0.1 °C, rounded half up (38.25 -> 38.3; 38.333 from 101.0 °F -> 38.3)."""
    tenths = np.floor(celsius.astype("float64").to_numpy() * 10 + 0.5 + 1e-9) / 10
    return pd.Series(tenths, index=celsius.index, dtype="float64")


def _below(values: pd.Series, comparators: pd.Series, threshold: float) -> pd.Series:
    """Whether each ANC is certainly below ``threshold``: "<B" when B <= threshold, "<=B" when B < it."""
    value = values.round(COMPARE_DECIMALS)
    exact = comparators.isna() & (value < threshold)
    less = comparators.eq("<").fillna(False) & (value <= threshold)
    at_most = comparators.eq("<=").fillna(False) & (value < threshold)
    return (exact | less | at_most).fillna(False).astype(bool)


def _measured(temps: pd.DataFrame, rules: FebrileRules) -> pd.DataFrame:
    """Temperatures >= 38.0 with each definition's fever: single, or sustained since the run's first."""
    celsius = _tenths(temps["value"])
    hot = celsius >= FEVER_C
    run = (~hot).groupby(temps["patient_key"]).cumsum()
    work = temps.assign(celsius=celsius, run=run)[hot.to_numpy(dtype=bool)]
    grouped = work.groupby(["patient_key", "run"], sort=False)
    since, since_c = grouped["at"].transform("first"), grouped["celsius"].transform("first")
    lasted = work["at"] - since
    hour = pd.Timedelta(minutes=rules.sustained_minutes)
    single_idsa, single_ctcae = work["celsius"] >= SINGLE_C, work["celsius"] > SINGLE_C
    return work.assign(
        since=since,
        since_celsius=since_c,
        free_text=False,
        idsa_fever=single_idsa | (lasted >= hour),
        ctcae_fever=single_ctcae | (lasted > hour),
        sustained_only=~single_idsa & (lasted >= hour),
        fever_unknown=False,
    ).drop(columns=["run", "value", "comparator"])


def _written(
    events: pd.DataFrame | None, temps: pd.DataFrame, rules: FebrileRules, as_of: Any
) -> pd.DataFrame:
    """Fever events with no temperature measured within ``free_text_window_hours`` of them (that would be
    the same reading written twice; a reading further away never sets one aside), judged as a single
    reading by the temperature written in them, in °C or °F (unknown without one, or between 38.0 and
    38.3: whether it lasted an hour is not written)."""
    if events is None or events.empty:
        return pd.DataFrame()
    fevers = events[events["kind"].eq("fever").to_numpy(dtype=bool)]
    text = pd.Series("", index=fevers.index)
    for column in ("label", "details"):
        if column in fevers:
            text = text + " " + fevers[column].fillna("").astype(str)
    celsius = _written_celsius(text)
    written = pd.DataFrame(
        {
            "patient_key": fevers["patient_key"].astype("int64"),
            "at": pd.to_datetime(fevers["start_at"], utc=True).dt.as_unit("us"),
            "celsius": _tenths(celsius),
        }
    ).dropna(subset=["at"])
    if as_of is not None:
        written = written[(written["at"] <= as_of).to_numpy(dtype=bool)]
    written = written[~(written["celsius"] < FEVER_C).to_numpy(dtype=bool)].sort_values("at")
    if written.empty:
        return pd.DataFrame()
    window = pd.Timedelta(hours=rules.free_text_window_hours)
    near = pd.merge_asof(
        written,
        temps[["patient_key", "at"]].rename(columns={"at": "measured_at"}).sort_values("measured_at"),
        left_on="at",
        right_on="measured_at",
        by="patient_key",
        direction="nearest",
        tolerance=window,
    )
    written = near[near["measured_at"].isna().to_numpy(dtype=bool)].drop(columns="measured_at")
    return written.assign(
        since=written["at"],
        since_celsius=written["celsius"],
        free_text=True,
        idsa_fever=(written["celsius"] >= SINGLE_C).fillna(False),
        ctcae_fever=(written["celsius"] > SINGLE_C).fillna(False),
        sustained_only=False,
        fever_unknown=(written["celsius"].isna() | (written["celsius"] < SINGLE_C)).fillna(True),
    )


def _written_celsius(text: pd.Series) -> pd.Series:
    """The first temperature written in each text, in °C: °F converted as the importer converts it
    (``monitor.formats.units``); NaN without one, or outside the importer's plausible range (25-45 °C).

    >>> texts = pd.Series(["Fever 38.9 C", "Fever 102 F", "101.3°F", "fever", "Fever 39 F"])
    >>> _written_celsius(texts).round(2).tolist()
    [38.9, 38.89, 38.5, nan, nan]
    """
    found = text.str.extract(TEMPERATURE_TEXT)
    number = found["number"].str.replace(",", ".").astype("float64")
    unit = found["unit"].map({"C": "cel", "F": FAHRENHEIT[0]}).fillna("cel")
    factors = unit.map(TEMPERATURE_FACTORS).astype("float64")
    offsets = unit.map(TEMPERATURE_OFFSETS).astype("float64").fillna(0.0)
    celsius = to_canonical(number, factors, offsets)
    low, high = ANALYTES["temp"].plausible_min, ANALYTES["temp"].plausible_max
    return celsius.where((celsius >= low) & (celsius <= high))


def _counts(anc: pd.DataFrame, rules: FebrileRules) -> pd.DataFrame:
    """ANCs with each definition's neutropenia, and IDSA's "falling" line through the ANC before."""
    grouped = anc.groupby("patient_key")
    before = anc.assign(
        before=grouped["value"].shift(),
        before_at=grouped["at"].shift(),
        before_cmp=grouped["comparator"].shift(),
    )
    hours = (before["at"] - before["before_at"]).dt.total_seconds() / 3600
    exact = before["comparator"].isna() & before["before_cmp"].isna()
    near = (hours > 0) & (hours <= rules.falling_lookback_hours)
    slope = (before["value"] - before["before"]) / hours
    projected = before["value"] + slope * rules.falling_hours
    falling = (exact & near & (slope < 0) & (projected.round(COMPARE_DECIMALS) < IDSA_ANC)).fillna(False)
    below_idsa, below_ctcae = (
        _below(anc["value"], anc["comparator"], IDSA_ANC),
        _below(anc["value"], anc["comparator"], CTCAE_ANC),
    )
    return before.assign(
        idsa_neutropenia=below_idsa | (below_ctcae & falling),
        falling=falling & ~below_idsa & below_ctcae,
        ctcae_neutropenia=below_ctcae,
    )


def fever_pairs(
    results: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    rules: FebrileRules = DEFAULT_FEBRILE_RULES,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every fever (a temperature >= 38.0 °C, or a counted free-text fever) with the ANC in force.

    Parameters
    ----------
    results : pd.DataFrame
        ``patient_key``, ``collected_at`` (tz-aware), ``analyte`` (``temp`` in °C and ``anc`` in 10^9/L
        are read), ``value``; optionally ``comparator`` and ``status`` (withdrawn results are ignored).
    events : pd.DataFrame, optional
        ``patient_key``, ``kind``, ``start_at``, optionally ``label`` and ``details``: fever events.
    rules : FebrileRules
        Site settings.
    as_of : pd.Timestamp, optional
        Now: later results and events are ignored.

    Returns
    -------
    pd.DataFrame
        One row per fever, by patient and time: ``at``, ``celsius`` (at 0.1 °C; NaN for a free-text fever
        without one), ``since``/``since_celsius`` (the first reading of its run >= 38.0), ``free_text``,
        ``anc``, ``anc_comparator``, ``anc_at`` (the ANC in force: ``_paired``; NaN/NaT when none),
        ``before``/``before_at`` (the earlier ANC of IDSA's line), ``falling``, ``idsa`` and ``ctcae`` (the
        definitions met) and ``unknown`` (neither can be told: a free-text fever without a temperature or
        between 38.0 and 38.3 with a low ANC, or a fever with no ANC in force).

    Examples
    --------
    >>> at = pd.to_datetime(["2026-03-10 08:00", "2026-03-10 11:30"], utc=True)
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "temp"], "value": [0.4, 38.3],
    ...     "collected_at": at})
    >>> fever_pairs(results)[["celsius", "anc", "idsa", "ctcae"]].to_dict("records")
    [{'celsius': 38.3, 'anc': 0.4, 'idsa': True, 'ctcae': False}]
    """
    as_of = None if as_of is None else pd.Timestamp(as_of)
    temps = _usable(results, "temp", as_of)
    parts = [_measured(temps, rules), _written(events, temps, rules, as_of)]
    fevers = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    if fevers.empty:
        return pd.DataFrame(columns=_PAIR_COLUMNS)
    anc = _counts(_usable(results, "anc", as_of), rules)
    paired = _paired(fevers, anc, rules)
    known = paired["anc_at"].notna()
    idsa_n = paired["idsa_neutropenia"].astype("boolean").fillna(False).astype(bool)
    ctcae_n = paired["ctcae_neutropenia"].astype("boolean").fillna(False).astype(bool)
    idsa = paired["idsa_fever"].astype(bool) & idsa_n
    ctcae = paired["ctcae_fever"].astype(bool) & ctcae_n
    unknown = ~(idsa | ctcae) & ((paired["fever_unknown"].astype(bool) & ctcae_n) | ~known)
    out = paired.assign(
        falling=paired["falling"].astype("boolean").fillna(False).astype(bool) & idsa,
        idsa=idsa,
        ctcae=ctcae,
        unknown=unknown,
    )
    out = out.sort_values(["patient_key", "at"], kind="stable").reset_index(drop=True)
    return out.reindex(columns=_PAIR_COLUMNS)


def _paired(fevers: pd.DataFrame, anc: pd.DataFrame, rules: FebrileRules) -> pd.DataFrame:
    """Each fever with the ANC in force at it: the lower of the latest ANC at or before it (at most
    ``anc_before_hours`` earlier) and the first ANC after it (at most ``anc_after_hours`` later), either
    alone when only one exists; both edges included, the one before on a tie. A higher count drawn after
    the fever never replaces a lower one in force at it (both definitions judge the neutrophil count at the
    time of the fever)."""
    counts = anc.rename(columns={"at": "anc_at", "value": "anc", "comparator": "anc_comparator"})
    counts = counts.sort_values("anc_at")
    ordered = fevers.sort_values("at")
    sides = []
    directions: tuple[tuple[Literal["backward", "forward"], int, bool], ...] = (
        ("backward", rules.anc_before_hours, True),
        ("forward", rules.anc_after_hours, False),
    )
    for direction, hours, exact in directions:
        sides.append(
            pd.merge_asof(
                ordered,
                counts,
                left_on="at",
                right_on="anc_at",
                by="patient_key",
                direction=direction,
                tolerance=pd.Timedelta(hours=hours),
                allow_exact_matches=exact,
            )
        )
    before, after = sides
    # "<0.1" sorts below 0.1 and ">2.0" above 2.0; an exact tie keeps the ANC before.
    shift = {"<": -1e-9, "<=": -1e-9, ">": 1e-9, ">=": 1e-9}
    level = [
        side["anc"].round(COMPARE_DECIMALS) + side["anc_comparator"].map(shift).astype("float64").fillna(0.0)
        for side in sides
    ]
    use_after = (after["anc_at"].notna() & (before["anc_at"].isna() | (level[1] < level[0]))).to_numpy(
        dtype=bool
    )
    chosen = before.copy()
    for column in (c for c in counts.columns if c != "patient_key"):
        chosen[column] = before[column].where(~use_after, after[column])
    return chosen


_PAIR_COLUMNS = [
    "patient_key",
    "at",
    "celsius",
    "since",
    "since_celsius",
    "sustained_only",
    "free_text",
    "anc",
    "anc_comparator",
    "anc_at",
    "before",
    "before_at",
    "falling",
    "idsa",
    "ctcae",
    "unknown",
]


def febrile_episodes(
    results: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    rules: FebrileRules = DEFAULT_FEBRILE_RULES,
    timezone: str = "UTC",
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Episodes of febrile neutropenia per patient, from the first qualifying pair to recovery.

    Parameters are those of ``fever_pairs``; ``timezone`` (the site's) is the zone the sentences give
    times in, with their dates ("2026-03-10 08:10"; ``on_day`` leaves out a given day's date when shown).

    Returns
    -------
    pd.DataFrame
        Columns ``EPISODE_COLUMNS``, by patient and start: ``episode`` (1-based), ``start`` (the time of
        the first qualifying fever), ``end`` (the first time the ANC in force was >= ``end_anc`` with no
        fever for ``afebrile_hours``; NaT while ``ongoing``), ``until`` (an ongoing episode's end if no
        fever and no lower ANC arrive first: the ANC in force is already >= ``end_anc`` and the last
        fever's ``afebrile_hours`` run out then; NaT otherwise), ``idsa`` and ``ctcae`` (met by one of its
        pairs), ``free_text`` (the sentence rests on a free-text fever) and ``sentence``: the first pair
        meeting each definition, "ANC 0.40 at 08:10 and temperature 38.6 °C at 11:30 (IDSA 2010 and
        CTCAE v5.0)".

    Examples
    --------
    >>> at = pd.to_datetime(["2026-03-10 08:10", "2026-03-10 11:30", "2026-03-12 09:00"], utc=True)
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "temp", "anc"],
    ...     "value": [0.4, 38.6, 0.7], "collected_at": at})
    >>> found = febrile_episodes(results, as_of=pd.Timestamp("2026-03-10 12:00", tz="UTC"))
    >>> on_day(found["sentence"], "2026-03-10").iloc[0], bool(found.loc[0, "ongoing"])
    ('ANC 0.40 at 08:10 and temperature 38.6 °C at 11:30 (IDSA 2010 and CTCAE v5.0)', True)
    >>> febrile_episodes(results).loc[0, "end"]
    Timestamp('2026-03-12 09:00:00+0000', tz='UTC')
    """
    as_of = None if as_of is None else pd.Timestamp(as_of)
    pairs = fever_pairs(results, events, rules=rules, as_of=as_of)
    qualifying = pairs[(pairs["idsa"] | pairs["ctcae"]).to_numpy(dtype=bool)]
    if qualifying.empty:
        return pd.DataFrame(columns=list(EPISODE_COLUMNS))
    recovered = _recovery_times(pairs, _usable(results, "anc", as_of), rules)
    found = pd.merge_asof(
        qualifying.sort_values("at"),
        recovered,
        left_on="at",
        right_on="end",
        by="patient_key",
        direction="forward",
    ).sort_values(["patient_key", "at"], kind="stable")
    # A pair opens an episode when it is the patient's first, or the previous pair's episode had ended
    # before it (an episode's end is the first recovery after its last pair).
    previous_end = found.groupby("patient_key")["end"].shift()
    first = found["patient_key"].ne(found["patient_key"].shift())
    opens = first | (previous_end <= found["at"]).fillna(False)
    found = found.assign(episode=opens.astype("int64").groupby(found["patient_key"]).cumsum())
    keys = ["patient_key", "episode"]
    grouped = found.groupby(keys)
    chosen = pd.concat(
        [
            found[found["idsa"].to_numpy()].groupby(keys).head(1),
            found[found["ctcae"].to_numpy()].groupby(keys).head(1),
        ]
    )
    chosen = chosen[~chosen.index.duplicated()].sort_values(["patient_key", "at"], kind="stable")
    chosen = chosen.assign(clause=_clauses(chosen, timezone))
    told = chosen.groupby(keys)
    out = pd.DataFrame(
        {
            "start": grouped["at"].first(),
            "end": grouped["end"].last(),
            "idsa": grouped["idsa"].any(),
            "ctcae": grouped["ctcae"].any(),
            "free_text": told["free_text"].any(),
            "sentence": told["clause"].agg("; ".join),
        }
    )
    ahead = out["end"].notna() & (out["end"] > as_of if as_of is not None else False)
    out["ongoing"] = out["end"].isna() | ahead
    # An ongoing episode ends at ``until`` if no fever and no ANC below ``end_anc`` arrive before it.
    out["until"] = out["end"].where(ahead)
    out["end"] = out["end"].where(~out["ongoing"])
    return out.reset_index().reindex(columns=list(EPISODE_COLUMNS))


def _recovery_times(pairs: pd.DataFrame, anc: pd.DataFrame, rules: FebrileRules) -> pd.DataFrame:
    """Per patient, the times at which the ANC in force is >= ``end_anc`` and no fever was recorded in the
    ``afebrile_hours`` before: an ANC that high arriving, or that many hours passing since a fever."""
    afebrile = pd.Timedelta(hours=rules.afebrile_hours)
    fevers = pairs[["patient_key", "at"]].rename(columns={"at": "fever_at"}).sort_values("fever_at")
    value = anc["value"].round(COMPARE_DECIMALS)
    high = (anc["comparator"].isna() | anc["comparator"].isin([">", ">="]).fillna(False)) & (
        value >= rules.end_anc
    )
    anc = anc.assign(high=high.fillna(False).astype(bool))
    candidates = pd.concat(
        [
            anc.loc[anc["high"].to_numpy(), ["patient_key", "at"]],
            pd.DataFrame({"patient_key": fevers["patient_key"], "at": fevers["fever_at"] + afebrile}),
        ],
        ignore_index=True,
    )
    # Not cut at ``as_of``: a quiet end still ahead (the last fever's hours running out) is the ongoing
    # episode's ``until``.
    candidates = candidates.drop_duplicates().sort_values("at")
    in_force = pd.merge_asof(
        candidates,
        anc[["patient_key", "at", "high"]].rename(columns={"at": "anc_at"}).sort_values("anc_at"),
        left_on="at",
        right_on="anc_at",
        by="patient_key",
        direction="backward",
    )
    in_force = pd.merge_asof(
        in_force, fevers, left_on="at", right_on="fever_at", by="patient_key", direction="backward"
    )
    quiet = in_force["fever_at"].isna() | ((in_force["at"] - in_force["fever_at"]) >= afebrile)
    ok = in_force["high"].astype("boolean").fillna(False).astype(bool) & quiet.to_numpy(dtype=bool)
    return in_force.loc[ok.to_numpy(dtype=bool), ["patient_key", "at"]].rename(columns={"at": "end"})


def unjudged_now(
    results: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    rules: FebrileRules = DEFAULT_FEBRILE_RULES,
    timezone: str = "UTC",
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Per patient whose latest fever of the last ``unjudged_hours`` has no ANC in its pairing window: the
    fever cannot be judged by either definition, and a CBC would settle it.

    Parameters are those of ``febrile_episodes``; whether an episode is open is the caller's to check (an
    open episode wins). Returns a frame indexed by ``patient_key``: ``at`` (the fever), ``until`` (when it
    leaves the last ``unjudged_hours``) and ``sentence``:
    "temperature 38.6 °C at 10:00 cannot be judged: no ANC from 24 h before to 12 h after (last ANC 0.40,
    25 h before): a CBC would settle it (IDSA 2010, CTCAE v5.0)", times dated as ``febrile_episodes``'.

    >>> at = pd.to_datetime(["2026-03-09 09:00", "2026-03-10 10:00"], utc=True)
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["anc", "temp"], "value": [0.4, 38.6],
    ...     "collected_at": at})
    >>> found = unjudged_now(results, as_of=pd.Timestamp("2026-03-10 12:00", tz="UTC"))
    >>> on_day(found["sentence"], "2026-03-10").iloc[0][:80]
    'temperature 38.6 °C at 10:00 cannot be judged: no ANC from 24 h before to 12 h a'
    >>> on_day(found["sentence"], "2026-03-10").iloc[0][80:]
    'fter (last ANC 0.40, 25 h before): a CBC would settle it (IDSA 2010, CTCAE v5.0)'
    """
    columns = ["at", "until", "sentence"]
    as_of = pd.Timestamp(as_of)
    pairs = fever_pairs(results, events, rules=rules, as_of=as_of)
    recent = pairs[(pairs["at"] >= as_of - pd.Timedelta(hours=rules.unjudged_hours)).to_numpy(dtype=bool)]
    latest = recent.groupby("patient_key").tail(1)
    open_ = latest[latest["anc_at"].isna().to_numpy(dtype=bool)][
        ["patient_key", "at", "celsius", "free_text", "sustained_only", "since", "since_celsius"]
    ]
    if open_.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    anc = _usable(results, "anc", as_of).rename(columns={"at": "anc_at"}).sort_values("anc_at")
    ordered = open_.sort_values("at")
    near = {
        side: pd.merge_asof(
            ordered, anc, left_on="at", right_on="anc_at", by="patient_key", direction=side
        ).set_index(ordered.index)
        for side in ("backward", "forward")
    }
    before, after = near["backward"], near["forward"]
    hours_before = (before["at"] - before["anc_at"]).dt.total_seconds() // 3600
    hours_after = (after["anc_at"] - after["at"]).dt.total_seconds() // 3600
    told_before = "last ANC " + _anc_words(before) + ", " + _span(hours_before) + " before"
    told_after = "first ANC after it " + _anc_words(after) + ", " + _span(hours_after) + " after"
    has_before, has_after = before["anc_at"].notna(), after["anc_at"].notna()
    context = pd.Series("no ANC on record", index=ordered.index, dtype="string")
    context = context.mask(has_after.to_numpy(dtype=bool), told_after)
    context = context.mask(has_before.to_numpy(dtype=bool), told_before)
    both = (has_before & has_after).to_numpy(dtype=bool)
    context = context.mask(both, told_before + "; " + told_after)
    fever = _fever_words(ordered, timezone)
    window = f"no ANC from {rules.anc_before_hours} h before to {rules.anc_after_hours} h after"
    sentence = (
        fever + f" cannot be judged: {window} (" + context + f"): a CBC would settle it ({IDSA}, {CTCAE})"
    )
    out = pd.DataFrame(
        {
            "patient_key": ordered["patient_key"],
            "at": ordered["at"],
            "until": ordered["at"] + pd.Timedelta(hours=rules.unjudged_hours),
            "sentence": sentence,
        }
    )
    return out.set_index("patient_key")[columns]


def _anc_words(found: pd.DataFrame) -> pd.Series:
    """ "0.40" or "<0.10": an ANC as the sentences give it."""
    comparator = found["comparator"].astype("string").fillna("")
    return comparator + _fixed(found["value"], 2)


def _span(hours: pd.Series) -> pd.Series:
    """Whole hours, "25 h", or whole days from 48 h on, "3 days"."""
    whole = hours.astype("float64").fillna(0).astype("int64")
    days = (whole // 24).astype("string") + " days"
    return (whole.astype("string") + " h").where(whole < 48, days)


def _fever_words(fevers: pd.DataFrame, timezone: str) -> pd.Series:
    """A fever as the sentences name it: "temperature 38.6 °C at 10:00", "fever 38.9 °C at 10:00 (free
    text)", "fever at 10:00 (free text)"."""
    at = _when(fevers["at"], timezone)
    celsius = _fixed(fevers["celsius"], 1) + " °C"
    measured = "temperature " + celsius + " at " + at
    written = "fever " + (celsius + " ").fillna("") + "at " + at + " (free text)"
    return written.where(fevers["free_text"].astype(bool).to_numpy(), measured)


def _when(times: pd.Series, timezone: str) -> pd.Series:
    """Times in the site's zone with their date, "2026-03-09 08:10" (``on_day`` shortens today's)."""
    local = pd.to_datetime(times, utc=True).dt.tz_convert(timezone)
    return local.dt.strftime("%Y-%m-%d %H:%M").astype("string")


def on_day(sentences: pd.Series, day: Any) -> pd.Series:
    """Sentences as read on ``day`` (a date in the site's zone): its times without their date, "at 08:10",
    others' dated, "at 2026-03-09 08:10". The status stores them dated, for whichever day they are read.

    >>> on_day(pd.Series(["ANC 0.40 at 2026-03-10 08:10 and fever at 2026-03-09 22:00"]), "2026-03-10")[0]
    'ANC 0.40 at 08:10 and fever at 2026-03-09 22:00'
    """
    return sentences.astype("string").str.replace(f" at {day} ", " at ", regex=False)


def on_day_text(sentence: str, day: str) -> str:
    """One sentence as read on ``day`` (``on_day``)."""
    return sentence.replace(f" at {day} ", " at ")


def _fixed(values: pd.Series, decimals: int) -> pd.Series:
    """Numbers with a fixed number of decimals ("0.40", "38.6"); NA stays NA."""
    numbers = values.astype("float64").to_numpy()
    text = np.char.mod(f"%.{decimals}f", np.nan_to_num(numbers))
    return pd.Series(text, index=values.index, dtype="string").where(~np.isnan(numbers))


def _clauses(pairs: pd.DataFrame, timezone: str) -> pd.Series:
    """Each pair in words: "ANC 0.40 at 08:10 and temperature 38.6 °C at 11:30 (IDSA 2010 and CTCAE v5.0)"."""
    anc = "ANC " + pairs["anc_comparator"].astype("string").fillna("") + _fixed(pairs["anc"], 2)
    anc = anc + " at " + _when(pairs["anc_at"], timezone)
    falling = ", falling from " + _fixed(pairs["before"], 2) + " at " + _when(pairs["before_at"], timezone)
    anc = anc + falling.where(pairs["falling"].to_numpy(dtype=bool), "").fillna("")
    at = _when(pairs["at"], timezone)
    celsius = _fixed(pairs["celsius"], 1) + " °C"
    measured = "temperature " + celsius + " at " + at
    sustained = "temperature " + _fixed(pairs["since_celsius"], 1) + " °C at "
    sustained = sustained + _when(pairs["since"], timezone) + " to " + celsius + " at " + at
    written = "fever " + (celsius + " ").fillna("") + "at " + at + " (free text)"
    fever = np.select(
        [pairs["free_text"].to_numpy(dtype=bool), pairs["sustained_only"].to_numpy(dtype=bool)],
        [written.to_numpy(dtype=object), sustained.to_numpy(dtype=object)],
        measured.to_numpy(dtype=object),
    )
    idsa, ctcae = pairs["idsa"].to_numpy(dtype=bool), pairs["ctcae"].to_numpy(dtype=bool)
    met = pd.Series(np.select([idsa & ctcae, idsa], [f"{IDSA} and {CTCAE}", IDSA], CTCAE), index=pairs.index)
    clause: pd.Series = anc + " and " + pd.Series(fever, index=pairs.index, dtype="string") + " (" + met + ")"
    return clause


def febrile_now(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per patient with an episode: the current one (or none), and the episodes before it.

    Returns a frame indexed by ``patient_key``: ``current`` (an episode is ongoing), ``until`` (when it
    ends if nothing new arrives: ``febrile_episodes``), ``start``, ``idsa``,
    ``ctcae`` and ``sentence`` of the current episode (of the latest when none is ongoing), ``free_text``,
    ``past`` (how many episodes have ended) and ``last_end`` (when the latest of them ended).
    """
    columns = ["current", "until", "start", "idsa", "ctcae", "free_text", "sentence", "past", "last_end"]
    if episodes.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    ordered = episodes.sort_values(["patient_key", "start"], kind="stable")
    latest = ordered.groupby("patient_key").tail(1).set_index("patient_key")
    ended = ordered[~ordered["ongoing"].astype(bool).to_numpy()].groupby("patient_key")
    return latest.assign(
        current=latest["ongoing"].astype(bool),
        until=latest["until"].where(latest["ongoing"].astype(bool)),
        past=ended.size().reindex(latest.index).fillna(0).astype("int64"),
        last_end=ended["end"].max().reindex(latest.index),
    )[columns]
