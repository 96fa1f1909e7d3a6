"""The demo's CBCs: visit times and labs, noise-free values from each story, and noisy reported values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.analytes import DIFFERENTIAL
from monitor.simulation import friberg
from monitor.simulation.demo.stories import Patient, Story, pulse_sum, workday

SIMULATED = (*DIFFERENTIAL, "hgb", "plt")  # simulated measurands; WBC and percentages are derived
PANEL = ("wbc", *DIFFERENTIAL, "hgb", "plt", "neut_pct", "lymph_pct", "mono_pct", "eos_pct", "baso_pct")
# Within-subject CVs of SIMULATED (Statland et al., Am J Clin Pathol 1978): hour-to-hour where given
# (neutrophils 12.9, lymphocytes 10.3, monocytes 18.6 %), else week-to-week (eosinophils 26.9, basophils
# 15.0, Hb 2.2, platelets 6.6 %). The slower changes are what the scenarios simulate, so the short-term
# CV is the noise.
CV = np.array([0.129, 0.103, 0.186, 0.269, 0.150, 0.022, 0.066])
SIGMA = np.sqrt(np.log1p(CV**2))  # log-normal sd for a CV, as in the log-normal reference change value


@dataclass(frozen=True, slots=True)
class Visits:
    """One patient's CBCs: times (days after day 0, strictly increasing), lab index, noise draws."""

    t: np.ndarray
    lab: np.ndarray
    z: np.ndarray  # standard normal, (visits, len(SIMULATED))
    need: np.ndarray  # the readiness flag of Story.fixed per visit (0 for the others)
    pulses: np.ndarray


def plan_visits(p: Patient, story: Story) -> Visits:
    """One CBC per distinct day from day 0 to the last day, in clinic hours; labs; noise."""
    rng, fixed = p.rng, np.reshape(np.array(story.fixed, dtype=int), (-1, 3))
    planned = np.array([workday(d) for d in (0, *story.days, p.days)], dtype=int)
    day = np.clip(np.concatenate([fixed[:, 0], planned]), 0, p.days)
    is_fixed = np.arange(day.size) < len(fixed)
    order = np.lexsort((~is_fixed, day))  # by day; a fixed CBC wins over a planned one that day
    days, first = np.unique(day[order], return_index=True)
    flags = np.concatenate([fixed[:, 1:], np.zeros((planned.size, 2), dtype=int)])[order[first]]
    hours = np.where(flags[:, 0] > 0, rng.uniform(7.5, 10.5, days.size), rng.uniform(7.5, 16.5, days.size))
    primary = int(p.scenario.code.startswith("chemo"))
    switch = rng.uniform(0.3, 0.7) * p.days if rng.random() < 0.3 else np.inf  # some patients change lab
    z = rng.standard_normal((days.size, len(SIMULATED)))
    lab = np.where(days < switch, primary, 1 - primary)
    return Visits(days + np.round(hours * 60) / 1440, lab, z, flags[:, 1], np.asarray(story.pulses, float))


