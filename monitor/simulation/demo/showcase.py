"""Showcase patients of the demo: hand-written synthetic histories, each built so that one decision-support
rule about temperatures, nadir windows, G-CSF or dose timing has something to show on the demo's "today".

They follow the simulated cohort (identifiers continue after its highest), are fixed relative to the demo's
end date (no random draw: the same end date gives the same rows) and are as synthetic as the rest: invented
names, the demo's labs, "Synthetic: " labels. Times are the clinics' local clock (``LOCAL_TZ``), the last at
13:00 the day before the end date, before the end date begins in UTC: nothing lies in the future of the
demo's "now" (the end date is the UTC date of the first seeding). Temperatures come from the
ward's vital signs (a synthetic source of their own), with the LOINC code of the site they were taken at.
Not for clinical use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.analytes import ANALYTES
from monitor.simulation.demo.cohort import _ROWS, LABS, LOCAL_TZ, DemoCohort
from monitor.simulation.demo.scenarios import REGIMENS

WARD = ("DEMO-WARD", "Demo ward and day-unit vital signs (synthetic)", "VS")
ORAL, BODY, TYMPANIC = "8331-1", "8310-5", "8333-7"  # LOINC: oral, body (site unstated), tympanic
COUNTED = ("wbc", "anc", "alc", "hgb", "plt")
DOCETAXEL, CARBO_PACLI, _ = REGIMENS
# TAC: docetaxel 75, doxorubicin 50, cyclophosphamide 500 mg/m2 every 21 days (usual textbook doses, shown
# for realism only). Its details text is the key of its per-regimen setting (``TAC_SETTING``).
TAC = ("Docetaxel 75 mg/m2 + doxorubicin 50 mg/m2 + cyclophosphamide 500 mg/m2 (TAC)", "TAC every 21 days")
# The febrile-neutropenia risk category the demo sets for TAC, as the system, with where it comes from.
TAC_SETTING = {
    "fn_risk": "high",
    "fn_risk_source": (
        "synthetic demo setting: TAC taken as a high-risk regimen (febrile neutropenia >= 20 %), the "
        "level at which ASCO 2015, EORTC and NCCN recommend primary G-CSF prophylaxis; a site sets its own"
    ),
}

Reading = tuple[float, float, float, str]  # day (from the end date), local hour, °C, LOINC code
Event = tuple[str, float, float, str, str]  # kind, day, local hour, label, details


@dataclass(frozen=True, slots=True)
class Showcase:
    """One showcase patient: who, what it shows, counts, temperatures and events (days from the end date)."""

    code: str
    label: str
    team: str
    sex: str
    age: int
    counts: tuple[tuple[float, float, float], ...]  # day, local hour, ANC
    temperatures: tuple[Reading, ...] = ()
    events: tuple[Event, ...] = ()
    lab: int = 1  # index in LABS: the oncology day unit's lab (1) or the central one (0)


def _chemo(day: float, regimen: tuple[str, str], n: int) -> Event:
    drug, details = regimen
    return ("chemotherapy", day, 11.0, f"{drug}, cycle {n}", details)


SHOWCASES = (
    Showcase(
        "fn_chemotherapy",
        "febrile neutropenia in a chemotherapy cycle: ANC 0.3 at 08:10, then an oral temperature of 38.6 °C "
        "at 11:30 (IDSA 2010 and CTCAE v5.0).",
        "oncology",
        "F",
        58,
        counts=((-9, 9.0, 3.9), (-1, 8 + 10 / 60, 0.3)),
        temperatures=((-9, 9.5, 36.6, ORAL), (-1, 11.5, 38.6, ORAL)),
        events=(_chemo(-9, DOCETAXEL, 1),),
    ),
    Showcase(
        "agranulocytosis_fever",
        "drug-induced agranulocytosis with fever outside chemotherapy: metamizole, ANC 0.1, temperature "
        "38.9 °C.",
        "internal-medicine",
        "M",
        71,
        counts=((-62, 10.0, 4.1), (-1, 8 + 40 / 60, 0.1)),
        temperatures=((-62, 10.25, 36.8, TYMPANIC), (-1, 10.25, 38.9, TYMPANIC)),
        events=(
            (
                "medication",
                -40,
                9.0,
                "Metamizole 500 mg four times daily",
                "For pain after knee surgery; stopped because of agranulocytosis",
            ),
            (
                "note",
                -1,
                13.0,
                "Metamizole stopped: ANC 0.1, fever",
                "Suspected drug-induced agranulocytosis",
            ),
        ),
        lab=0,
    ),
    Showcase(
        "sustained_fever_falling_anc",
        "sustained fever (38.1 then 38.2 °C, 70 minutes apart) with ANC 0.8, falling from 1.6 two days "
        "before (IDSA 2010: falling ANC and sustained fever; CTCAE v5.0: ANC below 1.0).",
        "oncology",
        "M",
        64,
        counts=((-8, 9.0, 4.4), (-3, 8.0, 1.6), (-1, 8.0, 0.8)),
        temperatures=((-8, 9.25, 36.9, ORAL), (-1, 9.5, 38.1, ORAL), (-1, 10 + 40 / 60, 38.2, ORAL)),
        events=(_chemo(-8, CARBO_PACLI, 1),),
    ),
    Showcase(
        "nadir_window_opening",
        "chemotherapy cycle whose nadir window (days 7-14) opens within the next 2 days, no count in it yet.",
        "oncology",
        "F",
        49,
        counts=((-27, 9.0, 4.2), (-19, 9.5, 1.1), (-6, 8.5, 3.6)),
        temperatures=((-6, 9.0, 36.5, ORAL),),
        events=(_chemo(-27, DOCETAXEL, 1), _chemo(-6, DOCETAXEL, 2)),
    ),
    Showcase(
        "nadir_window_missed",
        "chemotherapy cycle whose nadir window (days 7-14) closed without a count.",
        "oncology",
        "M",
        67,
        counts=((-20, 8.5, 3.8),),
        temperatures=((-20, 9.0, 36.7, ORAL),),
        events=(_chemo(-20, DOCETAXEL, 1),),
    ),
    Showcase(
        "high_risk_without_gcsf",
        "high febrile-neutropenia risk regimen (TAC every 21 days, risk set to high in the settings) given "
        "without G-CSF.",
        "oncology",
        "F",
        52,
        counts=((-10, 8.5, 4.6), (-2, 9.0, 0.7)),
        temperatures=((-10, 9.0, 36.4, ORAL), (-2, 9.25, 37.1, ORAL)),
        events=(_chemo(-10, TAC, 1),),
    ),
    Showcase(
        "dose_limiting_neutropenia",
        "ANC below 0.5 from D8 to D15 of a docetaxel cycle (7 days or more, as sampled) without G-CSF, then "
        "the next cycle given.",
        "oncology",
        "M",
        61,
        counts=((-30, 9.0, 4.0), (-23, 9.0, 0.4), (-17, 9.0, 0.3), (-16, 9.0, 0.45), (-9, 8.5, 2.1)),
        temperatures=((-30, 9.25, 36.6, ORAL), (-23, 9.25, 37.4, ORAL), (-9, 9.0, 36.8, ORAL)),
        events=(_chemo(-30, DOCETAXEL, 1), _chemo(-9, DOCETAXEL, 2)),
    ),
    Showcase(
        "cycle_delayed",
        "cycle 2 given 7 days late: ANC 1.1 on the planned day.",
        "oncology",
        "F",
        69,
        counts=((-35, 9.0, 4.3), (-26, 9.0, 0.9), (-14, 8.5, 1.1), (-7, 8.5, 1.9)),
        temperatures=((-35, 9.25, 36.5, ORAL), (-14, 9.0, 36.9, ORAL), (-7, 9.0, 36.6, ORAL)),
        events=(
            _chemo(-35, DOCETAXEL, 1),
            (
                "note",
                -14,
                11.0,
                "Cycle 2 postponed one week: ANC below 1.5 x10^9/L",
                "Readiness rule before each cycle: ANC >= 1.5 x10^9/L (docetaxel prescribing information)",
            ),
            _chemo(-7, DOCETAXEL, 2),
        ),
    ),
    Showcase(
        "afebrile_with_gcsf",
        "21-day chemotherapy with G-CSF, temperature taken at every visit, never febrile.",
        "oncology",
        "F",
        55,
        counts=((-44, 9.0, 4.5), (-36, 9.0, 1.9), (-23, 8.5, 3.9), (-15, 9.0, 1.7), (-2, 8.5, 4.0)),
        temperatures=(
            (-44, 9.25, 36.6, ORAL),
            (-36, 9.5, 36.9, BODY),
            (-23, 9.0, 36.4, ORAL),
            (-15, 9.25, 37.3, BODY),
            (-2, 9.0, 36.7, ORAL),
        ),
        events=(
            _chemo(-44, CARBO_PACLI, 1),
            ("gcsf", -43, 11.0, "Pegfilgrastim 6 mg SC, cycle 1", "Primary G-CSF prophylaxis"),
            _chemo(-23, CARBO_PACLI, 2),
            ("gcsf", -22, 11.0, "Pegfilgrastim 6 mg SC, cycle 2", "Primary G-CSF prophylaxis"),
            _chemo(-2, CARBO_PACLI, 3),
            ("gcsf", -1, 11.0, "Pegfilgrastim 6 mg SC, cycle 3", "Primary G-CSF prophylaxis"),
        ),
    ),
)


def _local(end_date: dt.date, days: np.ndarray, hours: np.ndarray) -> pd.DatetimeIndex:
    """Times on the clinics' clock, ``days`` after the end date at ``hours``, in UTC (microseconds)."""
    minutes = np.round((np.asarray(days, float) * 24 + np.asarray(hours, float)) * 60)
    local = pd.Timestamp(end_date) + pd.to_timedelta(minutes, unit="min")
    return pd.DatetimeIndex(local).tz_localize(LOCAL_TZ).tz_convert("UTC").as_unit("us")


