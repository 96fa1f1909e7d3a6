"""Nadir forecast: the Friberg myelosuppression model fitted to a patient's own ANC counts.

For the latest chemotherapy cycle started at or before ``as_of``, using only the ANC results collected before
``as_of`` (all cycles, the current one's so far): the median nadir ANC with its 80 % interval, the day of
the nadir and the window of days a CBC best catches it, the day the median forecast is back at 1.5, the
probability that the nadir falls below 0.5 (CTCAE grade 4), and the curve with the 80 % band of a count
drawn at each time. Decision support: a model with population priors, validated in simulation only
(benchmarks.forecast); docs/clinical-rules.md, Nadir forecast, says what it assumes.

Definitions (all days are elapsed days since the cycle's first dose, which is day 0):

* ``nadir_anc``: the median over posterior draws of each draw's lowest ANC after the dose in the cycle;
  ``nadir_anc_low``/``_high`` the 10th and 90th centiles of the same (the model ANC, without the
  measurement's own error); ``p_grade4`` the share of draws whose lowest ANC is below 0.5.
* ``nadir_day``: when the median curve (pointwise median of the draws) is lowest; ``nadir_window``: the
  first and last whole day on which the median curve is within 25 % of that lowest value (a count drawn on
  those days catches the nadir).
* ``recovery_day``: the first time after the nadir at which the median curve is back at 1.5 or more; None
  when that is not within the cycle (its planned length) or when it never falls below 1.5.
* ``curve``: ``day``, ``at`` (UTC), ``median``, and ``low``/``high``, the 80 % band of a count drawn then
  (posterior and residual error).

The minimum to forecast (else ``reason`` says what is missing): an ANC in the ``PRE_TREATMENT_DAYS``
before the first recorded dose and an ANC after a dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import cycles_from_events, dosing_days
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.cycles.schedule import planned_lengths
from monitor.analysis.forecast.fit import DEFAULT_PRIORS, Priors, fit_patient, posterior_draws

__all__ = [
    "FORECAST_COLUMNS",
    "GRADE4_BELOW",
    "MODEL",
    "PRE_TREATMENT_DAYS",
    "Forecast",
    "Priors",
    "forecast_cohort",
    "forecast_patient",
]

MODEL = "Friberg 2002 myelosuppression model, MAP fit with Laplace posterior, version 1"
# ANC results up to this many days before the first recorded dose stand for the patient's baseline (the
# model assumes a steady state before treatment; older counts say little about it). Product choice.
PRE_TREATMENT_DAYS = 60
GRADE4_BELOW = 0.5  # CTCAE v5.0 neutrophil count decreased, grade 4: < 0.5 x10^9/L
RECOVERED_AT = 1.5  # back to >= 1.5 x10^9/L: the readiness threshold (docetaxel and paclitaxel labels)
WINDOW_WITHIN = 1.25  # the nadir window: the median curve within 25 % of its lowest value
# The model has no G-CSF: counts drawn while G-CSF acts are left out of the fit, from its start to this many
# days after its end (or after its start when no end is recorded: pegfilgrastim is one injection), and a
# cycle with G-CSF is not forecast. Product choices (docs/clinical-rules.md, Nadir forecast).
GCSF_AFTER_DAYS = 7
GCSF_OPEN_DAYS = 14
_GRID_H = 2.0  # the curve's step, hours
_DRAWS = 400
_HOUR = pd.Timedelta(hours=1)

# The columns of ``forecast_cohort`` (and of the patient status), in the command line's JSON order.
FORECAST_COLUMNS = [
    "forecast_cycle",
    "forecast_cycle_start",
    "nadir_anc",
    "nadir_anc_low",
    "nadir_anc_high",
    "nadir_day",
    "nadir_window_first",
    "nadir_window_last",
    "recovery_day",
    "p_grade4",
    "n_anc_used",
    "forecast_reason",
]


@dataclass(frozen=True, slots=True)
class Forecast:
    """One patient's forecast for one cycle, or the reason there is none (then the figures are None)."""

    cycle: int | None
    cycle_start: pd.Timestamp | None
    nadir_anc: float | None = None
    nadir_anc_low: float | None = None
    nadir_anc_high: float | None = None
    nadir_day: float | None = None
    nadir_window: tuple[int, int] | None = None
    recovery_day: float | None = None
    p_grade4: float | None = None
    n_anc_used: int = 0
    model: str = MODEL
    reason: str | None = None
    horizon_days: float | None = None
    sigma: float | None = None
    curve: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["day", "at", "median", "low", "high"])
    )

    def as_dict(self) -> dict[str, object]:
        """The command line's JSON fields (times as ISO UTC)."""
        start = self.cycle_start
        return {
            "cycle": self.cycle,
            "cycle_start": None
            if start is None
            else start.tz_convert("UTC").isoformat().replace("+00:00", "Z"),
            "nadir_anc": self.nadir_anc,
            "nadir_anc_low": self.nadir_anc_low,
            "nadir_anc_high": self.nadir_anc_high,
            "nadir_day": self.nadir_day,
            "nadir_window": None if self.nadir_window is None else list(self.nadir_window),
            "recovery_day": self.recovery_day,
            "p_grade4": self.p_grade4,
            "n_anc_used": self.n_anc_used,
            "model": self.model,
            "reason": self.reason,
        }


