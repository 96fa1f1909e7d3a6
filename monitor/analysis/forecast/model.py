"""The Friberg myelosuppression model with a concentration-free drug effect, solved with ``solve_ivp``.

Structure (Friberg LE et al., J Clin Oncol 2002;20:4713-21; docs/clinical-basis.md, Nadir forecast): a
drug-sensitive proliferating compartment, three transit compartments and the circulating neutrophils (ANC,
x10^9/L), all with rate k_tr = 4 / MTT, and a feedback (Circ0 / Circ)^gamma on proliferation::

    dProl/dt = k_tr * Prol * ((1 - E(t)) * (Circ0 / Circ)^gamma - 1)
    dTx1/dt  = k_tr * (Prol - Tx1);  dTx2/dt = k_tr * (Tx1 - Tx2);  dTx3/dt = k_tr * (Tx2 - Tx3)
    dCirc/dt = k_tr * (Tx3 - Circ)

with every compartment at Circ0 before the first dose. The drug effect needs no concentrations: each dose
adds an exposure pulse that starts at the cycle's slope and decays exponentially, E(t) = sum over doses of
slope_c * exp(-k_e * (t - t_dose)) with k_e = ln 2 / ``EXPOSURE_HALF_LIFE_H`` (a linear drug effect on a
virtual one-compartment exposure; slope_c is the patient's slope times the cycle's own factor). Between two
doses the exposure is one decaying exponential, so the system is integrated dose to dose, as the
logarithms of the compartments (positive whatever the drug effect).

Many parameter sets are integrated at once, stacked into one system (the finite-difference Jacobian of a
fit and the draws of its posterior), so that one call of the solver serves them all with the same steps.
Pure numpy and scipy; no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

__all__ = ["EXPOSURE_HALF_LIFE_H", "simulate"]

# The virtual exposure's half-life, hours: a short pulse after each dose (the demo cohort's simulation uses
# the same; docs/clinical-basis.md, Nadir forecast). Only the product slope x duration matters much: the
# marrow integrates the pulse over days.
EXPOSURE_HALF_LIFE_H = 12.0
_K_E = math.log(2.0) / EXPOSURE_HALF_LIFE_H
_LIMIT = 40.0


def simulate(
    circ0: np.ndarray,
    mtt_h: np.ndarray,
    gamma: np.ndarray,
    slopes: np.ndarray,
    dose_h: np.ndarray,
    times_h: np.ndarray,
    *,
    rtol: float = 1e-4,
) -> np.ndarray:
    """The model ANC of K parameter sets at ``times_h`` (hours; 0 = the first dose).

    Parameters
    ----------
    circ0, mtt_h, gamma : np.ndarray
        Shape (K,): baseline ANC (x10^9/L), mean transit time (h) and feedback exponent of each set.
    slopes : np.ndarray
        Shape (K, D): the peak drug effect of each dose (the patient's slope times its cycle's factor).
    dose_h : np.ndarray
        Shape (D,): dose times in hours, increasing, the first at 0.
    times_h : np.ndarray
        Shape (T,): times wanted, in any order; those before 0 are at baseline (Circ0).

    Returns
    -------
    np.ndarray
        Shape (K, T): the ANC of every set at every time.

    Examples
    --------
    >>> one = np.array([5.05]), np.array([89.3]), np.array([0.163])
    >>> anc = simulate(*one, np.array([[4.0]]), np.array([0.0]), np.array([-24.0, 0.0, 24.0 * 9, 24.0 * 21]))
    >>> bool(anc[0, 0] == 5.05), round(float(anc[0, 1]), 2), bool(anc[0, 2] < 1.0), bool(anc[0, 3] > 1.5)
    (True, 5.05, True, True)
    """
    circ0 = np.asarray(circ0, dtype=float)
    k = circ0.size
    ktr = 4.0 / np.asarray(mtt_h, dtype=float)  # three transit compartments: MTT = 4 / k_tr (Friberg 2002)
    gamma = np.asarray(gamma, dtype=float)
    wanted_h = np.asarray(times_h, dtype=float)
    times_h, back = np.unique(wanted_h, return_inverse=True)  # sorted, once each; any order asked
    out = np.empty((k, times_h.size))
    before = times_h < 0.0
    out[:, before] = circ0[:, None]
    # The compartments are integrated as logarithms: they stay positive however strong the drug effect,
    # and a fall of several orders of magnitude is a straight line for the solver (no overshoot below 0).
    state = np.tile(np.log(circ0), 5)  # log Prol, Tx1, Tx2, Tx3, Circ, each a block of K
    log_circ0 = np.log(circ0)
    exposure = np.zeros(k)
    at = float(dose_h[0]) if dose_h.size else 0.0
    ends = np.append(dose_h[1:], max(float(times_h.max(initial=0.0)), at) + 1.0)
    for dose, (start, end) in enumerate(zip(dose_h, ends, strict=True)):
        exposure = exposure * math.exp(-_K_E * (start - at)) + slopes[:, dose]
        at = float(start)
        final = dose == dose_h.size - 1
        wanted = times_h >= start if final else (times_h >= start) & (times_h < end)
        if final:
            if not wanted.any():
                break
            stop, t_eval = float(times_h[wanted].max()), times_h[wanted]
        else:
            stop, t_eval = float(end), np.append(times_h[wanted], float(end))
        if stop <= start:  # only the dose's own instant is wanted: the state there
            out[:, np.flatnonzero(wanted)] = np.exp(state[4 * k :, None])
            continue
        solution = solve_ivp(
            _rhs,
            (float(start), stop),
            state,
            t_eval=t_eval,
            args=(k, ktr, gamma, log_circ0, exposure.copy(), float(start)),
            rtol=rtol,
            atol=1e-4,  # on the logarithms: 0.01 % of each compartment
        )
        if not solution.success:
            raise ArithmeticError(f"the model could not be integrated: {solution.message}")
        values = np.exp(solution.y[4 * k :, :])
        out[:, np.flatnonzero(wanted)] = values if final else values[:, :-1]
        state = solution.y[:, -1]
    if not np.isfinite(out).all():
        raise ArithmeticError("the model gave no finite count")
    return out[:, back]


def _rhs(
    t: float,
    y: np.ndarray,
    k: int,
    ktr: np.ndarray,
    gamma: np.ndarray,
    log_circ0: np.ndarray,
    exposure: np.ndarray,
    start: float,
) -> np.ndarray:
    """The model's equations for the logarithms of the compartments: d(log X)/dt = (dX/dt) / X."""
    effect = exposure * math.exp(-_K_E * (t - start))
    # Ratios between neighbouring compartments (and Circ0 / Circ) are held within e^±40: beyond a 10^17-fold
    # difference the marrow is wiped out anyway, and the exponentials would overflow.
    ratio = np.exp(np.clip(y[: 4 * k] - y[k:], -_LIMIT, _LIMIT))  # Prol/Tx1, Tx1/Tx2, Tx2/Tx3, Tx3/Circ
    feedback = np.exp(gamma * np.clip(log_circ0 - y[4 * k :], -_LIMIT, _LIMIT))  # (Circ0 / Circ)^gamma
    return np.concatenate((ktr * ((1.0 - effect) * feedback - 1.0), np.tile(ktr, 4) * (ratio - 1.0)))
