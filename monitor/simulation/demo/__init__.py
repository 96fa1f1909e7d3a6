"""Synthetic demo cohort: simulated CBC histories, clinical events and reference ranges for demo mode.

Every patient, lab and name is invented and marked synthetic. Counts are *simulated* from a model of each
clinical story (chemotherapy neutrophils by the Friberg model, J Clin Oncol 2002), sampled at clinic
visits with multiplicative log-normal noise and rounded as a lab reports them. Patient i depends only on
(seed, i, end_date), so a larger cohort contains a smaller one. Not for clinical use.

Modules: ``scenarios`` (the stories and their words), ``stories`` (one patient drawn), ``measurements``
(visits, model values and noise), ``cohort`` (the tables).

Pure; imports only from ``monitor``.
"""

from __future__ import annotations

from monitor.simulation.demo.cohort import LABS, LOCAL_TZ, DemoCohort, simulate_cohort
from monitor.simulation.demo.measurements import PANEL, SIMULATED
from monitor.simulation.demo.scenarios import LABELS, SCENARIOS, Scenario

__all__ = [
    "LABELS",
    "LABS",
    "LOCAL_TZ",
    "PANEL",
    "SCENARIOS",
    "SIMULATED",
    "DemoCohort",
    "Scenario",
    "simulate_cohort",
]
