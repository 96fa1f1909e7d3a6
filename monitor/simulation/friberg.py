"""Friberg semi-mechanistic model of chemotherapy-induced neutropenia, for the synthetic demo cohort.

The model is Friberg LE et al., J Clin Oncol 2002;20:4713-21, as implemented in the DTAT R package: a
drug-sensitive proliferating compartment, three transit compartments and the circulating neutrophils, all
with rate k_tr = 4 / MTT, and a feedback (Circ0 / Circ)^gamma on proliferation (docs/clinical-basis.md,
Friberg model for the synthetic cohort). It is integrated with a fixed step, vectorised across patients;
only the loop over time steps is in Python. Dosing is decided inside that loop, because a cycle is
postponed when the ANC has not recovered (docs/clinical-basis.md, Readiness thresholds). Nothing here is
fitted to data: it makes demo trajectories look right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CYCLE_H = 21 * 24.0  # 21-day cycles, as docetaxel and paclitaxel are usually given (illustrative)
DELAY_H = 7 * 24.0  # a postponed cycle is re-checked one week later (common practice; illustrative)
READY_ANC = 1.5  # give the cycle only when ANC >= 1.5 x10^9/L (docetaxel prescribing information)
MAX_POSTPONED = 2  # after two postponements of one cycle the course stops (illustrative) ...
MIN_CYCLES = 4  # ... but never before four cycles have been given (the demo promises 4 to 8)
DRUG_HALF_LIFE_H = 12.0  # virtual exposure; tuned so the nadir falls on day 7-14 (see Nadir timing)
INJURY_HALF_LIFE_H = 60 * 24.0  # cumulative marrow injury heals over months (illustrative)


@dataclass(frozen=True, slots=True, eq=False)
class ChemoPlan:
    """Planned treatment and model parameters; every field holds one entry per patient."""

    circ0: np.ndarray  # the patient's own pre-treatment ANC, 10^9/L (the population typical is 5.05)
    mtt_h: np.ndarray  # mean transit time, typical 89.3 h (Friberg et al. 2002, Table 4 row 1)
    gamma: np.ndarray  # feedback exponent, typical 0.163 (Friberg et al. 2002)
    emax: np.ndarray  # Emax drug model, typical 83.9 (Friberg et al. 2002)
    ec50: np.ndarray  # typical 7.17, in the same (virtual) unit as the exposure (Friberg: 7.17 uM)
    exposure: np.ndarray  # peak virtual exposure after the first dose
    growth: np.ndarray  # exposure multiplier per further cycle: 1 = none, > 1 = deepening nadirs
    damage: np.ndarray  # fraction of proliferation lost per cycle given (marrow injury); 0 = none
    first_dose_h: np.ndarray  # hours after the start of follow-up
    n_cycles: np.ndarray  # planned cycles (int)
    gcsf_on_h: np.ndarray  # G-CSF effect window after each dose, start (h); NaN when no G-CSF
    gcsf_off_h: np.ndarray  # and end (h)
    gcsf_boost: np.ndarray  # extra proliferation while G-CSF acts (0.8 = +80 %)
    gcsf_mtt_factor: np.ndarray  # MTT multiplier while G-CSF acts (< 1 = faster maturation)


@dataclass(frozen=True, slots=True, eq=False)
class ChemoRun:
    """Result of :func:`simulate`: the ANC path and the doses actually given."""

    anc: np.ndarray  # (steps + 1, patients) model ANC at t = step * dt_h
    dose_h: np.ndarray  # (patients, max cycles) hour each cycle was given; NaN if never given
    postponed: np.ndarray  # (patients, max cycles) weeks each cycle was postponed (int)
    stopped: np.ndarray  # (patients,) course stopped early because the ANC did not recover
    dt_h: float


def simulate(plan: ChemoPlan, *, horizon_h: float, dt_h: float = 1.0) -> ChemoRun:
    """
    Integrate the Friberg model for every patient in ``plan`` up to ``horizon_h`` hours.

    Parameters
    ----------
    plan : ChemoPlan
        Per-patient parameters and treatment plan.
    horizon_h : float
        Last time simulated, hours after the start of follow-up.
    dt_h : float
        Fixed step; the transit compartments use forward Euler, the proliferating compartment an
        exponential step so that a strong drug effect (E > 1, net cell kill) cannot make it negative.

    Returns
    -------
    ChemoRun
        Model ANC at every step, and when each cycle was given or postponed.

    Examples
    --------
    >>> one = lambda v: np.array([v], dtype=float)
    >>> plan = ChemoPlan(one(5.05), one(89.3), one(0.163), one(83.9), one(7.17), one(0.6), one(1.0), one(0.0),
    ...                  one(24.0), np.array([1]), one(np.nan), one(np.nan), one(0.0), one(1.0))
    >>> run = simulate(plan, horizon_h=21 * 24.0)
    >>> bool(5 <= (np.argmin(run.anc[:, 0]) - 24) / 24 <= 14)
    True
    """
    n = plan.circ0.size
    state = np.tile(plan.circ0, (5, 1))  # Prol, Tx1, Tx2, Tx3, Circ all start at Circ0 (Friberg model)
    steps = int(np.ceil(horizon_h / dt_h))
    anc = np.empty((steps + 1, n))
    anc[0] = state[4]
    doses = _Doses(plan, n)
    ktr_dt = 4.0 / plan.mtt_h * dt_h  # k_tr = 4 / MTT: three transit compartments (Friberg model)
    decay, heal = 0.5 ** (dt_h / DRUG_HALF_LIFE_H), 0.5 ** (dt_h / INJURY_HALF_LIFE_H)
    for step in range(steps):
        t = step * dt_h
        doses.give_due(t, state[4])
        drug = plan.emax * doses.exposure / (plan.ec50 + doses.exposure)  # Emax model (as in DTAT)
        since = t - doses.last_h
        gcsf = (since >= plan.gcsf_on_h) & (since < plan.gcsf_off_h)
        kdt = np.where(gcsf, ktr_dt / plan.gcsf_mtt_factor, ktr_dt)
        feedback = (plan.circ0 / state[4]) ** plan.gamma
        capacity = (1.0 - doses.injury) * np.where(gcsf, 1.0 + plan.gcsf_boost, 1.0)
        growth = (1.0 - drug) * feedback * capacity
        state[1:] += kdt * (state[:-1] - state[1:])  # transit chain, then the proliferating pool
        state[0] *= np.exp(kdt * (growth - 1.0))
        doses.exposure *= decay
        doses.injury *= heal
        anc[step + 1] = state[4]
    stopped = doses.n_cycles < plan.n_cycles
    return ChemoRun(anc=anc, dose_h=doses.dose_h, postponed=doses.postponed, stopped=stopped, dt_h=dt_h)


class _Doses:
    """Mutable dosing state inside :func:`simulate` (real state, so a class)."""

    def __init__(self, plan: ChemoPlan, n: int) -> None:
        self.plan = plan
        width = int(plan.n_cycles.max())
        self.exposure = np.zeros(n)
        self.injury = np.zeros(n)
        self.n_cycles = plan.n_cycles.copy()
        self.last_h = np.full(n, -np.inf)
        self.next_h = plan.first_dose_h.astype(float).copy()
        self.given = np.zeros(n, dtype=int)
        self.dose_h = np.full((n, width), np.nan)
        self.postponed = np.zeros((n, width), dtype=int)

    def give_due(self, t: float, anc: np.ndarray) -> None:
        """Give every cycle due at ``t`` whose ANC is ready; postpone the others by a week."""
        due = np.flatnonzero((t >= self.next_h) & (self.given < self.n_cycles))
        if due.size == 0:
            return
        ready = anc[due] >= READY_ANC  # the readiness rule (docetaxel prescribing information)
        wait, give = due[~ready], due[ready]
        self.postponed[wait, self.given[wait]] += 1
        self.next_h[wait] = t + DELAY_H
        tired = (self.postponed[wait, self.given[wait]] > MAX_POSTPONED) & (self.given[wait] >= MIN_CYCLES)
        self.n_cycles[wait[tired]] = self.given[wait[tired]]
        cycle = self.given[give]
        self.exposure[give] += self.plan.exposure[give] * self.plan.growth[give] ** cycle
        self.injury[give] += self.plan.damage[give]
        self.dose_h[give, cycle] = t
        self.last_h[give] = t
        self.next_h[give] = t + CYCLE_H
        self.given[give] += 1
