"""Nadir forecast: the Friberg myelosuppression model fitted to a patient's own ANC counts.

For the latest chemotherapy cycle started at or before ``as_of``, using only the ANC results collected before
``as_of`` (all cycles, the current one's so far): the median nadir ANC with its 80 % interval, the day of
the nadir and the window of days a CBC best catches it, the day the median forecast is back at 1.5, the
probability that the nadir falls below 0.5 (CTCAE grade 4), and the curve with the 80 % band of a count
drawn at each time. Decision support: a model with population priors, validated in simulation only
(benchmarks.forecast); docs/clinical-basis.md, Nadir forecast, says what it assumes.

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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import calendar_days, cycles_from_events, day_start, dosing_days
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.cycles.schedule import planned_lengths
from monitor.analysis.forecast.fit import DEFAULT_PRIORS, Fit, Priors, fit_patient, posterior_draws

__all__ = [
    "GRADE4_BELOW",
    "MODEL",
    "PRE_TREATMENT_DAYS",
    "Forecast",
    "Priors",
    "forecast_patient",
]

MODEL = "Friberg 2002 myelosuppression model, MAP fit with Laplace posterior, version 2"
# ANC results up to this many days before the first recorded dose stand for the patient's baseline (the
# model assumes a steady state before treatment; older counts say little about it). Product choice.
PRE_TREATMENT_DAYS = 60
GRADE4_BELOW = 0.5  # CTCAE v5.0 neutrophil count decreased, grade 4: < 0.5 x10^9/L
RECOVERED_AT = 1.5  # back to >= 1.5 x10^9/L: the readiness threshold (docetaxel and paclitaxel labels)
WINDOW_WITHIN = 1.25  # the nadir window: the median curve within 25 % of its lowest value
# Cycles this short or shorter are not forecast: a weekly schedule's nadir builds over several doses, which
# the validation does not cover. Product choice.
SHORTEST_CYCLE_DAYS = 10
# The first elapsed day after a dose on which a count tells how this patient's marrow answers (D5); the
# minimum to forecast needs one. Product choice.
INFORMATIVE_DAY = 4
# A dose in a regimen's text: the drug's words, then the amount and its unit ("docetaxel 75 mg/m2").
_DOSE = r"(?P<drug>[a-z][a-z\- ]*?)\s*(?P<amount>\d+(?:[.,]\d+)?)\s*(?P<unit>mg/m2|mg/m²|mg/kg|mg|auc)"
# The model has no G-CSF: counts drawn while G-CSF acts are left out of the fit, from its start to this many
# days after its end (or after its start when no end is recorded: pegfilgrastim is one injection), and a
# cycle with G-CSF is not forecast. Product choices (docs/clinical-basis.md, Nadir forecast).
GCSF_AFTER_DAYS = 7
GCSF_OPEN_DAYS = 14
_GRID_H = 2.0  # the curve's step, hours
_DRAWS = 400
_HOUR = pd.Timedelta(hours=1)


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
    observed_nadir_anc: float | None = None  # the lowest ANC measured in the cycle so far (from day 1)
    observed_nadir_day: float | None = None  # and its day (elapsed days since the dose)
    observed_nadir_calendar_day: int | None = None  # its calendar day since the dosing day (site zone)
    nadir_passed: bool = False  # the time asked is after the nadir window: the curve is fitted, not ahead
    nadir_window_ends_at: pd.Timestamp | None = None  # the end of the window's last day (UTC)
    recovery_threshold: float = 1.5  # the ANC recovery is judged at (the site's ``cycles.recovery_anc``)
    recovery_calendar_day: int | None = None  # the calendar day of ``recovery_day`` since the dosing day
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
            "observed_nadir_anc": self.observed_nadir_anc,
            "observed_nadir_day": self.observed_nadir_day,
            "nadir_passed": self.nadir_passed,
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
    as_of = _utc(as_of)
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
    # The horizon: the cycle's planned length (its regimen's, else the previous cycles', else the site's).
    horizon = float(planned_lengths(cycles, rules, timezone)["planned_days"].iloc[-1])
    gap = (start - cycles["start"].iloc[-2]) / pd.Timedelta(days=1) if len(cycles) > 1 else horizon
    if horizon <= SHORTEST_CYCLE_DAYS or gap <= SHORTEST_CYCLE_DAYS:
        reason = (
            f"not forecast: cycles of {SHORTEST_CYCLE_DAYS:g} days or less (a weekly schedule's nadir builds "
            "over several doses, and consecutive dosing days read as cycles; the model is not validated for "
            "them)"
        )
        return Forecast(cycle, start, reason=reason, horizon_days=horizon)
    first = pd.Timestamp(doses["start_at"].iloc[0])
    counts = anc.assign(collected_at=pd.to_datetime(anc["collected_at"], utc=True))
    counts = counts[
        counts["collected_at"].lt(as_of).to_numpy(dtype=bool)
        & counts["value"].ge(0).to_numpy(dtype=bool)  # (a negative count is an error, not a zero)
    ]
    counts = counts[counts["collected_at"].ge(first - pd.Timedelta(days=PRE_TREATMENT_DAYS)).to_numpy()]
    counts = counts.sort_values("collected_at", kind="stable")
    support = _gcsf_windows(events, as_of)
    previous = cycles["start"].iloc[-2] if len(cycles) > 1 else start
    if (support["end"] > start).any():
        reason = "not forecast: G-CSF acts in this cycle (the model does not include its effect)"
        return Forecast(cycle, start, reason=reason, horizon_days=horizon)
    if ((support["start"] >= previous) & (support["start"] < start)).any():
        reason = (
            "not forecast: G-CSF was given in the previous cycle and is likely again in this one (the model "
            "does not include its effect)"
        )
        return Forecast(cycle, start, reason=reason, horizon_days=horizon)
    if not support.empty:
        at = counts["collected_at"].to_numpy()
        hit = (at[:, None] >= support["start"].to_numpy()) & (at[:, None] < support["end"].to_numpy())
        counts = counts[pd.Series(~hit.any(axis=1), index=counts.index)]
    missing = _missing(counts, doses, first)
    if missing:
        return Forecast(cycle, start, reason=f"not enough data: {missing}", horizon_days=horizon)
    dose_h = ((doses["start_at"] - first) / _HOUR).to_numpy(dtype=float)
    dose_cycle = doses["cycle_of_dose"].to_numpy(dtype=int) - 1
    times_h = ((counts["collected_at"] - first) / _HOUR).to_numpy(dtype=float)
    values = counts["value"].to_numpy(dtype=float)
    failed = Forecast(
        cycle, start, reason="the model could not be fitted to these counts", n_anc_used=len(values)
    )
    try:
        fit = fit_patient(
            times_h, values, dose_h, dose_cycle, dose_scale=dose_scale(_dose_texts(doses)), priors=priors
        )
        if not fit.converged:
            return failed
        start_h = (start - first) / _HOUR
        grid_h = start_h + np.arange(0.0, horizon * 24.0 + _GRID_H / 2, _GRID_H)
        draws = posterior_draws(fit, grid_h, draws=_DRAWS)
    except (ArithmeticError, np.linalg.LinAlgError, ValueError):
        return failed
    seen = counts[counts["collected_at"].ge(start + pd.Timedelta(days=1)).to_numpy()]
    times = pd.Series(start + pd.to_timedelta(grid_h - start_h, unit="h"))
    day = calendar_days(pd.Series(start, index=times.index), times, timezone)
    return _summary(
        draws,
        fit,
        grid_h - start_h,
        day,
        Cycle(cycle, start, horizon, rules.recovery_anc, as_of, timezone),
        seen,
        len(values),
    )


def _utc(time: pd.Timestamp) -> pd.Timestamp:
    """A time as UTC; one without a zone is taken as UTC."""
    time = pd.Timestamp(time)
    return time.tz_localize("UTC") if time.tzinfo is None else time.tz_convert("UTC")


def _missing(counts: pd.DataFrame, doses: pd.DataFrame, first: pd.Timestamp) -> str:
    """What the minimum to forecast lacks ("" when nothing): an ANC in the ``PRE_TREATMENT_DAYS`` before the
    first recorded dose, and an ANC from day ``INFORMATIVE_DAY`` after a dose (D5: before then a count says
    little about how this patient's marrow answers, and the forecast would be the population's alone)."""
    if not counts["collected_at"].lt(first).any():
        return f"no ANC in the {PRE_TREATMENT_DAYS} days before the first recorded dose"
    dose_at = doses["start_at"].sort_values().to_numpy()
    at = counts["collected_at"].to_numpy()
    last_dose = np.searchsorted(dose_at, at, side="right") - 1
    since = at - dose_at[np.clip(last_dose, 0, None)]
    informative = (last_dose >= 0) & (since >= np.timedelta64(INFORMATIVE_DAY, "D"))
    if not informative.any():
        return (
            f"no ANC yet from D{INFORMATIVE_DAY + 1} of a cycle (before then a forecast would be the "
            "population's alone, whatever this patient's marrow does)"
        )
    return ""


@dataclass(frozen=True, slots=True)
class Cycle:
    """The cycle forecast: its number, first dose, planned length (days), recovery threshold and the time
    the forecast is made at."""

    number: int
    start: pd.Timestamp
    horizon: float
    recovered_at: float
    as_of: pd.Timestamp
    timezone: str


def _dose_texts(doses: pd.DataFrame) -> pd.Series:
    """Each dose's text naming its dose: the regimen (the event's details), else its label."""
    regimen = doses["regimen"].fillna("").astype(str)
    if "label" not in doses:
        return regimen
    named = regimen.str.lower().str.extract(_DOSE)["amount"].notna()
    return regimen.where(named, doses["label"].fillna("").astype(str))


def dose_scale(regimen: pd.Series) -> np.ndarray:
    """Each dose relative to the first, when the regimen texts of both give a dose of the same drug in the
    same unit ("docetaxel 75 mg/m2" then "docetaxel 60 mg/m2": 0.8); 1 otherwise.

    >>> texts = ["Docetaxel 75 mg/m2 q21d", "docetaxel 60 mg/m2 q21d", "docetaxel q21d"]
    >>> dose_scale(pd.Series(texts)).tolist()
    [1.0, 0.8, 1.0]
    """
    found = regimen.fillna("").astype(str).str.lower().str.extract(_DOSE).fillna("")
    amount = pd.to_numeric(found["amount"].str.replace(",", ".", regex=False), errors="coerce")
    if amount.empty or not amount.iloc[0] > 0:
        return np.ones(len(regimen))
    drug, unit = found["drug"].str.strip(), found["unit"]
    same = drug.eq(drug.iloc[0]) & unit.eq(unit.iloc[0]) & amount.gt(0)
    ratio = (amount / amount.iloc[0]).where(same)
    scale: np.ndarray = ratio.fillna(1.0).to_numpy(dtype=float)
    return scale


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
    fit: Fit,
    grid_h: np.ndarray,
    calendar: pd.Series,
    cycle: Cycle,
    seen: pd.DataFrame,
    used: int,
) -> Forecast:
    """Nadir, window, recovery, grade-4 probability and the curve's band from the posterior draws; what was
    already measured in the cycle (from its day 1) overrides the model where it is certain."""
    days = grid_h / 24.0
    after = days >= 1.0  # the nadir is a low from day 1 (D2), as the cycle table takes it, never the dose's
    lowest = draws[:, after].min(axis=1)
    median = np.median(draws, axis=0)
    rng = np.random.default_rng(1)
    # A count drawn then: the draw's curve with the residual error, Student t on sigma's own degrees of
    # freedom (sigma is estimated from few counts), on the log(ANC + offset) scale.
    offset = fit.priors.offset
    noise = fit.sigma * rng.standard_t(fit.dof, size=draws.shape)
    low, high = np.quantile(np.clip((draws + offset) * np.exp(noise) - offset, 0.0, None), [0.1, 0.9], axis=0)
    at = int(np.flatnonzero(after)[np.argmin(median[after])])
    near = median <= WINDOW_WITHIN * median[at]
    first = at
    while first > 0 and near[first - 1] and after[first - 1]:
        first -= 1
    last = at
    while last < len(median) - 1 and near[last + 1]:
        last += 1
    recovered = np.flatnonzero(median[at:] >= cycle.recovered_at)
    recovery = recovery_on = None
    if median[at] < cycle.recovered_at and recovered.size:
        recovery = round(float(days[at + recovered[0]]), 1)
        recovery_on = int(calendar.iloc[at + recovered[0]])
    curve = pd.DataFrame(
        {
            "day": days,
            "at": cycle.start + pd.to_timedelta(grid_h, unit="h"),
            "median": median,
            "low": low,
            "high": high,
        }
    )
    nadir_low, nadir_mid, nadir_high = np.quantile(lowest, [0.1, 0.5, 0.9])
    p_grade4 = float(np.mean(lowest < GRADE4_BELOW))
    observed = observed_day = observed_on = None
    if not seen.empty:
        lowest_seen = int(np.argmin(seen["value"].to_numpy(dtype=float)))
        observed = float(seen["value"].iloc[lowest_seen])
        seen_at = pd.Timestamp(seen["collected_at"].iloc[lowest_seen])
        observed_day = round((seen_at - cycle.start) / pd.Timedelta(days=1), 1)
        observed_on = int(
            calendar_days(pd.Series([cycle.start]), pd.Series([seen_at]), cycle.timezone).iloc[0]
        )
        if observed < GRADE4_BELOW:
            p_grade4 = 1.0  # grade 4 was measured in this cycle: no longer a chance
    window = (int(calendar.iloc[first]), int(calendar.iloc[last]))
    dosing_day = day_start(pd.Series([cycle.start]), cycle.timezone).iloc[0]
    window_end = day_start(
        pd.Series([dosing_day + pd.Timedelta(days=window[1] + 1, hours=12)]), cycle.timezone
    ).iloc[0]
    return Forecast(
        cycle.number,
        cycle.start,
        nadir_anc=round(float(nadir_mid), 2),
        nadir_anc_low=round(float(nadir_low), 2),
        nadir_anc_high=round(float(nadir_high), 2),
        nadir_day=round(float(days[at]), 1),
        nadir_window=window,
        recovery_day=recovery,
        p_grade4=round(p_grade4, 3),
        n_anc_used=used,
        horizon_days=cycle.horizon,
        sigma=round(fit.sigma, 3),
        curve=curve,
        observed_nadir_anc=observed,
        observed_nadir_day=observed_day,
        observed_nadir_calendar_day=observed_on,
        nadir_passed=bool(cycle.as_of >= window_end),
        nadir_window_ends_at=window_end,
        recovery_threshold=cycle.recovered_at,
        recovery_calendar_day=recovery_on,
    )
