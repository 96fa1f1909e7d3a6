"""Synthetic demo cohort: simulated CBC histories, clinical events and reference ranges for demo mode.

Every patient, lab and name is invented and marked synthetic. Counts are *simulated* from a model of each
clinical story (chemotherapy neutrophils by the Friberg model, reference §7.2), sampled at clinic visits
with multiplicative log-normal noise and rounded as a lab reports them. Patient i depends only on
(seed, i, end_date), so a larger cohort contains a smaller one. Not for clinical use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.random import Generator

from monitor.analytes import ANALYTES, DIFFERENTIAL
from monitor.simulation import friberg

LOCAL_TZ = "America/New_York"  # the synthetic clinics' clock; results are stored in UTC
SIMULATED = (*DIFFERENTIAL, "hgb", "plt")  # simulated measurands; WBC and percentages are derived
PANEL = ("wbc", *DIFFERENTIAL, "hgb", "plt", "neut_pct", "lymph_pct", "mono_pct", "eos_pct", "baso_pct")
# Within-subject CVs of SIMULATED, reference §6.1 (Statland 1978): hour-to-hour where given (neutrophils
# 12.9, lymphocytes 10.3, monocytes 18.6 %), else week-to-week (eosinophils 26.9, basophils 15.0, Hb 2.2,
# platelets 6.6 %). The slower changes are what the scenarios simulate, so the short-term CV is the noise.
CV = np.array([0.129, 0.103, 0.186, 0.269, 0.150, 0.022, 0.066])
SIGMA = np.sqrt(np.log1p(CV**2))  # log-normal sd for a CV, as in reference §6.2
MISSED_VISIT = 0.1  # share of routine visits that do not happen (illustrative)

Event = tuple[str, float, float, str, str]  # kind, start, end (NaN: none), label, details; days from day 0
Params = dict[str, float]


@dataclass(frozen=True, slots=True)
class DemoCohort:
    """The synthetic cohort: one frame per table the dashboard reads (see :func:`simulate_cohort`)."""

    patients: pd.DataFrame
    memberships: pd.DataFrame
    labs: pd.DataFrame
    results: pd.DataFrame
    events: pd.DataFrame
    overrides: pd.DataFrame


@dataclass(frozen=True, slots=True)
class Scenario:
    """A clinical story, and how many of every 50 patients follow it."""

    code: str
    per_50: int
    teams: tuple[str, ...]
    ages: tuple[float, float] = (27.0, 85.0)  # at end_date; <= 18 months of follow-up keeps all >= 25

    @property
    def label(self) -> str:
        """A sentence for clinicians, prefixed "Synthetic: " when shown."""
        return LABELS[self.code]


_ONC, _IM = ("oncology",), ("internal-medicine",)
SCENARIOS = (
    Scenario("chemo_standard", 6, _ONC, (40, 80)),
    Scenario("chemo_deepening", 6, _ONC, (40, 80)),
    Scenario("chemo_gcsf", 6, _ONC, (40, 80)),
    Scenario("drug_induced", 5, _IM),
    Scenario("b12_deficiency", 4, _IM, (45, 85)),
    Scenario("viral_dip", 5, _IM),
    Scenario("autoimmune_lymphopenia", 4, _IM, (27, 60)),
    Scenario("duffy_null", 4, _IM),
    Scenario("marrow_failure", 2, (*_ONC, *_IM), (65, 85)),
    Scenario("healthy", 8, _IM),
)
LABELS = {
    "chemo_standard": "21-day chemotherapy cycles; neutrophil nadir around day 7-14, recovered by the next.",
    "chemo_deepening": "21-day chemotherapy with cumulative marrow toxicity: deeper nadirs, some delays.",
    "chemo_gcsf": "21-day chemotherapy with G-CSF prophylaxis every cycle; faster neutrophil recovery.",
    "drug_induced": "drug-induced neutropenia that resolves after the drug is stopped.",
    "b12_deficiency": "vitamin B12 deficiency: low white count and anaemia, recovering after B12 is given.",
    "viral_dip": "transient fall in neutrophils and lymphocytes during a viral infection.",
    "autoimmune_lymphopenia": "lupus (SLE) with persistent lymphopenia, ALC 0.4-0.9 x10^9/L.",
    "duffy_null": "Duffy-null associated neutrophil count: ANC 1.0-1.5 x10^9/L is normal for them.",
    "marrow_failure": "myelodysplastic syndrome: progressive pancytopenia needing red cell transfusions.",
    "healthy": "healthy control with normal, stable counts.",
}


def _allocation() -> tuple[str, ...]:
    """50 slots: one of each scenario first, then the rest spread by smooth weighted round robin."""
    left = {s.code: s.per_50 - 1 for s in SCENARIOS}
    credit, order, total = dict.fromkeys(left, 0), [s.code for s in SCENARIOS], sum(left.values())
    for _ in range(total):
        for code in credit:
            credit[code] += left[code]
        pick = max(credit, key=credit.__getitem__)
        credit[pick] -= total
        order.append(pick)
    return tuple(order)


ALLOCATION = _allocation()  # patient i follows ALLOCATION[i % 50]: any n >= 50 has every scenario twice
_BY_CODE = {s.code: s for s in SCENARIOS}

# Reference ranges, canonical units. DEMO-CENTRAL: Merck Manual CBC table (reference §2.1; its PLT upper
# limit 450 is marked UNVERIFIED there) except the WBC lower limit, the adult leukopenia default 4.0 x10^9/L
# (§2.1). DEMO-ONCDAY: the US Core example ranges of §2.1 (WBC 4.5-11, neutrophils 37-67 %, PLT 150-450),
# Davis's Hb ranges (§2.1), Merck for the rest.
_RANGE_TABLE = """
analyte    DEMO-CENTRAL   DEMO-ONCDAY
wbc         4.0   11.0     4.5   11.0
anc         1.8    7.7     1.8    7.7
alc         1.0    4.8     1.0    4.8
amc         0.2    1.2     0.2    1.2
aec         0.0    0.9     0.0    0.9
abc         0.0    0.3     0.0    0.3
hgb_F      12.0   16.0    11.7   15.5
hgb_M      14.0   17.0    14.0   17.3
plt       140.0  450.0   150.0  450.0
neut_pct   40.0   70.0    37.0   67.0
lymph_pct  22.0   44.0    22.0   44.0
mono_pct    4.0   11.0     4.0   11.0
eos_pct     0.0    8.0     0.0    8.0
baso_pct    0.0    3.0     0.0    3.0
"""
_ROWS = {row.split()[0]: [float(x) for x in row.split()[1:]] for row in _RANGE_TABLE.strip().splitlines()[1:]}
_RANGES = np.array(
    [
        [[_ROWS[f"hgb_{sex}" if a == "hgb" else a][2 * lab : 2 * lab + 2] for a in PANEL] for sex in "FM"]
        for lab in (0, 1)
    ]
)  # (lab, sex F/M, analyte, low/high)
LABS = (  # code, name, accession prefix
    ("DEMO-CENTRAL", "Demo Central Laboratory (synthetic)", "CEN"),
    ("DEMO-ONCDAY", "Demo Oncology Day Unit Laboratory (synthetic)", "ONC"),
)

# Duffy-null reference interval, USA primary-care cohort: Hibbs et al., Blood 2025 (reference §2.2).
DUFFY_NULL_OVERRIDES = (("anc", 1.21, 5.39), ("wbc", 3.00, 9.66))
DUFFY_NULL_REASON = (
    "Duffy-null reference interval, USA cohort (Hibbs SP et al., Blood 2025, doi:10.1182/blood.2025029359)"
)

# Story vocabulary. Doses are usual textbook doses, shown for realism only (not from the reference).
REGIMENS = (
    ("Docetaxel 75 mg/m2", "Docetaxel every 21 days; non-small-cell lung cancer"),
    ("Carboplatin AUC 6 + paclitaxel 175 mg/m2", "Carboplatin-paclitaxel every 21 days; lung cancer"),
    ("Docetaxel 75 mg/m2 + cyclophosphamide 600 mg/m2", "TC every 21 days; early breast cancer"),
)
DRUGS = (  # name, indication, range of the lowest ANC reached (< 0.5 is agranulocytosis, reference §3)
    ("Methimazole 20 mg daily", "For Graves' hyperthyroidism", (0.1, 0.5)),
    ("Carbamazepine 200 mg twice daily", "For focal epilepsy", (0.5, 1.1)),
)
_GCSF_WHY = "Primary G-CSF prophylaxis: febrile-neutropenia risk >= 20 % (ASCO 2015)"  # reference §7.4
# What clinicians read on the timeline: (label, details) of each event, filled in with str.format.
TEXT = {
    "chemo": ("{drug}, cycle {n}", "{regimen}"),
    "postponed": (
        "Cycle {n} postponed one week: ANC below 1.5 x10^9/L",
        "Readiness rule before each cycle: ANC >= 1.5 x10^9/L (reference §7.3)",
    ),
    "stopped": (
        "Chemotherapy stopped after cycle {n}",
        "Neutrophils not recovered to 1.5 x10^9/L after two postponements",
    ),
    "nadir_fever": ("Fever 38.6 C (oral) at the neutrophil nadir", "Seen in the oncology day unit"),
    "peg": ("Pegfilgrastim 6 mg SC, cycle {n}", _GCSF_WHY),
    "filgrastim": ("Filgrastim 5 micrograms/kg SC daily, days 3-10, cycle {n}", _GCSF_WHY),
    "drug": ("{drug}", "{why}; stopped because of neutropenia"),
    "drug_stopped": ("{drug} stopped: neutrophil count low", "Suspected drug-induced neutropenia"),
    "sore_throat": ("Fever 38.7 C with sore throat", "Prompted a CBC"),
    "b12_low": ("Serum vitamin B12 low", "Macrocytic anaemia with a low white count"),
    "b12": (
        "Vitamin B12 (hydroxocobalamin) 1 mg IM, loading course",
        "Replacement for B12 deficiency; maintenance injections every 3 months afterwards",
    ),
    "infection": ("{name}", "{details}"),
    "viral_fever": ("Fever 38.4 C", "During {name}"),
    "hcq": ("Hydroxychloroquine 200 mg twice daily", "Long-term treatment of systemic lupus erythematosus"),
    "sle": (
        "Systemic lupus erythematosus: chronic lymphopenia",
        "Lymphocytes persistently 0.4-0.9 x10^9/L; neutrophils normal",
    ),
    "duffy": (
        "Duffy-null phenotype Fy(a-b-) confirmed",
        "ANC 1.0-1.5 x10^9/L is normal for this patient; Duffy-null reference interval applied (Hibbs et "
        "al., Blood 2025)",
    ),
    "biopsy": ("Bone marrow biopsy: myelodysplastic syndrome", "Progressive pancytopenia; supportive care"),
    "transfusion": ("Red cell transfusion, 2 units", "Haemoglobin below 8.0 g/dL"),
}
INFECTIONS = (
    ("Influenza A", "Influenza A PCR positive; fever, cough and myalgia, managed at home"),
    ("COVID-19", "SARS-CoV-2 PCR positive; mild illness managed at home"),
    ("Viral upper respiratory tract infection", "Sore throat, cough and coryza; no antibiotics"),
)


def _event(kind: str, start: float, text: str, end: float = np.nan, **fill: object) -> Event:
    """One event from the TEXT table; times in days after day 0."""
    label, details = TEXT[text]
    return (kind, start, end, label.format(**fill), details.format(**fill))


@dataclass(frozen=True, slots=True)
class _Story:
    """Planned CBC days and clinical events of one patient (days after day 0, local clock)."""

    days: list[int]  # planned CBCs; one falling on a weekend moves to the Friday before or Monday after
    events: list[Event]
    pulses: list[float] = field(default_factory=list)  # chemotherapy doses or transfusions (Hb steps)
    # CBCs that stay on their day: (day, drawn before the 11:00 infusion, +1 / -1 when the ANC measured
    # must be >= / < 1.5 because it decided whether a cycle went ahead; else 0)
    fixed: list[tuple[int, bool, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Patient:
    """Everything drawn for one patient; chemotherapy stories wait for the Friberg run."""

    index: int
    scenario: Scenario
    sex: str
    birth: dt.date
    start: dt.date  # day 0, the first CBC, a Monday: day k is a weekend day when k % 7 >= 5
    days: int  # the last CBC is on day `days`
    base: np.ndarray  # steady-state values of SIMULATED
    params: Params
    story: _Story | None
    rng: Generator = field(repr=False)


def simulate_cohort(n_patients: int = 60, *, seed: int = 7, end_date: dt.date) -> DemoCohort:
    """
    Simulate a synthetic cohort of adults followed with CBCs, for the dashboard's demo mode.

    Parameters
    ----------
    n_patients : int
        Number of patients, at least 1. Patient i depends only on (seed, i, end_date): a larger cohort
        contains the smaller one, and any n >= 50 has every scenario at least twice.
    seed : int
        Seed of the per-patient random generators.
    end_date : datetime.date
        The demo's "today"; every patient's last CBC falls in the 14 days before it.

    Returns
    -------
    DemoCohort
        Patients, team memberships, labs, long-format results, clinical events and per-patient
        reference-range overrides.

    Examples
    --------
    >>> cohort = simulate_cohort(10, end_date=dt.date(2025, 6, 30))
    >>> cohort.patients["name"].iloc[0], sorted(cohort.results["lab"].unique())
    ('Synthetic Patient 001', ['DEMO-CENTRAL', 'DEMO-ONCDAY'])
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    people = [_draw_patient(seed, i, end_date) for i in range(n_patients)]
    run, column = _run_chemo(people)
    stories = [p.story or _chemo_story(p, run, column[p.index]) for p in people]
    visits = [_visits(p, s) for p, s in zip(people, stories, strict=True)]
    ids = np.array([f"DEMO-{p.index + 1:04d}" for p in people])
    teams = [(ids[p.index], team) for p in people for team in p.scenario.teams]
    duffy = [
        (ids[p.index], a, low, high, DUFFY_NULL_REASON)
        for p in people
        if p.scenario.code == "duffy_null"
        for a, low, high in DUFFY_NULL_OVERRIDES
    ]
    overrides = pd.DataFrame(duffy, columns=["patient_id", "analyte", "low", "high", "reason"])
    return DemoCohort(
        patients=_patients_frame(people, ids),
        memberships=pd.DataFrame(teams, columns=["patient_id", "team"]).astype("str"),
        labs=pd.DataFrame([lab[:2] for lab in LABS], columns=["code", "name"]),
        results=_results_frame(people, visits, run, column, ids),
        events=_events_frame(people, stories, ids),
        overrides=overrides.astype(
            {"patient_id": "str", "analyte": "str", "low": float, "high": float, "reason": "str"}
        ),
    )