def _shape(
    code: str, t: np.ndarray, q: dict[str, np.ndarray], pulses: np.ndarray, anc_ratio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers of the SIMULATED baselines, and an additive Hb change (g/dL), at times t."""
    m, hgb = np.ones((t.size, len(SIMULATED))), np.zeros(t.size)
    if code.startswith("chemo"):  # neutrophils from the Friberg model; milder falls in the other lineages
        r = np.minimum(anc_ratio, 1.0)
        m[:] = np.column_stack([anc_ratio, r**0.2, r**0.6, r**0.3, r**0.3, np.ones_like(r), r**0.3])
        hgb = q["hgb_amp"] * pulse_sum(t, pulses, q["hgb_tau"])  # cumulative anaemia, slow recovery
    elif code == "drug_induced":
        s = np.clip((np.minimum(t, q["stop"]) - q["onset"]) / q["ramp"], 0, 1)
        s *= np.exp(-np.clip(t - q["stop"], 0, None) / q["tau"])  # recovers once the drug is stopped
        m[:, :3] = 1 - (q["depth"] * s)[:, None] * np.array([1.0, 0.2, 0.5])
    elif code == "b12_deficiency":  # white cells recover within weeks of B12, Hb more slowly (illustrative)
        after = np.clip(t - q["supp"], 0, None)
        fw, fh = np.exp(-after / q["tau_w"]), np.exp(-after / q["tau_h"])
        m[:, 0], m[:, 1], m[:, 6] = 1 - q["depth"] * fw, 1 - q["alc_depth"] * fw, 1 - q["plt_depth"] * fw
        hgb = -q["hgb_fall"] * fh
    elif code == "viral_dip":
        x = np.clip(t - q["onset"], 0, None) / q["peak"]
        bump = x * np.exp(1 - x)  # deepest `peak` days after onset, gone within weeks
        m[:, 0], m[:, 1] = 1 - q["depth"] * bump, 1 - q["alc_depth"] * bump
    elif code == "marrow_failure":  # all lineages fall steadily
        f = np.clip(t / q["days"], 0, 1)
        m[:, 0], m[:, 1], m[:, 2], m[:, 6] = q["anc_end"] ** f, 0.8**f, 0.5**f, q["plt_end"] ** f
        hgb = -q["hgb_fall"] * f + q["hgb_amp"] * pulse_sum(t, pulses, q["hgb_tau"])
    return m, hgb


def true_values(
    people: list[Patient],
    visits: list[Visits],
    run: friberg.ChemoRun | None,
    column: dict[int, int],
    who: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """Noise-free SIMULATED values at every visit (rows of `who` and `t`), vectorised per scenario."""
    pulses = np.full((len(people), max(v.pulses.size for v in visits)), np.nan)
    for i, v in enumerate(visits):
        pulses[i, : v.pulses.size] = v.pulses
    anc_ratio = np.ones(t.size)
    if run is not None:
        col = np.array([column.get(i, -1) for i in range(len(people))])[who]
        on = col >= 0
        step = np.clip(np.rint(t[on] * 24 / run.dt_h).astype(int), 0, run.anc.shape[0] - 1)
        anc_ratio[on] = run.anc[step, col[on]] / run.anc[0, col[on]]
    values: np.ndarray = np.stack([p.base for p in people])[who]
    codes = np.array([p.scenario.code for p in people])
    for code in np.unique(codes):
        mine = np.flatnonzero(codes == code)
        q = {k: np.array([people[i].params[k] for i in mine], dtype=float) for k in people[mine[0]].params}
        at = np.flatnonzero(codes[who] == code)
        rows = np.searchsorted(mine, who[at])  # each visit's position among this scenario's patients
        m, hgb = _shape(code, t[at], {k: v[rows] for k, v in q.items()}, pulses[who[at]], anc_ratio[at])
        values[at] *= m
        values[at, 5] += hgb
    return values


def measure(true: np.ndarray, z: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Noisy values rounded as reported, in PANEL order; WBC is the sum of the five absolute counts."""
    # Multiplicative log-normal noise (docs/clinical-basis.md, Other figures of the synthetic cohort).
    noisy = true * np.exp(SIGMA * z)
    anc = noisy[:, 0]  # a CBC that decided a cycle shows an ANC on the side of 1.5 acted on (readiness):
    wrong = ((need > 0) & (anc < 1.5)) | ((need < 0) & (anc >= 1.495))
    anc[wrong] = 1.5**2 / anc[wrong]  # mirror its noise about 1.5 (log scale), then clamp
    noisy[:, 0] = np.where(need > 0, np.maximum(anc, 1.5), np.where(need < 0, np.minimum(anc, 1.49), anc))
    counts = np.round(noisy[:, :5], 2)
    wbc = np.round(counts.sum(axis=1), 2)
    pct = np.round(counts / wbc[:, None] * 100, 1)
    return np.column_stack([wbc, counts, np.round(noisy[:, 5], 1), np.round(noisy[:, 6]), pct])
