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
sources: ``Priors`` and docs/clinical-rules.md, Nadir forecast. Pure numpy and scipy.
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
    75-100 mg/m2), with the variability of Friberg's drug potency (EC50, 0.50). The cycle-to-cycle
    variability of the slope (0.25), the residual sigma (0.20 on the log scale: the within-subject
    variation of neutrophils, 16 % (Ricos), plus analytical and model error), its weight (4 pseudo-counts)
    and the additive part (0.1 x10^9/L) are product choices, checked in simulation (benchmarks.forecast).
    """

    circ0: float = 5.05
    circ0_sd: float = 0.42
    mtt_h: float = 89.3
    mtt_sd: float = 0.16
    gamma: float = 0.163
    gamma_sd: float = 0.039
    slope: float = 3.5
    slope_sd: float = 0.5
    cycle_sd: float = 0.25
    sigma: float = 0.20
    sigma_weight: float = 4.0
    offset: float = 0.1

    def means(self, cycles: int) -> np.ndarray:
        """Prior means of the parameter vector (log Circ0, log MTT, log gamma, log slope, cycle factors)."""
        typical = [math.log(self.circ0), math.log(self.mtt_h), math.log(self.gamma), math.log(self.slope)]
        return np.array(typical + [0.0] * cycles)

    def sds(self, cycles: int) -> np.ndarray:
        """Prior standard deviations of the same vector."""
        return np.array([self.circ0_sd, self.mtt_sd, self.gamma_sd, self.slope_sd] + [self.cycle_sd] * cycles)


DEFAULT_PRIORS = Priors()
_STEP = 1e-4  # finite-difference step on the log scale (the stacked sets share the solver's steps)


@dataclass(frozen=True, slots=True)
class Fit:
    """The posterior: ``mean`` (MAP, log scale), ``cov`` (Laplace), ``sigma`` and the design it holds for."""

    mean: np.ndarray
    cov: np.ndarray
    sigma: float
    dof: float  # degrees of freedom of sigma's posterior: the band's Student t
    dose_h: np.ndarray
    dose_cycle: np.ndarray  # index of each dose's cycle factor in the parameter vector (0-based cycle)
    priors: Priors
    converged: bool


def _curves(theta: np.ndarray, dose_h: np.ndarray, dose_cycle: np.ndarray, times_h: np.ndarray) -> np.ndarray:
    """The model ANC at ``times_h`` for each row of ``theta`` (log parameters)."""
    slopes = np.exp(theta[:, 3][:, None] + theta[:, 4 + dose_cycle])
    curves = simulate(np.exp(theta[:, 0]), np.exp(theta[:, 1]), np.exp(theta[:, 2]), slopes, dose_h, times_h)
    floor: np.ndarray = np.maximum(curves, 0.0)  # (the solver may overshoot zero when a count is near it)
    return floor


def fit_patient(
    times_h: np.ndarray,
    anc: np.ndarray,
    dose_h: np.ndarray,
    dose_cycle: np.ndarray,
    *,
    priors: Priors = DEFAULT_PRIORS,
) -> Fit:
    """The MAP fit and its Laplace posterior for one patient.

    Parameters
    ----------
    times_h, anc : np.ndarray
        The patient's ANC results (x10^9/L) and their times in hours since the first dose.
    dose_h, dose_cycle : np.ndarray
        Dose times (hours since the first dose, increasing) and each dose's cycle (0-based).
    """
    cycles = int(dose_cycle.max()) + 1
    mu, sd = priors.means(cycles), priors.sds(cycles)
    observed = np.log(np.clip(anc, 0.0, None) + priors.offset)
    n = mu.size
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def evaluate(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        key = x.tobytes() + np.float64(sigma).tobytes()
        if key not in cache:
            cache.clear()
            sets = np.vstack([x, x + _STEP * np.eye(n)])
            model = np.log(_curves(sets, dose_h, dose_cycle, times_h) + priors.offset)
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
    return Fit(x, cov, sigma, dof, dose_h, dose_cycle, priors, converged)


def posterior_draws(fit: Fit, times_h: np.ndarray, *, draws: int = 400, seed: int = 0) -> np.ndarray:
    """Model ANC curves of ``draws`` parameter sets from the posterior, shape (draws, len(times_h)).

    The draws are fixed by ``seed``: one patient's forecast is the same each time it is computed.
    """
    rng = np.random.default_rng(seed)
    theta = rng.multivariate_normal(
        fit.mean, fit.cov, size=draws, method="cholesky" if _pd(fit.cov) else "eigh"
    )
    return _curves(theta, fit.dose_h, fit.dose_cycle, times_h)


def _pd(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True