def _draw_patient(seed: int, i: int, end_date: dt.date) -> _Patient:
    """Demographics, follow-up window, baselines and scenario story of patient i (from its own rng)."""
    rng = np.random.default_rng([seed, i])
    scenario = _BY_CODE[ALLOCATION[i % len(ALLOCATION)]]
    female = rng.random() < (0.9 if scenario.code == "autoimmune_lymphopenia" else 0.5)
    age = rng.uniform(*scenario.ages)
    weekdays = [g for g in range(1, 15) if (end_date - dt.timedelta(days=g)).weekday() < 5]
    last = end_date - dt.timedelta(days=weekdays[rng.integers(len(weekdays))])  # a weekday, last 14 days
    days = int(rng.integers(183, 543))
    days += (last - dt.timedelta(days=days)).weekday()  # 6 to 18 months, starting on a Monday
    # Baselines inside the Merck adult intervals (reference §2.1): ANC, ALC, AMC, AEC, ABC, Hb, PLT.
    base = np.array([3.8, 2.0, 0.5, 0.15, 0.04, 13.6 if female else 15.2, 250.0])
    base *= np.exp(rng.normal(0, [0.25, 0.25, 0.25, 0.5, 0.3, 0.05, 0.2]))
    floor = [2.2, 1.2, 0.25, 0.03, 0.01, 12.4 if female else 14.2, 160]
    base = np.clip(base, floor, [7, 3.5, 0.9, 0.5, 0.1, 16, 400])
    params, story = _STORIES[scenario.code](rng, days, base, female)  # a scenario may reset its baselines
    birth = end_date - dt.timedelta(days=int(age * 365.25))
    start = last - dt.timedelta(days=days)
    return _Patient(i, scenario, "F" if female else "M", birth, start, days, base, params, story, rng)