def forecast_patient(
    anc: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
    priors: Priors = DEFAULT_PRIORS,
) -> Forecast:
    """The forecast for one patient's latest cycle started at or before ``as_of``.

    Parameters
    ----------
    anc : pd.DataFrame
        The patient's usable ANC results: ``collected_at`` (UTC) and ``value`` (x10^9/L).
    events : pd.DataFrame
        The patient's clinical events (``kind``, ``start_at``, ``details``; chemotherapy ones are doses and
        start cycles as ``analysis.cycles`` numbers them), with ``patient_key``.
    as_of : pd.Timestamp
        Only doses given and counts collected before this time are used.
    rules, timezone : CycleRules, str
        The site's cycle rules (the cycle's planned length: the forecast's horizon) and zone.
    """
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    events = events.assign(start_at=pd.to_datetime(events["start_at"], utc=True))
    given = events[events["start_at"].le(as_of).to_numpy(dtype=bool)]
    if "patient_key" not in given:
        given = given.assign(patient_key=0)
    doses = dosing_days(given, timezone)
    if doses.empty:
        return Forecast(None, None, reason="no chemotherapy recorded before this time")
    cycles = cycles_from_events(given, rules, timezone)
    latest = cycles.iloc[-1]
    cycle, start = int(latest["cycle"]), pd.Timestamp(latest["start"])
    horizon = float(planned_lengths(cycles.iloc[[-1]], rules, timezone)["planned_days"].iloc[0])
    first = pd.Timestamp(doses["start_at"].iloc[0])
    counts = anc.assign(collected_at=pd.to_datetime(anc["collected_at"], utc=True))
    counts = counts[
        counts["collected_at"].lt(as_of).to_numpy(dtype=bool) & counts["value"].notna().to_numpy()
    ]
    counts = counts[counts["collected_at"].ge(first - pd.Timedelta(days=PRE_TREATMENT_DAYS)).to_numpy()]
    counts = counts.sort_values("collected_at", kind="stable")
    support = _gcsf_windows(events, as_of)
    if (support["start"] >= start).any():
        reason = "not forecast: G-CSF was given in this cycle (the model does not include its effect)"
        return Forecast(cycle, start, reason=reason)
    if not support.empty:
        at = counts["collected_at"].to_numpy()
        hit = (at[:, None] >= support["start"].to_numpy()) & (at[:, None] < support["end"].to_numpy())
        counts = counts[pd.Series(~hit.any(axis=1), index=counts.index)]
    before = counts["collected_at"].lt(first)
    if not before.any():
        reason = f"not enough data: no ANC in the {PRE_TREATMENT_DAYS} days before the first recorded dose"
        return Forecast(cycle, start, reason=reason, n_anc_used=0)
    if before.all():
        return Forecast(cycle, start, reason="not enough data: no ANC after a dose yet", n_anc_used=0)
    dose_h = ((doses["start_at"] - first) / _HOUR).to_numpy(dtype=float)
    dose_cycle = doses["cycle_of_dose"].to_numpy(dtype=int) - 1
    times_h = ((counts["collected_at"] - first) / _HOUR).to_numpy(dtype=float)
    values = counts["value"].to_numpy(dtype=float)
    try:
        fit = fit_patient(times_h, values, dose_h, dose_cycle, priors=priors)
    except (ArithmeticError, np.linalg.LinAlgError, ValueError):
        return Forecast(
            cycle, start, reason="the model could not be fitted to these counts", n_anc_used=len(values)
        )
    start_h = (start - first) / _HOUR
    grid_h = start_h + np.arange(0.0, horizon * 24.0 + _GRID_H / 2, _GRID_H)
    try:
        draws = posterior_draws(fit, grid_h, draws=_DRAWS)
    except (ArithmeticError, np.linalg.LinAlgError, ValueError):
        return Forecast(
            cycle, start, reason="the model could not be fitted to these counts", n_anc_used=len(values)
        )
    return _summary(draws, fit.sigma, fit.dof, priors, grid_h - start_h, start, cycle, horizon, len(values))


