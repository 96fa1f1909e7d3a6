"""The names of the cycle decision-support flags and their words (``analysis.cycles.support`` raises them).

Kept apart, with no imports, so that the flag lists (``analysis.flags``, ``analysis.changes``,
``analysis.triage``) can name them without importing the cycle analysis.
"""

from __future__ import annotations

# Flag -> words on the pages, in the worklist's reason and in the alerts ("... appeared: ...").
SUPPORT_FLAGS = {
    "gcsf_primary_prophylaxis": "G-CSF primary prophylaxis recommended",
    "gcsf_consider": "consider G-CSF prophylaxis",
    "secondary_prophylaxis": "secondary prophylaxis or dose reduction",
    "dose_reduction": "dose reduction to consider (neutropenia despite G-CSF)",
}
