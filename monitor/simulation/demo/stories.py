"""One synthetic patient drawn from their own generator: demographics, baselines, scenario and story.

Chemotherapy stories are told after the Friberg model has run for every chemotherapy patient at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.random import Generator

from monitor.simulation import friberg
from monitor.simulation.demo.scenarios import (
    ALLOCATION,
    BY_CODE,
    DRUGS,
    INFECTIONS,
    REGIMENS,
    Event,
    Params,
    Scenario,
    event,
)

MISSED_VISIT = 0.1  # share of routine visits that do not happen (illustrative)


@dataclass(frozen=True, slots=True)
class Story:
    """Planned CBC days and clinical events of one patient (days after day 0, local clock)."""

    days: list[int]  # planned CBCs; one falling on a weekend moves to the Friday before or Monday after
    events: list[Event]
    pulses: list[float] = field(default_factory=list)  # chemotherapy doses or transfusions (Hb steps)
    # CBCs that stay on their day: (day, drawn before the 11:00 infusion, +1 / -1 when the ANC measured
    # must be >= / < 1.5 because it decided whether a cycle went ahead; else 0)
    fixed: list[tuple[int, bool, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Patient:
    """Everything drawn for one patient; chemotherapy stories wait for the Friberg run."""

    index: int
    scenario: Scenario
    sex: str
    birth: dt.date
    start: dt.date  # day 0, the first CBC, a Monday: day k is a weekend day when k % 7 >= 5
    days: int  # the last CBC is on day `days`
    base: np.ndarray  # steady-state values of SIMULATED
    params: Params
    story: Story | None
    rng: Generator = field(repr=False)


def draw_patient(seed: int, i: int, end_date: dt.date) -> Patient:
    """Demographics, follow-up window, baselines and scenario story of patient i (from its own rng)."""
    rng = np.random.default_rng([seed, i])
    scenario = BY_CODE[ALLOCATION[i % len(ALLOCATION)]]
    female = rng.random() < (0.9 if scenario.code == "autoimmune_lymphopenia" else 0.5)
    age = rng.uniform(*scenario.ages)
    weekdays = [g for g in range(1, 15) if (end_date - dt.timedelta(days=g)).weekday() < 5]
    last = end_date - dt.timedelta(days=weekdays[rng.integers(len(weekdays))])  # a weekday, last 14 days
    days = int(rng.integers(183, 543))
    days += (last - dt.timedelta(days=days)).weekday()  # 6 to 18 months, starting on a Monday
    # Baselines inside the Merck Manual adult intervals: ANC, ALC, AMC, AEC, ABC, Hb, PLT.
    base = np.array([3.8, 2.0, 0.5, 0.15, 0.04, 13.6 if female else 15.2, 250.0])
    base *= np.exp(rng.normal(0, [0.25, 0.25, 0.25, 0.5, 0.3, 0.05, 0.2]))
    floor = [2.2, 1.2, 0.25, 0.03, 0.01, 12.4 if female else 14.2, 160]
    base = np.clip(base, floor, [7, 3.5, 0.9, 0.5, 0.1, 16, 400])
    params, story = STORIES[scenario.code](rng, days, base, female)  # a scenario may reset its baselines
    birth = end_date - dt.timedelta(days=int(age * 365.25))
    start = last - dt.timedelta(days=days)
    return Patient(i, scenario, "F" if female else "M", birth, start, days, base, params, story, rng)


def workday(day: int) -> int:
    """The day itself, or the Friday before a Saturday / the Monday after a Sunday (day 0 is a Monday)."""
    return day - (day % 7 == 5) + (day % 7 == 6)


def routine(rng: Generator, gap: tuple[float, float], start: float, stop: float) -> list[int]:
    """Visit days in [start, stop) at jittered gaps, some of them missed."""
    days = start + np.cumsum(rng.uniform(*gap, int((stop - start) / gap[0]) + 1))
    days = days[days < stop]
    kept: list[int] = np.round(days[rng.random(days.size) >= MISSED_VISIT]).astype(int).tolist()
    return kept


# Share of chemotherapy patients still on treatment when follow-up ends (mid-cycle on the worklist).
ONGOING_SHARE = 0.5


def _chemo(kind: str) -> Callable[[Generator, int, np.ndarray, bool], tuple[Params, None]]:
    """The parameter draw of one kind of chemotherapy patient; the story waits for the Friberg run."""

    def draw(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, None]:
        first = workday(int(rng.integers(10, 41)))
        base[0] = np.clip(4.0 * np.exp(rng.normal(0, 0.2)), 2.8, 7.0)  # fit to start (ANC >= 1.5)
        p = {
            "first": first,
            "cycles": min(int(rng.integers(4, 9)), (days - first - 49) // 21),
            "regimen": int(rng.integers(3 if female else 2)),
            "hgb_amp": -rng.uniform(0.2, 0.4),
            "hgb_tau": 80.0,
            "exposure": 0.32 * np.exp(rng.normal(0, 0.25)),
            "growth": 1.0,
            "damage": 0.0,
            # typical MTT and gamma (Friberg et al. 2002), with the IIV (log-normal sd) DTAT uses
            "mtt": 89.3 * np.exp(rng.normal(0, 0.16)),
            "gamma": 0.163 * np.exp(rng.normal(0, 0.039)),
            "gcsf": 0,
            "boost": 0.0,
            "mtt_factor": 1.0,
            "nadir_check": 0.8,
        }
        if kind == "deepening":  # exposure grows and marrow injury accumulates cycle by cycle
            p |= {
                "exposure": 0.2 * np.exp(rng.normal(0, 0.2)),
                "growth": rng.uniform(1.12, 1.2),
                "damage": rng.uniform(0.045, 0.07),
                "nadir_check": 1.0,
            }
        # Primary prophylaxis (Smith et al. 2015); same exposure, so G-CSF is the difference.
        if kind == "gcsf":
            p |= {
                "gcsf": int(rng.integers(1, 3)),
                "boost": rng.uniform(0.1, 0.16),
                "mtt_factor": rng.uniform(0.6, 0.7),
            }
        if (
            rng.random() < ONGOING_SHARE
        ):  # still on treatment: the last planned cycle starts 9-16 days before the end
            p["cycles"] = int(rng.integers(5, 9))
            p["first"] = workday(max(10, days - 21 * (p["cycles"] - 1) - int(rng.integers(9, 17))))
        return p, None

    return draw


def run_chemo(people: list[Patient]) -> tuple[friberg.ChemoRun | None, dict[int, int]]:
    """Integrate the Friberg model for all chemotherapy patients at once (Friberg et al. 2002)."""
    chemo = [p for p in people if p.story is None]
    if not chemo:
        return None, {}
    q = {k: np.array([p.params[k] for p in chemo], dtype=float) for k in chemo[0].params}
    # G-CSF acts from day 2 (pegfilgrastim) or day 3 (filgrastim) to day 11 (illustrative)
    on = np.select([q["gcsf"] == 1, q["gcsf"] == 2], [24.0, 48.0], np.nan)
    plan = friberg.ChemoPlan(
        circ0=np.array([p.base[0] for p in chemo]),
        mtt_h=q["mtt"],
        gamma=q["gamma"],
        emax=np.full(len(chemo), 83.9),
        ec50=np.full(len(chemo), 7.17),  # typical values (Friberg et al. 2002, as DTAT transcribes them)
        exposure=q["exposure"],
        growth=q["growth"],
        damage=q["damage"],
        first_dose_h=q["first"] * 24 + 11,
        n_cycles=q["cycles"].astype(int),
        gcsf_on_h=on,
        gcsf_off_h=np.where(q["gcsf"] > 0, 240.0, np.nan),
        gcsf_boost=q["boost"],
        gcsf_mtt_factor=q["mtt_factor"],
    )
    run = friberg.simulate(plan, horizon_h=max(p.days for p in chemo) * 24.0 + 24.0)
    return run, {p.index: j for j, p in enumerate(chemo)}


def chemo_story(p: Patient, run: friberg.ChemoRun, col: int) -> Story:
    """Pre-cycle CBC (day -1 or 0), nadir check (day 7-12, sometimes 14), follow-up; cycle events."""
    rng, q, step = p.rng, p.params, run.dt_h
    dose_h = run.dose_h[col][run.dose_h[col] < p.days * 24.0]  # only what happens inside this follow-up
    drug, regimen = REGIMENS[int(q["regimen"])]
    fixed: list[tuple[int, bool, int]] = []
    days: list[int] = []
    events: list[Event] = []
    for k, h in enumerate(dose_h):
        d, cycle_anc = int(h // 24), run.anc[int(h / step) : int((h + 14 * 24) / step), col]
        postponed = [d - 7 * w for w in range(run.postponed[col, k], 0, -1)]  # failed readiness checks
        before = d - int(rng.random() < 0.5 and d % 7 > 0)  # pre-cycle CBC the weekday before, or that day
        fixed += [(c, True, -1) for c in postponed] + [(before, before == d, 1)]
        days += [d + int(rng.integers(7, 13))] * (rng.random() < q["nadir_check"])
        days += [d + 14] * (rng.random() < 0.3)
        events.append(event("chemotherapy", h / 24, "chemo", drug=drug, n=k + 1, regimen=regimen))
        events += [event("note", c + 11 / 24, "postponed", n=k + 1) for c in postponed]
        if q["gcsf"] == 1:  # pegfilgrastim the day after chemotherapy, filgrastim days 3-10 (illustrative)
            events.append(event("gcsf", h / 24 + 1, "peg", n=k + 1))
        elif q["gcsf"] == 2:
            events.append(event("gcsf", h / 24 + 2, "filgrastim", h / 24 + 9, n=k + 1))
        severe_days = np.count_nonzero(cycle_anc < 0.5) * step / 24  # fever risk grows with ANC < 0.5 time
        # Fever at the nadir (docs/clinical-basis.md, Febrile neutropenia).
        if rng.random() < 0.03 * severe_days:
            fixed.append((fever := d + int(np.argmin(cycle_anc) * step // 24), False, 0))
            events.append(event("fever", fever + 17 / 24, "nadir_fever"))
    last, pending = (int(dose_h[-1] // 24) if dose_h.size else int(q["first"])), dose_h.size
    if pending < run.postponed.shape[1]:  # the next cycle, still postponed when follow-up ends or stopped
        checks = [c for c in (last + 21 + 7 * w for w in range(run.postponed[col, pending])) if c <= p.days]
        fixed += [(c, True, -1) for c in checks]
        stop = run.stopped[col] and len(checks) > friberg.MAX_POSTPONED
        events += [
            event("note", c + 11 / 24, "postponed", n=pending + 1) for c in checks[: len(checks) - stop]
        ]
        if stop:
            events.append(event("note", checks[-1] + 0.5, "stopped", n=pending))
    days += routine(rng, (21, 42), last + 21, p.days)
    return Story(days, events, list(dose_h / 24), fixed)


def _drug_induced(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    name, why, lowest = DRUGS[int(rng.integers(2))]
    start = round(rng.uniform(14, 0.25 * days))
    onset, ramp = start + rng.uniform(21, 60), rng.uniform(10, 21)  # weeks after the start (illustrative)
    stop = workday(round(onset + ramp + rng.uniform(1, 5)))
    params = {
        "onset": onset,
        "ramp": ramp,
        "stop": stop + 15 / 24,  # stopped that afternoon, after the morning CBC
        "tau": rng.uniform(4, 8),
        "depth": max(0.0, 1 - rng.uniform(*lowest) / base[0]),
    }
    visits = routine(rng, (56, 84), 0, days) + routine(rng, (25, 32), start, stop)
    visits += [stop + d for d in (-4, 3, 7, 10, 14, 21, 28)]  # a low count repeated, then weekly
    events = [
        event("medication", start + 9 / 24, "drug", stop + 15 / 24, drug=name, why=why),
        event("note", stop + 15 / 24, "drug_stopped", drug=name.split()[0]),
    ]
    if rng.random() < 0.5:
        events.append(event("fever", stop - 1 + 19 / 24, "sore_throat"))
    return params, Story(visits, events, fixed=[(stop, True, 0)])  # the morning CBC that led to the stop


def _b12_deficiency(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    supp, course = workday(int(rng.integers(10, 46))), int(rng.integers(28, 57))
    low_anc, low_alc = rng.uniform(1.0, 1.6), rng.uniform(0.8, 1.2)  # while deficient (illustrative)
    params = {
        "supp": supp,
        "tau_w": rng.uniform(7, 14),
        "tau_h": rng.uniform(20, 35),
        "hgb_fall": base[5] - rng.uniform(8.5, 10.5),  # Hb 8.5-10.5 g/dL while deficient (illustrative)
        "plt_depth": rng.uniform(0.2, 0.4),
        "depth": max(0.0, 1 - low_anc / base[0]),
        "alc_depth": max(0.0, 1 - low_alc / base[1]),
    }
    visits = routine(rng, (42, 70), 0, days) + [supp + d for d in (-2, 7, 14, 21, 28, 42, 56)]
    events = [
        event("note", supp - 0.5, "b12_low"),
        event("supplement", supp + 10 / 24, "b12", supp + course + 10 / 24),
    ]
    return params, Story(visits, events)


def _viral_dip(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    onset = round(rng.uniform(0.25, 0.75) * days)
    peak, lowest = rng.uniform(3, 5), rng.uniform(0.8, 1.4)  # ANC at the worst of the illness (illustrative)
    params = {
        "onset": onset,
        "peak": peak,
        "depth": max(0.45, 1 - lowest / base[0]),
        "alc_depth": rng.uniform(0.3, 0.6),
    }
    visits = routine(rng, (42, 70), 0, days) + [onset + round(peak + rng.uniform(-1, 1))]  # the sick visit
    visits += [onset + round(rng.uniform(*w)) for w in ((10, 16), (25, 35))]
    name, details = INFECTIONS[int(rng.integers(3))]
    events = [
        event(
            "infection", onset + 9 / 24, "infection", onset + rng.uniform(5, 10), name=name, details=details
        )
    ]
    if rng.random() < 0.5:
        events.append(event("fever", onset + 0.75, "viral_fever", name=name))
    return params, Story(visits, events)


def _lupus(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    base[:2] = rng.uniform(1.8, 3.0), rng.uniform(0.45, 0.75)  # ALC persistently 0.4-0.9 x10^9/L
    events = [event("medication", -rng.uniform(365, 2000), "hcq"), event("note", 0.4, "sle")]
    return {}, Story(routine(rng, (28, 56), 0, days), events)


def _duffy_null(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    # Low for the general population, inside the Duffy-null interval (its LLN is 1.21: DUFFY_NULL_OVERRIDES),
    # so that the story the note tells (normal for this patient) is the one the counts show.
    base[0] = rng.uniform(1.25, 1.6)
    return {}, Story(routine(rng, (56, 84), 0, days), [event("note", 0.4, "duffy")])


def _marrow_failure(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    base[[0, 5, 6]] = rng.uniform(1.4, 2.0), rng.uniform(10.0, 11.2), rng.uniform(100, 140)
    params = {  # a 2-unit transfusion lifts Hb ~2 g/dL, fading over weeks (illustrative)
        "anc_end": rng.uniform(0.25, 0.45),
        "plt_end": rng.uniform(0.2, 0.35),
        "days": days,
        "hgb_fall": base[5] - rng.uniform(6.5, 7.5),  # untransfused, Hb would end at 6.5-7.5 g/dL
        "hgb_amp": 2.0,
        "hgb_tau": 40.0,
    }
    visits = sorted({0, *routine(rng, (14, 28), 0, days)})
    events = [event("note", rng.uniform(7, 30), "biopsy")]
    given: list[float] = []
    for d in visits:  # sequential on purpose: each transfusion changes the next decision
        lift = params["hgb_amp"] * pulse_sum(np.array([d]), np.array([given]), params["hgb_tau"])[0]
        if base[5] - params["hgb_fall"] * d / days + lift < 8.0:  # CTCAE v5.0 Anemia grade 3: transfuse
            given.append(d + 1 + 10 / 24)
            events.append(event("transfusion", given[-1], "transfusion", given[-1] + 0.125))
    return params, Story(visits, events, given)


def _healthy(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, Story]:
    return {}, Story(routine(rng, (56, 91), 0, days), [])


STORIES = {
    "chemo_standard": _chemo("standard"),
    "chemo_deepening": _chemo("deepening"),
    "chemo_gcsf": _chemo("gcsf"),
    "drug_induced": _drug_induced,
    "b12_deficiency": _b12_deficiency,
    "viral_dip": _viral_dip,
    "autoimmune_lymphopenia": _lupus,
    "duffy_null": _duffy_null,
    "marrow_failure": _marrow_failure,
    "healthy": _healthy,
}


def pulse_sum(t: np.ndarray, starts: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """Sum of exp(-(t - start) / tau) over each row's (NaN-padded) pulse starts before t."""
    lag = t[:, None] - starts
    fade = np.exp(-np.clip(np.nan_to_num(lag, nan=0.0), 0, None) / np.reshape(tau, (-1, 1)))
    total: np.ndarray = np.where(lag > 0, fade, 0.0).sum(axis=1)
    return total
