"""Treatment cycles (oncology): nadir, recovery, G-CSF and readiness per chemotherapy cycle.

A ``chemotherapy`` event starts a cycle, which runs to the next one or, when none follows, to the end of
its overdue period (``CycleRules.overdue_cycle_lengths`` planned lengths past the expected next dose).
Results are aligned to whole days since the cycle's start: the start is day 0, so
``C2D8`` (the dashboard's notation, D1 = day 0) is day 7 of cycle 2. Two chemotherapy events at the same
time start one cycle; a dose on a later dose day its regimen names ("D1 and D8 every 21 days") starts none
(``align.in_cycle_doses``). A dosing day's counts (the pre-treatment count) are the new cycle's baseline
and the last day of the cycle they close; the nadir is a low after the dose, never a pre-treatment count.
Everything is computed for every patient at once.

Facts and sources: docs/clinical-basis.md, Chemotherapy cycles (nadir timing, readiness thresholds from
the paclitaxel and docetaxel prescribing information, G-CSF as recorded, febrile neutropenia by IDSA
2010 and CTCAE v5.0 as ``analysis.febrile`` judges it); grades, ``analysis.grading``. Defaults without
a published source (the 28-day open cycle, the cross-cycle trend rules) are product defaults awaiting
clinical sign-off and are marked so on ``CycleRules``.

Modules: ``rules`` (the site's settings), ``align`` (cycles from events; results on their cycle days),
``table`` (one row per cycle), ``fever`` (febrile neutropenia), ``schedule`` (when the next dose is
expected: the regimen's cycle length, else the previous cycles', else the site default), ``readiness``
(before the next start; for the current cycle only from its window before the expected next dose),
``trend`` (across cycles), ``compare`` (before and after an event), ``display`` (for people).

Pure pandas; imports only from ``monitor``.
"""

from __future__ import annotations

from monitor.analysis.cycles.align import cycle_days
from monitor.analysis.cycles.compare import COMPARISON_COLUMNS, before_after
from monitor.analysis.cycles.display import cycle_notation, cycle_table
from monitor.analysis.cycles.readiness import (
    NOW_COLUMNS,
    planned_note,
    readiness_as_of,
    readiness_now,
    stored_readiness,
)
from monitor.analysis.cycles.rules import DEFAULT_CYCLE_RULES, CycleRules, Readiness
from monitor.analysis.cycles.schedule import planned_lengths, regimen_cycle_days
from monitor.analysis.cycles.table import CYCLE_COLUMNS, treatment_cycles
from monitor.analysis.cycles.trend import cycle_trend

__all__ = [
    "COMPARISON_COLUMNS",
    "CYCLE_COLUMNS",
    "DEFAULT_CYCLE_RULES",
    "NOW_COLUMNS",
    "CycleRules",
    "Readiness",
    "before_after",
    "cycle_days",
    "cycle_notation",
    "cycle_table",
    "cycle_trend",
    "planned_lengths",
    "planned_note",
    "readiness_as_of",
    "readiness_now",
    "regimen_cycle_days",
    "stored_readiness",
    "treatment_cycles",
]
