"""Treatment cycles: a chemotherapy patient's counts cycle by cycle, nadir, recovery and readiness."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.analysis.cycles import cycle_notation
from monitor.analytes import ANALYTES
from ui import data, forecast, timeline
from ui.identity import current_viewer
from ui.pickers import choose_patient
from ui.text import plain

st.title("Treatment cycles")
viewer = current_viewer()
timezone = data.config().timezone
patients = data.worklist(viewer, timezone)
treated = patients[patients["patient_key"].isin(data.treated_patients(viewer))]
if treated.empty:
    st.info(
        "No patient has a chemotherapy event. Cycles start at `chemotherapy` events (import an events CSV, "
        "or add one on the patient's page)."
    )
    st.stop()

# The selector lists the treated patients' identifiers and names: a view of each, as the worklist is.
data.record_list_view(
    treated["patient_key"], viewer, "patient list on the cycles page", f" ({len(treated)} patients)"
)
chosen = choose_patient(treated, "Patient (with chemotherapy)", key="cycles_patient")
data.record_view(chosen, viewer, "treatment cycles")
view = data.patient_view(chosen, viewer, timezone)
found = view.cycles
cycles, rules = found.cycles, found.rules
if found.now:
    st.markdown(f"**Cycle now:** {plain(found.now)}")

if found.trend:
    st.warning(plain(found.trend[0]), icon=":material/trending_down:")
else:
    st.caption("Across cycles: no deepening nadir or slower recovery (as sampled).")

analyte = (
    st.segmented_control(
        "Count",
        ["anc", "wbc", "plt"],
        default="anc",
        format_func=lambda a: ANALYTES[a].label,
        key="cycles_analyte",
    )
    or "anc"
)
st.plotly_chart(
    timeline.cycle_overlay_figure(
        found.placed, analyte, window=rules.nadir_window_days, forecast=found.forecast, timezone=timezone
    ),
    key="cycles_chart",
)
forecast.show(found.forecast, timezone)

st.markdown("**Per cycle**")
st.dataframe(found.table, hide_index=True, width="stretch")
readiness = rules.readiness.describe()
st.caption(
    "Days in the D# notation (D1 = the day chemotherapy started). Nadir: the lowest ANC of the cycle "
    f"(marked when no ANC was measured on {cycle_notation(rules.nadir_window_days[0])}-"
    f"{cycle_notation(rules.nadir_window_days[1])}, the site's nadir window; "
    "docs/clinical-basis.md, Nadir timing). Days G3+: confirmed-possible days at "
    "CTCAE grade 3 or worse, as sampled. Days ANC<0.5: the same for ANC < 0.5, the duration the "
    "paclitaxel and docetaxel labels act on (docs/clinical-basis.md, Severe neutropenia duration). "
    "Recovered: between the two counts around the first ANC >= "
    f"{rules.recovery_anc:g}. FN: an episode of febrile neutropenia started in the cycle (IDSA 2010 or "
    "CTCAE v5.0, the rule of the patient's flag; docs/clinical-basis.md, Febrile neutropenia), '?' "
    "when a fever could not be judged, '-' when no fever was recorded. Ready at next: the last ANC and "
    "platelets in the "
    f"{rules.readiness_window_days} days before the next start against {readiness} (paclitaxel and "
    "docetaxel prescribing information; docs/clinical-basis.md, Readiness thresholds; per regimen in "
    "Settings)."
)
with st.expander("Readiness and fevers in words"):
    for row in cycles.itertuples(index=False):  # one line per cycle: a handful
        start = pd.Timestamp(row.start).strftime("%Y-%m-%d")
        st.markdown(
            f"- **Cycle {row.cycle}** ({start}): {plain(row.readiness)}"
            + (f"; {plain(row.fever)}" if row.fever else "")
        )

# Decision support, never an order: each sentence names its rule and source.
supported = cycles[(cycles["support"].ne("") | cycles["delay"].ne("")).to_numpy(dtype=bool)]
if not supported.empty:
    st.markdown("**G-CSF, dose modification and delays** (decision support)")
    for row in supported.itertuples(index=False):  # a handful of cycles
        for sentence in [row.delay, *str(row.support).split(" | ")]:
            if sentence:
                st.markdown(f"- **Cycle {row.cycle}**: {plain(sentence)}")
st.caption(
    "G-CSF on: the D days a G-CSF event started. Delay days: how much later than the previous cycle's "
    "planned length this cycle started (0 within 2 days; docs/clinical-basis.md, Cycle delays). Support: "
    f"primary G-CSF prophylaxis for a high-risk regimen with no G-CSF on D{rules.gcsf_prophylaxis_days[0]}-"
    f"D{rules.gcsf_prophylaxis_days[1]}, consider it at intermediate risk with age >= {rules.gcsf_risk_age} "
    "or earlier febrile neutropenia (ASCO 2015, EORTC, NCCN; the regimen's risk in Settings), and "
    "secondary prophylaxis or dose reduction after febrile neutropenia or ANC < 0.5 for "
    f"{rules.dose_limiting_days} days or more as sampled (paclitaxel and docetaxel labels; "
    "docs/clinical-basis.md, G-CSF prophylaxis and Dose modification)."
)
