"""Import: upload laboratory files, check what would land and what would be refused, then import."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from monitor.timestamps import is_timezone
from services.imports import FORMAT_NAMES, ImportOptions, ImportSummary, import_content
from ui import data
from ui.identity import current_user, current_viewer
from ui.text import plain

# The refused records' columns in words, the reason wide enough to read (as stored: where, why, as sent).
REFUSED_COLUMNS = {
    "location": st.column_config.TextColumn("Where", width="small"),
    "reason": st.column_config.TextColumn("Why it was refused", width="large"),
    "raw_text": st.column_config.TextColumn("As sent", width="medium"),
}


def _size(count: int) -> str:
    """A byte count as people read it: "10 KB", "2.5 MB"."""
    return f"{count / 1e6:,.1f} MB" if count >= 1e6 else f"{max(count / 1e3, 0.1):,.1f} KB"


def _records(count: int) -> str:
    """ "1 record", "3 records"."""
    return f"{count:,} record" + ("" if count == 1 else "s")


if not current_viewer().may("administer"):
    st.error("This page is for administrators.")
    st.stop()

st.title("Import results")
st.caption(
    "HL7 v2 ORU^R01, FHIR R4 (JSON bundle, single resource or NDJSON), the canonical or wide CSV, a lab "
    "export with renamed columns, or a clinical events CSV. Each file is imported whole or not at all; "
    "refused records are kept with their reasons for review."
)

uploads = st.file_uploader("Files", accept_multiple_files=True, key="import_files")
options = st.columns([1, 1, 2])
fmt = options[0].selectbox("Format", ["auto", *FORMAT_NAMES], key="import_format")
# The site's zone, checked when the dashboard started: the default for times without an offset.
site_timezone = data.config().timezone
timezone = (
    options[1]
    .text_input("Time zone for times without an offset", value=site_timezone, key="import_timezone")
    .strip()
)
unknown_zone = bool(timezone) and not is_timezone(timezone)
if unknown_zone:
    options[1].error(
        f"{plain(repr(timezone))} is not an IANA time zone (e.g. Europe/London): correct it to import."
    )
mapping_text = options[2].text_area(
    "Rename CSV columns (one SOURCE=TARGET per line)",
    key="import_map",
    height=68,
    placeholder="MRN=patient_id\nDrawn at=collected_at",
)


def _mapping(text: str) -> dict[str, str]:
    pairs = [line.partition("=") for line in text.splitlines() if line.strip()]
    return {
        source.strip(): target.strip() for source, _, target in pairs if source.strip() and target.strip()
    }


def _run(dry_run: bool) -> list[ImportSummary]:
    summaries = []
    progress = st.progress(0.0, text="Starting")
    choices = ImportOptions(
        imported_by=current_user(),
        format=None if fmt == "auto" else fmt,
        timezone=timezone or None,
        column_map=_mapping(mapping_text),
        dry_run=dry_run,
        again=again,
        teams=tuple(teams),
        site_timezone=site_timezone,
        future_tolerance=data.config().future_tolerance,
    )
    for number, upload in enumerate(uploads, start=1):
        progress.progress((number - 1) / len(uploads), text=f"{upload.name} ({number} of {len(uploads)})")

        def report(done: int, total: int, number: int = number, name: str = upload.name) -> None:
            share = (number - 1 + done / max(total, 1)) / len(uploads)
            progress.progress(min(share, 1.0), text=f"{name}: {_size(done)} of {_size(total)} read")

        summaries.append(
            import_content(data.store(), upload.name, upload.getvalue(), options=choices, progress=report)
        )
    progress.progress(1.0, text="Done")
    return summaries


def _show(summaries: list[ImportSummary], dry_run: bool, teams: list[str]) -> None:
    table = pd.DataFrame(
        {
            "File": [s.file_name for s in summaries],
            "Format": [s.format or "" for s in summaries],
            "Accepted": [s.accepted for s in summaries],
            "Derived": [s.derived for s in summaries],
            "Superseding": [s.superseded for s in summaries],
            "Unchanged": [s.unchanged for s in summaries],
            "Rejected": [len(s.rejected) for s in summaries],
            "Kept, outside the CBC": [s.others for s in summaries],
            "Pending (no result yet)": [s.pending for s in summaries],
            "Outcome": [
                s.error or ("identical to an earlier import" if s.identical_to is not None else "")
                for s in summaries
            ],
        }
    )
    st.subheader("What would be imported (dry run: nothing stored)" if dry_run else "What was imported")
    st.dataframe(table, hide_index=True, width="stretch")
    for summary in summaries:
        file_name = plain(summary.file_name)
        if summary.error:
            st.error(f"{file_name} was not imported: {plain(summary.error)}")
        elif summary.identical_to is not None:
            earlier = summary.identical_to
            refused = (
                f" It refused {_records(len(summary.rejected))} (below): once their cause is put right, tick "
                "'Read again files imported before' to retry them."
                if len(summary.rejected)
                else ""
            )
            st.info(
                f"{file_name}: the same content as import #{earlier.id} ({plain(earlier.file_name)}, "
                f"{earlier.imported_at:%Y-%m-%d %H:%M} UTC); nothing new.{refused}"
            )
        if summary.assigned:
            st.success(
                f"{file_name}: {summary.assigned} patient memberships "
                f"{'would be added' if dry_run else 'added'} to {plain(', '.join(teams))}."
            )
        if summary.teamless:
            st.warning(
                f"{file_name}: {summary.teamless} of its patients "
                f"{'is' if summary.teamless == 1 else 'are'} in no care team, so only "
                "administrators see them: choose teams above and import again, or assign them."
            )
        if len(summary.rejected):
            with st.expander(f"{file_name}: {len(summary.rejected)} refused, with reasons"):
                listed = summary.rejected[["location", "reason", "raw_text"]]  # as in Past imports
                st.dataframe(listed, hide_index=True, width="stretch", column_config=REFUSED_COLUMNS)
    for warning in dict.fromkeys(warning for summary in summaries for warning in summary.warnings):
        st.warning(warning, icon=":material/key:")


teams = st.multiselect(
    "Put the files' patients in these care teams",
    data.team_codes(),
    key="import_teams",
    help="Every patient the files' results name joins these teams, whose members then see them. A patient "
    "in no team is seen by administrators only.",
)
again = st.checkbox(
    "Read again files imported before",
    key="import_again",
    help="A file whose exact content was imported before is otherwise reported as unchanged without being "
    "read. Read again, records refused then for a reason since put right (their patient was not yet in the "
    "store, a CSV's times needed a zone) can land; what is stored stays as it is. A file is read again "
    "only in the time zone it was first read in.",
)
buttons = st.columns([1, 1, 4])
blocked = not uploads or unknown_zone
check = buttons[0].button("Check (dry run)", disabled=blocked, key="import_check")
commit = buttons[1].button("Import", type="primary", disabled=blocked, key="import_commit")
if uploads:
    # What the server has received: a large file shows here once its upload has finished.
    chosen = "1 file" if len(uploads) == 1 else f"{len(uploads)} files"
    buttons[2].caption(f"{chosen} chosen, {_size(sum(upload.size for upload in uploads))}")
if check:
    _show(_run(dry_run=True), dry_run=True, teams=teams)
if commit:
    _show(_run(dry_run=False), dry_run=False, teams=teams)
    data.refresh()

st.subheader("Live feed (MLLP)")
feed = data.feed_state(current_viewer())
zone = ZoneInfo(data.config().timezone)


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S} ({data.config().timezone})"


if feed.listeners.empty and feed.today.empty:
    st.caption(
        "No live feed has delivered to this store. `python -m monitor listen` receives HL7 v2 ORU^R01 "
        "results over MLLP as the hospital's interface engine sends them, and answers each once it is stored "
        "(docs/deployment.md, Live feed)."
    )
else:
    said = {
        "listening": "listening",
        "silent": "silent: no sign of life for 30 seconds (stopped without saying so, or its host is down)",
        "stopped": "stopped",
    }
    for listener in feed.listeners.itertuples():
        line = (
            f"Listener on {plain(str(listener.address))}: {said[str(listener.state)]}; last seen "
            f"{_local(listener.seen_at)}"
        )
        (st.success if listener.state == "listening" else st.warning)(line)
    counts = {
        str(code): int(n) for code, n in zip(feed.today["ack_code"], feed.today["messages"], strict=True)
    }
    columns = st.columns(4)
    columns[0].metric("Messages today", f"{sum(counts.values()):,}")
    columns[1].metric("Stored (AA)", f"{counts.get('AA', 0):,}")
    columns[2].metric("Some records refused (AE)", f"{counts.get('AE', 0):,}")
    columns[3].metric("Not processed (AR)", f"{counts.get('AR', 0):,}")
    st.caption(
        (f"Last message received {_local(feed.last_at)}. " if feed.last_at else "No message today. ")
        + f"Patients whose status is still being recomputed: {feed.waiting:,}."
    )
    if not feed.refusals.empty:
        with st.expander(f"Latest messages with refusals ({len(feed.refusals)})"):
            shown = feed.refusals.assign(received_at=feed.refusals["received_at"].map(_local))[
                ["received_at", "control_id", "ack_code", "ack_text", "batch_id"]
            ]
            st.dataframe(
                shown.rename(
                    columns={
                        "received_at": "Received",
                        "control_id": "Control ID",
                        "ack_code": "ACK",
                        "ack_text": "What the ACK said",
                        "batch_id": "Import",
                    }
                ),
                hide_index=True,
                width="stretch",
                key="feed_refusals",
            )
            st.caption(
                "The refused records themselves are under Past imports, in the feed's import of the day."
            )

st.subheader("Past imports")
batches = data.import_batches(current_viewer())
if batches.empty:
    st.info("Nothing imported yet.")
else:
    shown = batches.assign(imported_at=batches["imported_at"].dt.strftime("%Y-%m-%d %H:%M:%S")).rename(
        columns={
            "id": "Import",
            "file_name": "File",
            "format": "Format",
            "imported_by": "By",
            "imported_at": "When (UTC)",
            "accepted": "Accepted",
            "superseded": "Superseding",
            "unchanged": "Unchanged",
            "rejected": "Rejected",
        }
    )
    st.dataframe(shown, hide_index=True, width="stretch", key="import_batches")
    with_rejects = batches.loc[batches["rejected"] > 0, "id"].tolist()
    if with_rejects:
        names = batches.set_index("id")["file_name"]
        # None chosen until someone asks: refused records hold patient data verbatim, and reading them is
        # an audited view, so opening the page must neither read nor audit them.
        chosen = st.selectbox(
            "Refused records of import",
            with_rejects,
            index=None,
            placeholder="Choose an import to see the records it refused (the view is audited)",
            format_func=lambda number: f"#{number}: {names[number]}",
            key="import_batch_rejects",
        )
        if chosen is not None:
            batch, viewer = int(chosen), current_viewer()
            # Read with the view audited, once per import shown (the page reruns on every click; what
            # was read is kept for the reruns).
            if st.session_state.get("import_refused_of") != (viewer.username, batch):
                st.session_state["import_refused"] = data.batch_rejections(batch, viewer)
                st.session_state["import_refused_of"] = (viewer.username, batch)
            st.dataframe(
                st.session_state["import_refused"],
                hide_index=True,
                width="stretch",
                column_config=REFUSED_COLUMNS,
            )
