"""Worklist: every patient the user may see, most urgent first, with why each is flagged."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from monitor.analysis import triage
from monitor.analysis.flags import FLAGS, flag_label
from monitor.analysis.support_flags import SUPPORT_FLAGS
from services import reports
from ui import data, worklist
from ui.downloads import audited_csv_download, audited_pdf_download
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
no_cbc_days = data.rules().flags.no_cbc_days
filters = st.columns([1.8, 2.6, 1.1, 2.2], vertical_alignment="bottom")
team = filters[0].selectbox("Team", ["All teams", *teams], key="worklist_team")
flags = filters[1].multiselect(
    "Flags", [*FLAGS, *SUPPORT_FLAGS], format_func=flag_label, key="worklist_flags"
)
min_grade = filters[2].selectbox("Grade at least", [0, 1, 2, 3, 4], key="worklist_grade")
search = filters[3].text_input("Search identifier or name", key="worklist_search")
toggles = st.columns(4)
unacknowledged = toggles[0].toggle("Not yet acknowledged", key="worklist_unacknowledged")
cbc_due = toggles[1].toggle(
    "CBC due",
    key="worklist_cbc_due",
    help="A nadir window opening soon or missed without a count, or grade 3-4 without a recent count",
)
worsening_help = (
    "WBC, ANC or ALC worsening (below the limit: a fall beyond the reference change value, two grades, a "
    "step into grade 3-4 or a falling trend) or a significant drop (a fall beyond the reference change "
    "value); docs/clinical-basis.md, Worklist filters"
)
worsening = toggles[2].toggle(triage.WORSENING_LABEL, key="worklist_worsening", help=worsening_help)
no_cbc_help = (
    f"The last CBC {no_cbc_days} or more calendar days ago (the site's setting flags.no_cbc_days); "
    "docs/clinical-basis.md, Worklist filters"
)
no_cbc = toggles[3].toggle(triage.no_cbc_label(no_cbc_days), key="worklist_no_cbc", help=no_cbc_help)

shown = triage.filtered(
    patients,
    team=None if team == "All teams" else team,
    flags=flags,
    min_grade=min_grade,
    text=search,
    unacknowledged_only=unacknowledged,
    cbc_due_only=cbc_due,
    worsening_only=worsening,
    no_cbc_days=no_cbc_days if no_cbc else None,
)
headline = triage.headline(shown, no_cbc_days=no_cbc_days)
explained = {
    "Urgent (priority 1-2)": f"Priority 1: {triage.TIERS[1]}; priority 2: {triage.TIERS[2]}",
    triage.WORSENING_LABEL: worsening_help,
    triage.no_cbc_label(no_cbc_days): no_cbc_help,
}
for column, (label, value) in zip(st.columns(len(headline)), headline.items(), strict=True):
    column.metric(label, value, help=explained.get(label))

table = worklist.worklist_table(shown, timezone)
st.caption(
    f"{len(table)} of {len(patients)} patients, most urgent first. Select a row to open the patient; the "
    "flags and every other column are in the CSV."
    + ("" if worklist.coloured(table) else " Too many patients to colour: narrow the list to see colours.")
)
selection = st.dataframe(
    worklist.styled(shown, table),
    hide_index=True,
    width="stretch",
    height=worklist.table_height(len(table)),
    on_select="rerun",
    selection_mode="single-row",
    key="worklist_table",
    column_order=worklist.SCREEN_COLUMNS,
    column_config=worklist.column_config(),
)
st.caption(
    "Priority: "
    + "; ".join(f"{tier} {words}" for tier, words in triage.TIERS.items())
    + ". Why names the finding. WBC, ANC, ALC: the CTCAE v5.0 grade (G1 to G4, pale to strong red) and the "
    f"latest count, each against the lower limit that applies to it; {worklist.HIGH_MARK} above the upper "
    "limit. Hb and platelets appear when low. Pattern: which lineages the latest panel shows low together. "
    "Cycle: C#D# (D1 = the day chemotherapy started). The CSV adds the flags, the next dose and readiness, "
    "and the date of the last CBC. CBC due (a chip among the flags): a nadir window opening soon or missed "
    "with no count in it, or grade 3-4 without a recent count (docs/clinical-basis.md, CBCs due). Forecast "
    "grade 4 (a chip among the flags): the nadir forecast of the cycle now (a model fitted to the patient's "
    "own counts; decision support) gives at least the site's cycles.forecast_grade4_threshold chance of a "
    f"grade 4 nadir (docs/clinical-basis.md, Nadir forecast). {triage.WORSENING_LABEL}: worsening or a "
    "significant drop of the WBC, ANC or ALC; "
    f"{triage.no_cbc_label(no_cbc_days).lower()}: the site's flags.no_cbc_days "
    "(docs/clinical-basis.md, Worklist filters)."
)
export = table.drop(columns=list(worklist.SCREEN_ONLY)).assign(Flags=table["Flags"].map(", ".join))
audited_csv_download(
    "Download this list (CSV)",
    export,
    file_name="worklist.csv",
    viewer=viewer,
    what=f"worklist CSV ({len(export)} patients)",
)
# The chosen team's handover, as the command line's `handover` prints it: every patient of the team in this
# order (not only those the filters keep), laid out when clicked and audited as an export of each.
codes = [code for code, name in data.handover_teams(viewer) if name == team]
for code in codes:  # (two teams may share a name: a button for each, told apart by its code)
    audited_pdf_download(
        f"Handover of {team} (PDF)" if len(codes) == 1 else f"Handover of {team}, {code} (PDF)",
        lambda printer, code=code: reports.handover(
            data.store(),
            viewer=printer,
            team=code,
            timezone=timezone,
            now=datetime.now(UTC),
            printed_by=printer.username,
            site=data.config().site_name,
        ),
        file_name=f"handover-{code}.pdf",
        viewer=viewer,
        what=f"handover {code} (PDF)",
    )
if not codes:
    st.caption(
        "Handover (PDF): choose a team above to print its list."
        if team == "All teams"
        else "Handover (PDF): only the handover of a team you are in can be printed."
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