def _counts(case: Showcase, number: int, end_date: dt.date) -> pd.DataFrame:
    """Each count of ``case`` as a CBC of WBC, ANC, ALC, haemoglobin and platelets (ALC, Hb and platelets
    steady, WBC their sum with a few monocytes and eosinophils), against its lab's ranges."""
    day, hour, anc = (np.array(column, float) for column in zip(*case.counts, strict=True))
    alc = np.full(anc.size, 1.4)
    values = {
        "wbc": np.round(anc + alc + 0.45, 2),
        "anc": anc,
        "alc": alc,
        "hgb": np.full(anc.size, 12.9 if case.sex == "F" else 14.1),
        "plt": np.where(anc < 1.0, 148.0, 236.0),
    }
    code, _, prefix = LABS[case.lab]
    ranges = {
        a: _ROWS[f"hgb_{case.sex}" if a == "hgb" else a][2 * case.lab : 2 * case.lab + 2] for a in COUNTED
    }
    nth = np.arange(1, anc.size + 1)
    return pd.DataFrame(
        {
            "patient_id": np.repeat(f"DEMO-{number:04d}", anc.size * len(COUNTED)),
            "collected_at": _local(end_date, day, hour).repeat(len(COUNTED)),
            "analyte": np.tile(COUNTED, anc.size),
            "value": np.column_stack([values[a] for a in COUNTED]).ravel(),
            "unit": np.tile([ANALYTES[a].unit for a in COUNTED], anc.size),
            "ref_low": np.tile([ranges[a][0] for a in COUNTED], anc.size),
            "ref_high": np.tile([ranges[a][1] for a in COUNTED], anc.size),
            "lab": code,
            "accession": np.repeat([f"{prefix}-{number:04d}-{n:03d}" for n in nth], len(COUNTED)),
            "status": "final",
            "loinc": None,
        }
    )


