"""Audit: who saw or changed what, and when (administrators only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from services.audit import AUDIT_ACTIONS, read_trail, verify_trail
from ui import data
from ui.audit import action_words, readable_trail
from ui.downloads import audited_csv_download
from ui.identity import current_viewer

viewer = current_viewer()
if not viewer.may("administer"):
    st.error("The audit trail is for administrators.")
    st.stop()

st.title("Audit trail")
st.caption(
    "Append-only: views of patients, exports, imports, settings, ranges, events, acknowledgements, sign-ins."
)

# The chain: the whole trail on the first visit of a session (about a second per 100,000 rows), then only
# the rows added since (and the last one verified, unchanged), until asked to verify it all again.
if st.button("Verify the whole trail again", key="audit_reverify"):
    st.session_state.pop("audit_chain", None)
with st.spinner("Verifying the audit trail's hash chain..."):
    chain = verify_trail(data.store(), viewer=viewer, after=st.session_state.get("audit_chain"))
st.session_state["audit_chain"] = chain
if chain.intact:
    last = (
        f"; the last, row {chain.last_id}, at {chain.last_at:%Y-%m-%d %H:%M:%S} UTC" if chain.last_at else ""
    )
    st.success(f"Hash chain intact: {chain.rows:,} rows verified{last}.")
else:
    first = chain.breaks[0]
    st.error(
        f"Hash chain broken at row {first.id} ({first.at:%Y-%m-%d %H:%M:%S} UTC): {first.problem}. "
        f"{chain.broken:,} of {chain.rows:,} rows break the chain (`python -m monitor audit verify` lists "
        "them)."
    )
filters = st.columns(4)
days = filters[0].selectbox(
    "Period", [1, 7, 30, 365], index=1, format_func=lambda d: f"last {d} days", key="audit_days"
)
# A person is found under every name the trail has held for them ("alice", "cli:alice", ...).
username = filters[1].text_input("User", key="audit_user")
action = filters[2].selectbox(
    "Action",
    ["", *AUDIT_ACTIONS],
    key="audit_action",
    format_func=lambda chosen: action_words(chosen) if chosen else "All actions",
)
patient_id = filters[3].text_input("Patient ID", key="audit_patient")
trail = read_trail(
    data.store(),
    viewer=viewer,
    since=datetime.now(UTC) - timedelta(days=days),
    username=username.strip() or None,
    action=action or None,
    patient_id=patient_id.strip() or None,
)
# The trail names patients and who looked at them: reading it is a view, audited once per filter shown.
shown = {"user": username.strip(), "action": action, "patient": patient_id.strip()}
filtered = "".join(f", {name} {value!r}" for name, value in shown.items() if value)
filters = f"last {days} days{filtered}"
data.record_view(None, viewer, "audit trail", f" ({len(trail)} rows, {filters})", distinct=filters)
# Details in columns of words (the page, command or file viewed, then each kind of detail); the CSV keeps
# them as stored.
st.dataframe(readable_trail(trail), hide_index=True, width="stretch")
audited_csv_download(
    "Download (CSV)", trail, file_name="audit.csv", viewer=viewer, what=f"audit CSV ({len(trail)} rows)"
)