def _workday(day: int) -> int:
    """The day itself, or the Friday before a Saturday / the Monday after a Sunday (day 0 is a Monday)."""
    return day - (day % 7 == 5) + (day % 7 == 6)


def _routine(rng: Generator, gap: tuple[float, float], start: float, stop: float) -> list[int]:
    """Visit days in [start, stop) at jittered gaps, some of them missed."""
    days = start + np.cumsum(rng.uniform(*gap, int((stop - start) / gap[0]) + 1))
    days = days[days < stop]
    return np.round(days[rng.random(days.size) >= MISSED_VISIT]).astype(int).tolist()


# Share of chemotherapy patients still on treatment when follow-up ends (mid-cycle on the worklist).
ONGOING_SHARE = 0.5


def _chemo(kind: str) -> Callable[[Generator, int, np.ndarray, bool], tuple[Params, None]]:
    """The parameter draw of one kind of chemotherapy patient; the story waits for the Friberg run."""

    def draw(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, None]:
        first = _workday(int(rng.integers(10, 41)))
        base[0] = np.clip(4.0 * np.exp(rng.normal(0, 0.2)), 2.8, 7.0)  # fit to start (reference §7.3)
        p = {
            "first": first,
            "cycles": min(int(rng.integers(4, 9)), (days - first - 49) // 21),
            "regimen": int(rng.integers(3 if female else 2)),
            "hgb_amp": -rng.uniform(0.2, 0.4),
            "hgb_tau": 80.0,
            "exposure": 0.32 * np.exp(rng.normal(0, 0.25)),
            "growth": 1.0,
            "damage": 0.0,
            # typical MTT and gamma, with the IIV (log-normal sd) DTAT uses (reference §7.2)
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
        if kind == "gcsf":  # primary prophylaxis (reference §7.4); same exposure, so G-CSF is the difference
            p |= {
                "gcsf": int(rng.integers(1, 3)),
                "boost": rng.uniform(0.1, 0.16),
                "mtt_factor": rng.uniform(0.6, 0.7),
            }
        if (
            rng.random() < ONGOING_SHARE
        ):  # still on treatment: the last planned cycle starts 9-16 days before the end
            p["cycles"] = int(rng.integers(5, 9))
            p["first"] = _workday(max(10, days - 21 * (p["cycles"] - 1) - int(rng.integers(9, 17))))
        return p, None

    return draw


def _run_chemo(people: list[_Patient]) -> tuple[friberg.ChemoRun | None, dict[int, int]]:
    """Integrate the Friberg model for all chemotherapy patients at once (reference §7.2)."""
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
        ec50=np.full(len(chemo), 7.17),  # typical values, reference §7.2
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


def _chemo_story(p: _Patient, run: friberg.ChemoRun, col: int) -> _Story:
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
        events.append(_event("chemotherapy", h / 24, "chemo", drug=drug, n=k + 1, regimen=regimen))
        events += [_event("note", c + 11 / 24, "postponed", n=k + 1) for c in postponed]
        if q["gcsf"] == 1:  # pegfilgrastim the day after chemotherapy, filgrastim days 3-10 (illustrative)
            events.append(_event("gcsf", h / 24 + 1, "peg", n=k + 1))
        elif q["gcsf"] == 2:
            events.append(_event("gcsf", h / 24 + 2, "filgrastim", h / 24 + 9, n=k + 1))
        severe_days = np.count_nonzero(cycle_anc < 0.5) * step / 24  # fever risk grows with ANC < 0.5 time
        if rng.random() < 0.03 * severe_days:  # fever at the nadir (definitions: reference §7.5)
            fixed.append((fever := d + int(np.argmin(cycle_anc) * step // 24), False, 0))
            events.append(_event("fever", fever + 17 / 24, "nadir_fever"))
    last, pending = (int(dose_h[-1] // 24) if dose_h.size else int(q["first"])), dose_h.size
    if pending < run.postponed.shape[1]:  # the next cycle, still postponed when follow-up ends or stopped
        checks = [c for c in (last + 21 + 7 * w for w in range(run.postponed[col, pending])) if c <= p.days]
        fixed += [(c, True, -1) for c in checks]
        stop = run.stopped[col] and len(checks) > friberg.MAX_POSTPONED
        events += [
            _event("note", c + 11 / 24, "postponed", n=pending + 1) for c in checks[: len(checks) - stop]
        ]
        if stop:
            events.append(_event("note", checks[-1] + 0.5, "stopped", n=pending))
    days += _routine(rng, (21, 42), last + 21, p.days)
    return _Story(days, events, list(dose_h / 24), fixed)


def _drug_induced(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    name, why, lowest = DRUGS[int(rng.integers(2))]
    start = round(rng.uniform(14, 0.25 * days))
    onset, ramp = start + rng.uniform(21, 60), rng.uniform(10, 21)  # weeks after the start (illustrative)
    stop = _workday(round(onset + ramp + rng.uniform(1, 5)))
    params = {
        "onset": onset,
        "ramp": ramp,
        "stop": stop + 15 / 24,  # stopped that afternoon, after the morning CBC
        "tau": rng.uniform(4, 8),
        "depth": max(0.0, 1 - rng.uniform(*lowest) / base[0]),
    }
    visits = _routine(rng, (56, 84), 0, days) + _routine(rng, (25, 32), start, stop)
    visits += [stop + d for d in (-4, 3, 7, 10, 14, 21, 28)]  # a low count repeated, then weekly
    events = [
        _event("medication", start + 9 / 24, "drug", stop + 15 / 24, drug=name, why=why),
        _event("note", stop + 15 / 24, "drug_stopped", drug=name.split()[0]),
    ]
    if rng.random() < 0.5:
        events.append(_event("fever", stop - 1 + 19 / 24, "sore_throat"))
    return params, _Story(visits, events, fixed=[(stop, True, 0)])  # the morning CBC that led to the stop


def _b12_deficiency(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    supp, course = _workday(int(rng.integers(10, 46))), int(rng.integers(28, 57))
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
    visits = _routine(rng, (42, 70), 0, days) + [supp + d for d in (-2, 7, 14, 21, 28, 42, 56)]
    events = [
        _event("note", supp - 0.5, "b12_low"),
        _event("supplement", supp + 10 / 24, "b12", supp + course + 10 / 24),
    ]
    return params, _Story(visits, events)


def _viral_dip(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    onset = round(rng.uniform(0.25, 0.75) * days)
    peak, lowest = rng.uniform(3, 5), rng.uniform(0.8, 1.4)  # ANC at the worst of the illness (illustrative)
    params = {
        "onset": onset,
        "peak": peak,
        "depth": max(0.45, 1 - lowest / base[0]),
        "alc_depth": rng.uniform(0.3, 0.6),
    }
    visits = _routine(rng, (42, 70), 0, days) + [onset + round(peak + rng.uniform(-1, 1))]  # the sick visit
    visits += [onset + round(rng.uniform(*w)) for w in ((10, 16), (25, 35))]
    name, details = INFECTIONS[int(rng.integers(3))]
    events = [
        _event(
            "infection", onset + 9 / 24, "infection", onset + rng.uniform(5, 10), name=name, details=details
        )
    ]
    if rng.random() < 0.5:
        events.append(_event("fever", onset + 0.75, "viral_fever", name=name))
    return params, _Story(visits, events)


def _lupus(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    base[:2] = rng.uniform(1.8, 3.0), rng.uniform(0.45, 0.75)  # ALC persistently 0.4-0.9 x10^9/L
    events = [_event("medication", -rng.uniform(365, 2000), "hcq"), _event("note", 0.4, "sle")]
    return {}, _Story(_routine(rng, (28, 56), 0, days), events)


def _duffy_null(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    base[0] = rng.uniform(1.1, 1.3)  # lower tail of Duffy-null ANC, inside the USA interval (reference §2.2)
    return {}, _Story(_routine(rng, (56, 84), 0, days), [_event("note", 0.4, "duffy")])


def _marrow_failure(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    base[[0, 5, 6]] = rng.uniform(1.4, 2.0), rng.uniform(10.0, 11.2), rng.uniform(100, 140)
    params = {  # a 2-unit transfusion lifts Hb ~2 g/dL, fading over weeks (illustrative)
        "anc_end": rng.uniform(0.25, 0.45),
        "plt_end": rng.uniform(0.2, 0.35),
        "days": days,
        "hgb_fall": base[5] - rng.uniform(6.5, 7.5),  # untransfused, Hb would end at 6.5-7.5 g/dL
        "hgb_amp": 2.0,
        "hgb_tau": 40.0,
    }
    visits = sorted({0, *_routine(rng, (14, 28), 0, days)})
    events = [_event("note", rng.uniform(7, 30), "biopsy")]
    given: list[float] = []
    for d in visits:  # sequential on purpose: each transfusion changes the next decision
        lift = params["hgb_amp"] * _pulse_sum(np.array([d]), np.array([given]), params["hgb_tau"])[0]
        if base[5] - params["hgb_fall"] * d / days + lift < 8.0:  # CTCAE grade 3: transfuse (reference §1.1)
            given.append(d + 1 + 10 / 24)
            events.append(_event("transfusion", given[-1], "transfusion", given[-1] + 0.125))
    return params, _Story(visits, events, given)


def _healthy(rng: Generator, days: int, base: np.ndarray, female: bool) -> tuple[Params, _Story]:
    return {}, _Story(_routine(rng, (56, 91), 0, days), [])


_STORIES = {
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


@dataclass(frozen=True, slots=True)
class _Visits:
    """One patient's CBCs: times (days after day 0, strictly increasing), lab index, noise draws."""

    t: np.ndarray
    lab: np.ndarray
    z: np.ndarray  # standard normal, (visits, len(SIMULATED))
    need: np.ndarray  # the readiness flag of _Story.fixed per visit (0 for the others)
    pulses: np.ndarray


def _visits(p: _Patient, story: _Story) -> _Visits:
    """One CBC per distinct day from day 0 to the last day, in clinic hours; labs; noise."""
    rng, fixed = p.rng, np.reshape(np.array(story.fixed, dtype=int), (-1, 3))
    planned = np.array([_workday(d) for d in (0, *story.days, p.days)], dtype=int)
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
    return _Visits(days + np.round(hours * 60) / 1440, lab, z, flags[:, 1], np.asarray(story.pulses, float))


def _pulse_sum(t: np.ndarray, starts: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """Sum of exp(-(t - start) / tau) over each row's (NaN-padded) pulse starts before t."""
    lag = t[:, None] - starts
    fade = np.exp(-np.clip(np.nan_to_num(lag, nan=0.0), 0, None) / np.reshape(tau, (-1, 1)))
    return np.where(lag > 0, fade, 0.0).sum(axis=1)


def _shape(
    code: str, t: np.ndarray, q: dict[str, np.ndarray], pulses: np.ndarray, anc_ratio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers of the SIMULATED baselines, and an additive Hb change (g/dL), at times t."""
    m, hgb = np.ones((t.size, len(SIMULATED))), np.zeros(t.size)
    if code.startswith("chemo"):  # neutrophils from the Friberg model; milder falls in the other lineages
        r = np.minimum(anc_ratio, 1.0)
        m[:] = np.column_stack([anc_ratio, r**0.2, r**0.6, r**0.3, r**0.3, np.ones_like(r), r**0.3])
        hgb = q["hgb_amp"] * _pulse_sum(t, pulses, q["hgb_tau"])  # cumulative anaemia, slow recovery
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
        hgb = -q["hgb_fall"] * f + q["hgb_amp"] * _pulse_sum(t, pulses, q["hgb_tau"])
    return m, hgb


def _true_values(
    people: list[_Patient],
    visits: list[_Visits],
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
    values = np.stack([p.base for p in people])[who]
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


def _measure(true: np.ndarray, z: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Noisy values rounded as reported, in PANEL order; WBC is the sum of the five absolute counts."""
    noisy = true * np.exp(SIGMA * z)  # multiplicative log-normal noise (reference §6.1, §6.2)
    anc = noisy[:, 0]  # a CBC that decided a cycle shows an ANC on the side of 1.5 acted on (§7.3):
    wrong = ((need > 0) & (anc < 1.5)) | ((need < 0) & (anc >= 1.495))
    anc[wrong] = 1.5**2 / anc[wrong]  # mirror its noise about 1.5 (log scale), then clamp
    noisy[:, 0] = np.where(need > 0, np.maximum(anc, 1.5), np.where(need < 0, np.minimum(anc, 1.49), anc))
    counts = np.round(noisy[:, :5], 2)
    wbc = np.round(counts.sum(axis=1), 2)
    pct = np.round(counts / wbc[:, None] * 100, 1)
    return np.column_stack([wbc, counts, np.round(noisy[:, 5], 1), np.round(noisy[:, 6]), pct])


def _utc(day0: np.ndarray, days: np.ndarray) -> pd.DatetimeIndex:
    """Local clinic times (day-0 date + days, to the minute) in UTC at microsecond resolution."""
    offset = pd.to_timedelta(np.round(days * 1440), unit="min")
    local = pd.DatetimeIndex(day0.astype("datetime64[us]")) + offset
    return local.tz_localize(LOCAL_TZ, nonexistent="shift_forward").tz_convert("UTC").as_unit("us")


def _day0(people: list[_Patient], who: np.ndarray) -> np.ndarray:
    return np.array([np.datetime64(p.start, "D") for p in people])[who]


def _results_frame(
    people: list[_Patient],
    visits: list[_Visits],
    run: friberg.ChemoRun | None,
    column: dict[int, int],
    ids: np.ndarray,
) -> pd.DataFrame:
    sizes = np.array([v.t.size for v in visits])
    who, t = np.repeat(np.arange(len(people)), sizes), np.concatenate([v.t for v in visits])
    true = _true_values(people, visits, run, column, who, t)
    values = _measure(true, np.concatenate([v.z for v in visits]), np.concatenate([v.need for v in visits]))
    lab = np.concatenate([v.lab for v in visits])
    ranges = _RANGES[lab, (np.array([p.sex for p in people]) == "M").astype(int)[who]]
    nth = pd.Series(np.arange(who.size) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1).astype(str)
    prefix = pd.Series(np.array([x[2] for x in LABS])[lab])
    accession = (prefix + "-" + pd.Series(ids[who]).str[5:] + "-" + nth.str.zfill(3)).to_numpy()
    k = len(PANEL)
    return pd.DataFrame(
        {
            "patient_id": np.repeat(ids[who], k),
            "collected_at": _utc(_day0(people, who), t).repeat(k),
            "analyte": np.tile(PANEL, who.size),
            "value": values.ravel(),
            "unit": np.tile([ANALYTES[a].unit for a in PANEL], who.size),
            "ref_low": ranges[..., 0].ravel(),
            "ref_high": ranges[..., 1].ravel(),
            "lab": np.repeat(np.array([x[0] for x in LABS])[lab], k),
            "accession": np.repeat(accession, k),
            "status": "final",
        }
    )


def _events_frame(people: list[_Patient], stories: list[_Story], ids: np.ndarray) -> pd.DataFrame:
    rows = [(i, *e) for i, s in enumerate(stories) for e in s.events]
    raw = pd.DataFrame(rows, columns=["who", "kind", "start", "end", "label", "details"])
    who = raw["who"].to_numpy(dtype=int)
    day0 = _day0(people, who)
    frame = pd.DataFrame(
        {
            "patient_id": ids[who],
            "kind": raw["kind"].astype("str"),
            "start": _utc(day0, raw["start"].to_numpy(dtype=float)),
            "end": _utc(day0, raw["end"].to_numpy(dtype=float)),
            "label": raw["label"].astype("str"),
            "details": raw["details"].astype("str"),
        }
    )
    return frame.sort_values(["patient_id", "start"], kind="stable", ignore_index=True)


def _patients_frame(people: list[_Patient], ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ids,
            "name": [f"Synthetic Patient {p.index + 1:03d}" for p in people],
            "birth_date": pd.Series([p.birth for p in people], dtype=object),
            "sex": [p.sex for p in people],
            "scenario": [p.scenario.code for p in people],
            "scenario_label": [f"Synthetic: {p.scenario.label}" for p in people],
        }
    )