def _temperatures(case: Showcase, number: int, end_date: dt.date) -> pd.DataFrame:
    if not case.temperatures:
        return pd.DataFrame()
    day, hour, value, loinc = zip(*case.temperatures, strict=True)
    return pd.DataFrame(
        {
            "patient_id": f"DEMO-{number:04d}",
            "collected_at": _local(end_date, np.array(day), np.array(hour)),
            "analyte": "temp",
            "value": np.array(value, float),
            "unit": ANALYTES["temp"].unit,
            "ref_low": np.nan,
            "ref_high": np.nan,
            "lab": WARD[0],
            "accession": [f"{WARD[2]}-{number:04d}-{n:03d}" for n in range(1, len(value) + 1)],
            "status": "final",
            "loinc": list(loinc),
        }
    )


def _events(case: Showcase, number: int, end_date: dt.date) -> pd.DataFrame:
    kind, day, hour, label, details = zip(*case.events, strict=True)
    return pd.DataFrame(
        {
            "patient_id": f"DEMO-{number:04d}",
            "kind": list(kind),
            "start": _local(end_date, np.array(day), np.array(hour)),
            "end": pd.DatetimeIndex([pd.NaT] * len(kind)).tz_localize("UTC").as_unit("us"),
            "label": list(label),
            "details": list(details),
        }
    )


