"""What a patient's timeline shows about each result, computed once: its grade, whether it is below the
limit that applies or above the reported range, its change from the previous one; and the episodes below
the limit. The figures and the flowsheet only draw these."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from monitor.analysis.flags import EPISODE_COLUMNS, below_limit, episodes
from monitor.analysis.grading import (
    DEFAULT_RULES,
    GradingRules,
    ctcae_grade,
    ctcae_high_grade,
    significant_change,
)

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "LOW_EPISODE_COLUMNS",
    "MARK_COLUMNS",
    "low_episodes",
    "marked_results",
    "view_window",
]

MARK_COLUMNS = ("grade", "below_limit", "above_range", "change", "significant_fall", "significant_rise")
LOW_EPISODE_COLUMNS = (*EPISODE_COLUMNS, "count")
# What the timeline shows first: the last six months, or less when the patient's data span less.
DEFAULT_WINDOW_DAYS = 182


def marked_results(results: pd.DataFrame, *, rules: GradingRules = DEFAULT_RULES) -> pd.DataFrame:
    """``results`` with ``MARK_COLUMNS`` added (a new frame, same index and rows).

    Parameters
    ----------
    results : pd.DataFrame
        One patient's results (or several, told apart by ``patient_key``): ``analyte``, ``value``,
        ``lln`` (the lower limit that applies), ``ref_high``, ``collected_at``, ``status``, optionally
        ``comparator`` and ``uln`` (the upper limit that applies; the reported ``ref_high`` without it).
    rules : GradingRules
        The site's grading rules (CTCAE version, reference change values).

    Returns
    -------
    pd.DataFrame
        ``grade`` (CTCAE, ``ctcae_grade``), ``below_limit`` (certainly below ``lln``), ``above_range``
        (above the upper limit and not censored below it, or graded high by CTCAE), ``change`` (fraction
        from the previous usable result) and ``significant_fall`` / ``significant_rise`` (beyond the
        reference change value).

    Examples
    --------
    >>> results = pd.DataFrame({"analyte": "wbc", "value": [5.6, 3.1], "comparator": None,
    ...     "lln": 4.0, "ref_high": 11.0, "status": "final",
    ...     "collected_at": pd.to_datetime(["2026-03-02", "2026-03-16"], utc=True)})
    >>> marked = marked_results(results)
    >>> marked["grade"].tolist(), marked["below_limit"].tolist(), marked["significant_fall"].tolist()
    ([0, 1], [False, True], [<NA>, True])
    """
    graded = ["analyte", "value", "lln", *(c for c in ("comparator", "unit_raw") if c in results)]
    # Graded without the unit column: stored results are in canonical units already; the unit the lab
    # reported picks CTCAE's column (haemoglobin in mmol/L).
    grade = ctcae_grade(results[graded], rules=rules)
    comparator = results["comparator"] if "comparator" in results else pd.Series(None, index=results.index)
    # The upper limit that applies (``uln``, the same source as the lower) when resolved, else the reported.
    upper = results["uln"].fillna(results["ref_high"]) if "uln" in results else results["ref_high"]
    above = (results["value"] > upper).fillna(False) & ~comparator.isin(["<", "<="]).fillna(False)
    # A count CTCAE grades high is above whatever the limit (a WBC of 150 with none known), as the flags
    # judge it (docs/clinical-basis.md, High counts).
    judged = ["analyte", "value", *(["comparator"] if "comparator" in results else [])]
    high = ctcae_high_grade(results[judged], rules=rules)
    above |= (high >= 1).fillna(False).astype(bool)
    keyed = results if "patient_key" in results else results.assign(patient_key=0)
    change = significant_change(keyed, rules=rules)
    return results.assign(
        grade=grade,
        below_limit=below_limit(results),
        above_range=above.astype(bool),
        change=change["change"],
        significant_fall=change["significant_fall"],
        significant_rise=change["significant_rise"],
    )


def low_episodes(
    results: pd.DataFrame, *, timezone: str, analytes: Sequence[str] = ("wbc", "anc")
) -> pd.DataFrame:
    """Every run of ``analytes`` below their limit (``flags.episodes``), newest first, with ``count``
    naming the analyte ("WBC", "ANC"); days are calendar days in ``timezone``.

    >>> days = pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-15"], utc=True)
    >>> results = pd.DataFrame({"patient_key": 1, "analyte": ["wbc", "anc", "wbc"],
    ...     "value": [3.5, 1.0, 4.6], "lln": [4.0, 1.5, 4.0], "collected_at": days})
    >>> low_episodes(results, timezone="UTC")[["count", "nadir", "ongoing"]].to_dict("records")
    [{'count': 'ANC', 'nadir': 1.0, 'ongoing': True}, {'count': 'WBC', 'nadir': 3.5, 'ongoing': False}]
    """
    parts = [
        episodes(results, timezone=timezone, analyte=analyte).assign(count=analyte.upper())
        for analyte in analytes
    ]
    found = pd.concat(parts, ignore_index=True).sort_values("start", ascending=False)
    return found.reindex(columns=list(LOW_EPISODE_COLUMNS))


def view_window(
    times: pd.Series, *, days: float | None = DEFAULT_WINDOW_DAYS, margin: float = 0.03
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The time range a timeline shows: its last ``days`` (all when None), never wider than ``times`` span.

    The range ends at the latest of ``times`` and starts at the later of the earliest and ``days`` before
    the latest; each end is padded by ``margin`` of the span, and by at least a day, so that no point sits
    on the edge. None when there are no times.

    >>> times = pd.to_datetime(["2026-03-02T08:00Z", "2026-03-09T08:00Z"], utc=True)
    >>> [f"{t:%Y-%m-%d %H:%M}" for t in view_window(pd.Series(times))]
    ['2026-03-01 08:00', '2026-03-10 08:00']
    >>> years = pd.Series(pd.date_range("2024-01-01", "2025-12-29", freq="7D", tz="UTC"))
    >>> first, last = view_window(years, days=182)
    >>> (last - first).days, f"{last:%Y-%m-%d}"
    (192, '2026-01-03')
    """
    known = pd.to_datetime(times, utc=True).dropna()
    if known.empty:
        return None
    latest = known.max()
    earliest = known.min() if days is None else max(known.min(), latest - pd.Timedelta(days=days))
    pad = max((latest - earliest) * margin, pd.Timedelta(days=1))
    return earliest - pad, latest + pad
