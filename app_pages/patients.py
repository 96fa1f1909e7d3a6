"""Worklist: every patient the user may see, most urgent first, with why each is flagged."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.analysis import triage
from monitor.analysis.flags import FLAGS, flag_label
from monitor.analysis.support_flags import SUPPORT_FLAGS
from ui import data, worklist
from ui.downloads import audited_csv_download
from ui.identity import current_viewer

st.title("Worklist")
viewer = current_viewer()
timezone = data.config().timezone
patients = data.worklist(viewer, timezone)
# The list shows names and counts of every patient the viewer may see (filters only narrow it): a view of
# each of them, audited once per distinct list in the session.
data.record_list_view(patients["patient_key"], viewer, "worklist", f" ({len(patients)} patients)")
if patients.empty:
    st.info(
        "No patients to show yet: results appear here once they are imported (the Import page, or "
        "`python -m monitor import FILE`)."
        if viewer.role == "admin"
        else "No patients in your teams yet. An administrator assigns patients to teams."
    )
    st.stop()

teams = sorted({team for listed in patients["teams"] for team in listed.split(", ") if team})
filters = st.columns([1.8, 2.6, 1.1, 2.2, 1.9, 1.4], vertical_alignment="bottom")
team = filters[0].selectbox("Team", ["All teams", *teams], key="worklist_team")
flags = filters[1].multiselect(
    "Flags", [*FLAGS, *SUPPORT_FLAGS], format_func=flag_label, key="worklist_flags"
)
min_grade = filters[2].selectbox("Grade at least", [0, 1, 2, 3, 4], key="worklist_grade")
search = filters[3].text_input("Search identifier or name", key="worklist_search")
unacknowledged = filters[4].toggle("Not yet acknowledged", key="worklist_unacknowledged")
cbc_due = filters[5].toggle(
    "CBC due",
    key="worklist_cbc_due",
    help="A nadir window opening soon or missed without a count, or grade 3-4 without a recent count",
)

shown = triage.filtered(
    patients,
    team=None if team == "All teams" else team,
    flags=flags,
    min_grade=min_grade,
    text=search,
    unacknowledged_only=unacknowledged,
    cbc_due_only=cbc_due,
)
for column, (label, value) in zip(st.columns(6), triage.headline(shown).items(), strict=True):
    column.metric(label, value)

table = worklist.worklist_table(shown, timezone)
st.caption(
    f"{len(table)} of {len(patients)} patients, most urgent first (Priority): "
    + "; ".join(f"{tier} {words}" for tier, words in triage.TIERS.items())
    + ". Why names the finding. "
    "Grade: the highest current CTCAE v5.0 grade of WBC, ANC and ALC, each against the "
    "lower limit that applies to it. Cycle: C#D# (D1 = the day chemotherapy started) and the day the next "
    "dose is expected; readiness for it only from the readiness window before that day (or once it has "
    "passed). CBC due: a nadir window opening soon or missed with no count in it, or grade 3-4 without a "
    "recent count (docs/clinical-basis.md, CBCs due). Forecast grade 4: the nadir forecast of the cycle "
    "now (a model fitted to the patient's own counts; decision support) gives at least the site's "
    "cycles.forecast_grade4_threshold chance of a grade 4 nadir, with the figure "
    "(docs/clinical-basis.md, Nadir forecast). Select a row to open the patient."
)
selection = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="worklist_table",
    column_config={
        "Priority": st.column_config.NumberColumn(help=worklist.PRIORITY_HELP, width="small"),
        "Why": st.column_config.TextColumn(help="The finding that sets the priority", width="medium"),
        "Name": st.column_config.TextColumn(width="small"),
        "Flags": st.column_config.ListColumn(
            "Flags",
            help="Each flag explains itself on the patient's page; CBC due and forecast grade 4 (the nadir "
            "forecast's chance of a grade 4 nadir) follow the flags",
            width="large",
        ),
        "WBC trend": st.column_config.LineChartColumn(
            "WBC trend", help="The last 12 WBC results, oldest first"
        ),
        "Last CBC": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "Grade": st.column_config.NumberColumn(
            help="Highest current CTCAE grade of WBC, ANC and ALC", width="small"
        ),
        "CBC due": st.column_config.TextColumn(
            help="Why a CBC is due: the nadir window and the last count, or the grade 3-4 rule",
            width="medium",
        ),
    },
)
export = table.drop(columns=["WBC trend"]).assign(Flags=table["Flags"].map(", ".join))
audited_csv_download(
    "Download this list (CSV)",
    export,
    file_name="worklist.csv",
    viewer=viewer,
    what=f"worklist CSV ({len(export)} patients)",
)

# What changed: the alerts that still hold (a flag the lab took back among them), so that no one acts on a
# flag that was withdrawn or misses one that appeared since the last look.
changed = data.alerts(viewer, timezone)
changed = changed[changed["patient_id"].isin(shown["patient_id"]).to_numpy(dtype=bool)]
counted = f"{len(changed)} patient" + ("" if len(changed) == 1 else "s")
with st.expander(f"Changes in the last {data.ALERT_HOURS} hours ({counted})", expanded=False):
    if changed.empty:
        st.caption("No flag appeared, no grade rose and no flag was withdrawn by the lab in this time.")
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "Patient ID": changed["patient_id"],
                    "Name": changed["name"],
                    "What changed": worklist.what_changed(changed),
                    "Noticed": pd.to_datetime(changed["last_noticed_at"], utc=True).dt.tz_convert(timezone),
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={"Noticed": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
        )

picked = worklist.selected_patient(shown, selection.selection.rows if selection else [])
if picked is not None:
    st.session_state["patient_key"] = picked
    st.switch_page("app_pages/patient.py")
