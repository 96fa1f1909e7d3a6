"""The demo's clinical stories: each scenario, its share of the cohort, and the words of its events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Event = tuple[str, float, float, str, str]  # kind, start, end (NaN: none), label, details; days from day 0
Params = dict[str, float]


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
    "duffy_null": "Duffy-null associated neutrophil count: ANC 1.2-1.6 x10^9/L, inside their own interval.",
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
BY_CODE = {s.code: s for s in SCENARIOS}

# Story vocabulary. Doses are usual textbook doses, shown for realism only (not from the reference).
REGIMENS = (
    ("Docetaxel 75 mg/m2", "Docetaxel every 21 days; non-small-cell lung cancer"),
    ("Carboplatin AUC 6 + paclitaxel 175 mg/m2", "Carboplatin-paclitaxel every 21 days; lung cancer"),
    ("Docetaxel 75 mg/m2 + cyclophosphamide 600 mg/m2", "TC every 21 days; early breast cancer"),
)
DRUGS = (  # name, indication, range of the lowest ANC reached (< 0.5 is agranulocytosis, Andrès & Maloisel)
    ("Methimazole 20 mg daily", "For Graves' hyperthyroidism", (0.1, 0.5)),
    ("Carbamazepine 200 mg twice daily", "For focal epilepsy", (0.5, 1.1)),
)
_GCSF_WHY = "Primary G-CSF prophylaxis: febrile-neutropenia risk >= 20 % (ASCO 2015)"  # Smith et al. 2015
# What clinicians read on the timeline: (label, details) of each event, filled in with str.format.
TEXT = {
    "chemo": ("{drug}, cycle {n}", "{regimen}"),
    "postponed": (
        "Cycle {n} postponed one week: ANC below 1.5 x10^9/L",
        "Readiness rule before each cycle: ANC >= 1.5 x10^9/L (docetaxel prescribing information)",
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
        "ANC from 1.21 x10^9/L is normal for this patient: Duffy-null reference interval applied, ANC "
        "1.21-5.39, WBC 3.00-9.66 x10^9/L (Hibbs et al., Blood 2025)",
    ),
    "biopsy": ("Bone marrow biopsy: myelodysplastic syndrome", "Progressive pancytopenia; supportive care"),
    "transfusion": ("Red cell transfusion, 2 units", "Haemoglobin below 8.0 g/dL"),
}
INFECTIONS = (
    ("Influenza A", "Influenza A PCR positive; fever, cough and myalgia, managed at home"),
    ("COVID-19", "SARS-CoV-2 PCR positive; mild illness managed at home"),
    ("Viral upper respiratory tract infection", "Sore throat, cough and coryza; no antibiotics"),
)


def event(kind: str, start: float, text: str, end: float = np.nan, **fill: object) -> Event:
    """One event from the TEXT table; times in days after day 0."""
    label, details = TEXT[text]
    return (kind, start, end, label.format(**fill), details.format(**fill))