def _gcsf_windows(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The times G-CSF was acting (``start``, ``end``): from each G-CSF event started before ``as_of`` to
    ``GCSF_AFTER_DAYS`` after its end, or ``GCSF_OPEN_DAYS`` after its start when it has no end."""
    gcsf = events[events["kind"].eq("gcsf").to_numpy(dtype=bool) & events["start_at"].le(as_of).to_numpy()]
    start = pd.to_datetime(gcsf["start_at"], utc=True)
    end = (
        pd.to_datetime(gcsf["end_at"], utc=True) if "end_at" in gcsf else pd.Series(pd.NaT, index=gcsf.index)
    )
    end = (end + pd.Timedelta(days=GCSF_AFTER_DAYS)).fillna(start + pd.Timedelta(days=GCSF_OPEN_DAYS))
    return pd.DataFrame({"start": start, "end": end})


def _summary(
    draws: np.ndarray,
    sigma: float,
    dof: float,
    priors: Priors,
    grid_h: np.ndarray,
    start: pd.Timestamp,
    cycle: int,
    horizon: float,
    used: int,
) -> Forecast:
    """Nadir, window, recovery, grade-4 probability and the curve's band from the posterior draws."""
    days = grid_h / 24.0
    after = days > 0  # the nadir is a low after the dose, never the pre-treatment value
    lowest = draws[:, after].min(axis=1)
    median = np.median(draws, axis=0)
    rng = np.random.default_rng(1)
    # A count drawn then: the draw's curve with the residual error, Student t on sigma's own degrees of
    # freedom (sigma is estimated from few counts), on the log(ANC + offset) scale.
    noise = sigma * rng.standard_t(dof, size=draws.shape)
    noisy = (draws + priors.offset) * np.exp(noise) - priors.offset
    low, high = np.quantile(np.clip(noisy, 0.0, None), [0.1, 0.9], axis=0)
    at = int(np.flatnonzero(after)[np.argmin(median[after])])
    floor = median[at]
    near = median <= WINDOW_WITHIN * floor
    first = at
    while first > 0 and near[first - 1] and after[first - 1]:
        first -= 1
    last = at
    while last < len(median) - 1 and near[last + 1]:
        last += 1
    recovered = np.flatnonzero(median[at:] >= RECOVERED_AT)
    recovery = None
    if floor < RECOVERED_AT and recovered.size:
        recovery = round(float(days[at + recovered[0]]), 1)
    curve = pd.DataFrame(
        {
            "day": days,
            "at": start + pd.to_timedelta(grid_h, unit="h"),
            "median": median,
            "low": low,
            "high": high,
        }
    )
    nadir_low, nadir_mid, nadir_high = np.quantile(lowest, [0.1, 0.5, 0.9])
    return Forecast(
        cycle,
        start,
        nadir_anc=round(float(nadir_mid), 2),
        nadir_anc_low=round(float(nadir_low), 2),
        nadir_anc_high=round(float(nadir_high), 2),
        nadir_day=round(float(days[at]), 1),
        nadir_window=(int(math.floor(days[first])), int(math.floor(days[last]))),
        recovery_day=recovery,
        p_grade4=round(float(np.mean(lowest < GRADE4_BELOW)), 3),
        n_anc_used=used,
        horizon_days=horizon,
        sigma=round(sigma, 3),
        curve=curve,
    )


def forecast_cohort(
    anc: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
    priors: Priors = DEFAULT_PRIORS,
) -> pd.DataFrame:
    """``FORECAST_COLUMNS`` for each patient with a chemotherapy event in ``events``, indexed by
    ``patient_key`` (a fit is one patient's own: the loop is over patients, each fit vectorised)."""
    rows = {}
    chemo = events[events["kind"].eq("chemotherapy").to_numpy(dtype=bool)]
    by_patient = dict(tuple(anc.groupby("patient_key", sort=False))) if not anc.empty else {}
    empty = anc.iloc[0:0]
    for key, own in chemo.groupby("patient_key", sort=False):
        found = forecast_patient(
            by_patient.get(key, empty), own, as_of=as_of, rules=rules, timezone=timezone, priors=priors
        )
        window = found.nadir_window or (None, None)
        rows[key] = {
            "forecast_cycle": found.cycle,
            "forecast_cycle_start": found.cycle_start,
            "nadir_anc": found.nadir_anc,
            "nadir_anc_low": found.nadir_anc_low,
            "nadir_anc_high": found.nadir_anc_high,
            "nadir_day": found.nadir_day,
            "nadir_window_first": window[0],
            "nadir_window_last": window[1],
            "recovery_day": found.recovery_day,
            "p_grade4": found.p_grade4,
            "n_anc_used": found.n_anc_used,
            "forecast_reason": found.reason or "",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=FORECAST_COLUMNS)
    return frame.rename_axis("patient_key")
