"""One patient's Bayesian fit of the myelosuppression model and what it predicts for a cycle.

The fit is the maximum a posteriori (MAP) estimate of the patient's parameters on the log scale, under
log-normal population priors, with every ANC of the patient (all cycles, the current one's counts so far)
as data; its uncertainty is the Laplace approximation (a normal posterior with the inverse of the
Gauss-Newton Hessian as covariance). Parameters: Circ0, MTT, gamma and the drug slope (between-patient
variability), and one factor on the slope per cycle (inter-cycle variability).

Residual error, proportional and additive at once, by transforming both sides: log(ANC + c) is normal
around log(model + c) with standard deviation sigma, which is about sigma x ANC for large counts and
sigma x c near zero. Sigma is the patient's own, estimated with a scaled inverse chi-square prior from
the population value (its posterior mode given the fit's residuals, fitted in turn with the parameters).

Predictions come from posterior draws: the nadir of each draw's curve (80 % interval, probability below
0.5), and the 80 % band of a count drawn at each time (posterior and residual error). Values and
sources: ``Priors`` and docs/clinical-basis.md, Nadir forecast. Pure numpy and scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from monitor.analysis.forecast.model import simulate

__all__ = ["DEFAULT_PRIORS", "Fit", "Priors", "fit_patient", "posterior_draws"]


@dataclass(frozen=True, slots=True)
class Priors:
    """Population priors: typical values and between-patient standard deviations on the log scale.

    Circ0, MTT and gamma with their variability are Friberg et al. 2002 (Table 4, docetaxel, as the DTAT
    package transcribes it). The drug slope has no concentration to scale it: its typical value is set so
    that the typical patient's nadir is about 0.6 x10^9/L on day 8 (a grade 3-4 nadir, as after docetaxel
    75-100 mg/m2), with the variability of Friberg's drug potency (EC50, 0.50; van Hasselt 2013 found 54 %
    for eribulin's slope). The slope's trend from cycle to cycle (SD 0.10 a cycle: nadirs that deepen with
    cumulative marrow toxicity, or become shallower), its cycle-to-cycle variability (0.25), the residual
    sigma (0.20 on the log scale: the within-subject variation of neutrophils, 12.9 % hour to hour in
    Statland 1978, plus analytical and model error), its weight (4 pseudo-counts) and the additive part
    (0.1 x10^9/L) are product choices, checked in simulation (benchmarks.forecast).
    """

    circ0: float = 5.05
    circ0_sd: float = 0.42
    mtt_h: float = 89.3
    mtt_sd: float = 0.16
    gamma: float = 0.163
    gamma_sd: float = 0.039
    slope: float = 3.5
    slope_sd: float = 0.5
    trend_sd: float = 0.10
    cycle_sd: float = 0.25
    sigma: float = 0.20
    sigma_weight: float = 4.0
    offset: float = 0.1

    def means(self, cycles: int) -> np.ndarray:
        """Prior means of the parameter vector: log Circ0, log MTT, log gamma, log slope, the slope's trend
        per cycle (log scale), then one factor per cycle (log scale)."""
        typical = [
            math.log(self.circ0),
            math.log(self.mtt_h),
            math.log(self.gamma),
            math.log(self.slope),
            0.0,
        ]
        return np.array(typical + [0.0] * cycles)

    def sds(self, cycles: int) -> np.ndarray:
        """Prior standard deviations of the same vector."""
        spread = [self.circ0_sd, self.mtt_sd, self.gamma_sd, self.slope_sd, self.trend_sd]
        return np.array(spread + [self.cycle_sd] * cycles)


DEFAULT_PRIORS = Priors()
_STEP = 1e-4  # finite-difference step on the log scale (the stacked sets share the solver's steps)
_FIXED = 5  # parameters before the cycle factors
_WITHIN = 6.0  # the model is evaluated with each parameter within this many prior SDs of its mean


@dataclass(frozen=True, slots=True)
class Fit:
    """The posterior: ``mean`` (MAP, log scale), ``cov`` (Laplace), ``sigma`` and the design it holds for."""

    mean: np.ndarray
    cov: np.ndarray
    sigma: float
    dof: float  # degrees of freedom of sigma's posterior: the band's Student t
    design: Design
    priors: Priors
    converged: bool


def _curves(theta: np.ndarray, design: Design, times_h: np.ndarray) -> np.ndarray:
    """The model ANC at ``times_h`` for each row of ``theta`` (log parameters), each parameter held within
    ``_WITHIN`` prior SDs of its mean (far beyond any plausible patient; the solver is then never asked
    for an absurd marrow)."""
    theta = np.clip(theta, design.low, design.high)
    cycle = design.dose_cycle
    log_slopes = theta[:, 3][:, None] + theta[:, 4][:, None] * cycle + theta[:, _FIXED + cycle]
    slopes = np.exp(log_slopes) * design.dose_scale
    return simulate(
        np.exp(theta[:, 0]), np.exp(theta[:, 1]), np.exp(theta[:, 2]), slopes, design.dose_h, times_h
    )


@dataclass(frozen=True, slots=True)
class Design:
    """The doses a fit knows: times (hours since the first dose), cycle of each (0-based), the dose relative
    to the first one when the regimen text gives both (else 1), and the bounds of the parameters."""

    dose_h: np.ndarray
    dose_cycle: np.ndarray
    dose_scale: np.ndarray
    low: np.ndarray
    high: np.ndarray


def fit_patient(
    times_h: np.ndarray,
    anc: np.ndarray,
    dose_h: np.ndarray,
    dose_cycle: np.ndarray,
    *,
    dose_scale: np.ndarray | None = None,
    priors: Priors = DEFAULT_PRIORS,
) -> Fit:
    """The MAP fit and its Laplace posterior for one patient.

    Parameters
    ----------
    times_h, anc : np.ndarray
        The patient's ANC results (x10^9/L) and their times in hours since the first dose.
    dose_h, dose_cycle : np.ndarray
        Dose times (hours since the first dose, increasing) and each dose's cycle (0-based).
    dose_scale : np.ndarray, optional
        Each dose relative to the first (a dose reduced to 80 % is 0.8); 1 when unknown.
    """
    cycles = int(dose_cycle.max()) + 1
    mu, sd = priors.means(cycles), priors.sds(cycles)
    scale = np.ones(dose_h.size) if dose_scale is None else np.asarray(dose_scale, dtype=float)
    design = Design(dose_h, dose_cycle, scale, mu - _WITHIN * sd, mu + _WITHIN * sd)
    observed = np.log(np.clip(anc, 0.0, None) + priors.offset)
    n = mu.size
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def evaluate(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        key = x.tobytes() + np.float64(sigma).tobytes()
        if key not in cache:
            cache.clear()
            sets = np.vstack([x, x + _STEP * np.eye(n)])
            model = np.log(_curves(sets, design, times_h) + priors.offset)
            residual = np.concatenate([(observed - model[0]) / sigma, (x - mu) / sd])
            data_jac = -(model[1:] - model[0]).T / _STEP / sigma
            cache[key] = residual, np.vstack([data_jac, np.diag(1.0 / sd)])
        return cache[key]

    x, sigma, converged = mu.copy(), priors.sigma, True
    for _ in range(3):  # the parameters given sigma, then sigma given the parameters (its posterior mode)
        fixed = sigma
        result = least_squares(
            lambda v, s=fixed: evaluate(v, s)[0],
            x,
            jac=lambda v, s=fixed: evaluate(v, s)[1],
            method="lm",
            xtol=1e-4,
            ftol=1e-4,
            max_nfev=60,
        )
        x, converged = result.x, bool(result.success)
        data = (result.fun[: anc.size] * fixed) ** 2
        weight = priors.sigma_weight
        sigma = math.sqrt((weight * priors.sigma**2 + data.sum()) / (weight + anc.size + 2.0))
        if abs(sigma - fixed) < 0.01 * fixed:
            break
    # Sigma for prediction: the fitted residuals are smaller than the errors by what the parameters
    # absorbed, so the degrees of freedom lose the fit's effective number of parameters (the data rows'
    # leverage, the trace of the hat matrix), as restricted maximum likelihood does.
    residual, jac = evaluate(x, sigma)
    leverage = float(np.trace(jac[: anc.size] @ np.linalg.pinv(jac.T @ jac) @ jac[: anc.size].T))
    dof = max(priors.sigma_weight + anc.size - leverage, 1.0)
    sigma = math.sqrt(
        (priors.sigma_weight * priors.sigma**2 + ((residual[: anc.size] * sigma) ** 2).sum()) / dof
    )
    _residual, jac = evaluate(x, sigma)
    cov = np.linalg.pinv(jac.T @ jac)
    return Fit(x, cov, sigma, dof, design, priors, converged)


def posterior_draws(fit: Fit, times_h: np.ndarray, *, draws: int = 400, seed: int = 0) -> np.ndarray:
    """Model ANC curves of ``draws`` parameter sets from the posterior, shape (draws, len(times_h)).

    The draws are fixed by ``seed``: one patient's forecast is the same each time it is computed.
    """
    rng = np.random.default_rng(seed)
    theta = rng.multivariate_normal(
        fit.mean, fit.cov, size=draws, method="cholesky" if _pd(fit.cov) else "eigh"
    )
    return _curves(theta, fit.design, times_h)


def _pd(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True
