"""Each analyte before and after an event (e.g. a drug started or stopped): median and range."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import usable_results, with_utc_starts
from monitor.timestamps import days_between

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
    work = usable_results(results)
    pairs = work.merge(with_utc_starts(events)[["event_key", "patient_key", "start_at"]], on="patient_key")
    offset = days_between(pairs["start_at"], pairs["collected_at"])
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