def with_showcase(cohort: DemoCohort, *, end_date: dt.date) -> DemoCohort:
    """``cohort`` with the showcase patients after it, numbered on from its highest identifier.

    >>> from monitor.simulation.demo import simulate_cohort
    >>> end = dt.date(2025, 6, 30)
    >>> both = with_showcase(simulate_cohort(2, end_date=end), end_date=end)
    >>> both.patients["patient_id"].iloc[2], len(both.patients) == 2 + len(SHOWCASES)
    ('DEMO-0003', True)
    """
    first = int(cohort.patients["patient_id"].str[5:].astype(int).max()) + 1
    numbers = range(first, first + len(SHOWCASES))
    patients = pd.DataFrame(
        {
            "patient_id": [f"DEMO-{n:04d}" for n in numbers],
            "name": [f"Synthetic Patient {n:03d}" for n in numbers],
            "birth_date": pd.Series(
                [end_date - dt.timedelta(days=int(case.age * 365.25) + 40) for case in SHOWCASES],
                dtype=object,
            ),
            "sex": [case.sex for case in SHOWCASES],
            "scenario": [f"showcase_{case.code}" for case in SHOWCASES],
            "scenario_label": [f"Synthetic: {case.label}" for case in SHOWCASES],
        }
    )
    cases = list(zip(SHOWCASES, numbers, strict=True))
    results = [part(case, n, end_date) for case, n in cases for part in (_counts, _temperatures)]
    events = pd.concat([_events(case, n, end_date) for case, n in cases], ignore_index=True)
    teams = pd.DataFrame({"patient_id": patients["patient_id"], "team": [case.team for case in SHOWCASES]})

    def joined(mine: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([mine, theirs.astype(mine.dtypes.to_dict())], ignore_index=True)

    simulated = cohort.results.assign(loinc=None)
    shown = pd.concat([simulated, *(frame for frame in results if len(frame))], ignore_index=True)
    return DemoCohort(
        patients=joined(cohort.patients, patients),
        memberships=joined(cohort.memberships, teams),
        labs=joined(cohort.labs, pd.DataFrame([WARD[:2]], columns=["code", "name"])),
        results=shown,
        events=joined(cohort.events, events),
        overrides=cohort.overrides,
    )
