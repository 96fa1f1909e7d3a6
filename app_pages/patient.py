"""Patient timeline: where the patient stands, why, and every count over time with its events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from monitor.analysis.flags import HIGH_FLAGS, flag_label
from monitor.analysis.patterns import PATTERNS
from monitor.analytes import ANALYTES
from monitor.formats.events import EVENT_KINDS
from services import reports
from services.patient_actions import acknowledge, add_event, set_patient_range, site_instant
from services.patients import around_event
from ui import data, forecast, timeline
from ui.downloads import audited_csv_download, audited_pdf_download
from ui.figures import EVENT_NAMES, FEVER_FROM_EVENT
from ui.identity import current_viewer
from ui.pickers import choose_patient
from ui.temperatures import TEMPERATURE_CAPTION, usable_temperatures
from ui.text import plain, truth


def _kind_words(code: object) -> str:
    """An event's kind as people read it: "G-CSF", "chemotherapy", "fever (free text, from an event)"."""
    return {"gcsf": "G-CSF", "fever": FEVER_FROM_EVENT}.get(str(code), str(code).replace("_", " "))


WINDOWS = {"3 months": 91, "6 months": 182, "1 year": 365, "All": None}

st.title("Patient timeline")
viewer = current_viewer()
timezone = data.config().timezone
patients = data.worklist(viewer, timezone)  # the selector lists patients in worklist order
if patients.empty:
    st.info("No patients yet. Import results on the Import page or with `python -m monitor import FILE`.")
    st.stop()

# The selector lists every patient's identifier and name: a view of each, as the worklist is.
data.record_list_view(
    patients["patient_key"], viewer, "patient list on the timeline page", f" ({len(patients)} patients)"
)
chosen = choose_patient(patients, "Patient", key="patient_select")
data.record_view(chosen, viewer, "patient timeline")
view = data.patient_view(chosen, viewer, timezone)
patient, events = view.status, view.events


def _count(value: float, comparator: str | None) -> str:
    return "-" if pd.isna(value) else f"{comparator or ''}{value:.2f}"


def _grade(value) -> str:
    return "" if pd.isna(value) else f"G{int(value)}"


def _said(value, missing: str) -> str:
    """A demographic as text, or what to say when the feed did not send it (never "nan" or "None")."""
    return missing if pd.isna(value) or str(value).strip() == "" else str(value)


def _limit(analyte: str, value: float, lln: float, source, uln=None) -> str:
    if pd.isna(value):
        return f"No {analyte.upper()} result"
    if pd.isna(lln):
        return (
            "No lower limit known for the latest result: only CTCAE v5.0 grades 2-4 (fixed thresholds) apply"
        )
    said = plain(_said(source, "source not recorded"))
    upper = "" if uln is None or pd.isna(uln) else f", upper limit {float(uln)}"
    return f"Lower limit {float(lln)}{upper} ({said}); CTCAE v5.0 grade against it"


def _lab_flag(flag) -> str:
    """The lab's own abnormal flag beside a value (" HH"), "" when it sent none."""
    return "" if flag is None or pd.isna(flag) or str(flag).strip() == "" else f" {str(flag).strip()}"


def _high_text(analyte: str) -> str | None:
    """ "leukocytosis G3" for a count above its upper limit that CTCAE grades, "neutrophilia" for one it does
    not (docs/clinical-basis.md, High counts); None when the count is not above its limit."""
    high, flag = patient[f"latest_{analyte}_high_grade"], HIGH_FLAGS[analyte]
    if flag not in patient["flags"]:
        return None
    return f"{flag} G{int(high)}" if pd.notna(high) and int(high) >= 1 else flag


def _age(years, born) -> str:
    """Age in years; in months under 2 years, where the reference intervals and neutropenia cut-offs change
    by month (docs/clinical-basis.md, Paediatric neutropenia)."""
    if pd.isna(years):
        return "age unknown"
    if years >= 2 or pd.isna(born):
        return f"{int(years)} y"
    today, born = datetime.now(ZoneInfo(timezone)).date(), pd.Timestamp(born).date()
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    return f"{months} mo" if months >= 1 else f"{(today - born).days} d"


age = _age(patient["age"], patient["birth_date"])
st.markdown(
    f"**{plain(patient['patient_id'])}** · {plain(_said(patient['name'], '(no name)'))} · {age}"
    f" · {plain(_said(patient['sex'], 'sex unknown'))} · teams: {plain(_said(patient['teams'], 'none'))}"
)
# A result the lab flagged critical (HH, LL, AA, off the instrument's scale) is said before anything else
# (docs/clinical-basis.md, The lab's abnormal flags).
if truth(patient["lab_critical"]) is True:
    st.error(f"**Critical result from the lab:** {plain(patient['lab_critical_detail'])}")
facts = st.columns(4)
for column, analyte in zip(facts[:3], ("wbc", "anc", "alc"), strict=True):
    grade, high = _grade(patient[f"latest_{analyte}_grade"]), _high_text(analyte)
    value, lln = patient[f"latest_{analyte}"], patient[f"latest_{analyte}_lln"]
    # A child's ANC below the interval for age but above the neutropenia cut-off raises no flag
    # (docs/clinical-basis.md, Paediatric neutropenia).
    for_age = (
        analyte == "anc"
        and pd.notna(value)
        and pd.notna(lln)
        and pd.isna(patient["latest_anc_comparator"])
        and value < lln
        and "neutropenia" not in patient["flags"]
    )
    # A value and grade resting on a preliminary result say so (docs/clinical-basis.md, Preliminary results).
    preliminary = analyte in patient["preliminary"]
    column.metric(
        f"Latest {analyte.upper()} (10^9/L)",
        _count(patient[f"latest_{analyte}"], patient[f"latest_{analyte}_comparator"])
        + (_lab_flag(patient[f"latest_{analyte}_lab_flag"]) if pd.notna(value) else "")
        + (f" · {grade}" if grade and high is None else "")
        + (" · below the reference interval for age, not neutropenia" if for_age else "")
        + (" (preliminary)" if preliminary else ""),
        # A count above its upper limit is told under the value, in red with an up arrow.
        delta=high,
        delta_color="inverse",
        help=_limit(
            analyte,
            patient[f"latest_{analyte}"],
            patient[f"latest_{analyte}_lln"],
            patient[f"latest_{analyte}_range_source"],
            patient[f"latest_{analyte}_uln"],
        ),
    )
facts[3].metric(
    "Days since last CBC", "-" if pd.isna(patient["days_since_cbc"]) else int(patient["days_since_cbc"])
)

summary = st.columns([3, 2])
with summary[0].container(border=True):
    st.markdown("**Flags** (decision support: each says why it is raised)")
    if patient["flags"]:
        for flag, sentence in zip(patient["flags"], patient["explanations"], strict=False):
            st.markdown(f"- **{plain(flag_label(flag))}**: {plain(sentence)}")
    else:
        unjudged = [
            analyte.upper()
            for analyte in ("wbc", "anc", "alc")
            if pd.notna(patient[f"latest_{analyte}"]) and pd.isna(patient[f"latest_{analyte}_lln"])
        ]
        st.markdown(
            "No flag: the latest counts are neither below nor above their limits and nothing is changing "
            "fast."
            if not unjudged
            else f"No flag, but no lower limit is known for the latest {', '.join(unjudged)}: it cannot be "
            "judged low (only the fixed CTCAE grades apply): set the lab's range (Settings) or a "
            "patient-specific one (below, 'Acknowledge, add, set a range')."
        )
    pattern = patient["pattern"]
    if isinstance(pattern, str) and pattern != "none":
        name = pattern.replace("_", " ")
        st.markdown(f"**Latest panel:** {name} ({PATTERNS[pattern]}): {plain(patient['pattern_detail'])}")
    acknowledged = truth(patient["acknowledged"])  # None: no flag to acknowledge
    if acknowledged is True:
        st.caption(f"Acknowledged {patient['acknowledged_at']:%Y-%m-%d %H:%M} UTC.")
    elif acknowledged is False:
        st.caption("Not yet acknowledged since the flags last appeared or worsened.")

with summary[1].container(border=True):
    st.markdown("**Episodes below the limit (WBC, ANC)**")
    listed = view.episodes
    if listed.empty:
        st.markdown("None: no count below its limit.")
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "Count": listed["count"],
                    "From": listed["start"].dt.tz_convert(timezone).dt.strftime("%Y-%m-%d"),
                    "To": listed["end"].dt.tz_convert(timezone).dt.strftime("%Y-%m-%d"),
                    "Days": listed["days"],
                    "Results": listed["n_results"],
                    "Nadir": listed["nadir"],
                    "Ongoing": listed["ongoing"].map({True: "yes", False: ""}),
                }
            ),
            hide_index=True,
        )
    if patient["cycle"] is not pd.NA and not pd.isna(patient["cycle"]):
        cycle_now = f"C{patient['cycle']}D{patient['cycle_day'] + 1}. {patient['readiness']}"
        st.markdown(f"**Cycle now:** {plain(cycle_now)}")

controls = st.columns([2, 3, 1], vertical_alignment="bottom")
window = (
    controls[0].segmented_control(
        "Window",
        list(WINDOWS),
        default="6 months",
        key="patient_window",
        help="The last months of this patient's data (all of it when it spans less); All: everything.",
    )
    or "All"
)
lineages = controls[1].multiselect(
    "Differential",
    list(timeline.DIFFERENTIAL),
    default=["anc", "alc"],
    format_func=lambda code: ANALYTES[code].label,
    key="patient_lineages",
)
log = controls[2].toggle("Log scale", key="patient_log")
st.plotly_chart(
    data.timeline_figure(chosen, viewer, tuple(lineages), log, WINDOWS[window], timezone),
    key="patient_chart",
)
st.caption(
    "Shaded band: the reference range each result was reported with (it steps where the lab's range "
    "changed). G2-G4: CTCAE v5.0 WBC grade zones; grade 1 is below the lower limit down to 3.0. Open ring "
    "(fall) or hexagon (rise) round a WBC: a change from the previous WBC beyond the reference change value. "
    "Top track: treatments and other events, a lane per kind (a bar runs to an event's end). Purple spans: "
    "treatment cycles (C1, C2, ...). Hover a point for its unit, range, grade, lab, accession and any "
    "correction, an event for its label."
    + (TEMPERATURE_CAPTION if len(usable_temperatures(view.results)) else "")
    + (forecast.CHART_CAPTION if forecast.forecast_made(view.cycles.forecast) else "")
)
forecast.show(view.cycles.forecast, timezone)

# The same as the command line's `report`: laid out when clicked, audited as an export of the patient.
audited_pdf_download(
    "Print summary (PDF)",
    lambda printer: reports.patient_summary(
        data.store(),
        viewer=printer,
        patient_key=chosen,
        timezone=timezone,
        now=datetime.now(UTC),
        printed_by=viewer.username,
        site=data.config().site_name,
    ),
    file_name=f"summary-{patient['patient_id']}.pdf",
    viewer=viewer,
    what="patient summary (PDF)",
    patient_key=chosen,
)

sheet, event_tab, compare_tab, record_tab = st.tabs(
    ["Flowsheet", f"Events ({len(events)})", "Before / after an event", "Acknowledge, add, set a range"]
)
with sheet:
    values, states = data.flowsheet(chosen, viewer, timezone)
    if values.empty:
        st.info("No results.")
    else:
        colours = {
            "low": "background-color: rgba(213, 94, 0, 0.18)",
            "high": "background-color: rgba(0, 114, 178, 0.15)",
        }
        styled = values.style.apply(lambda _: states.map(lambda s: colours.get(s, "")), axis=None)
        st.dataframe(styled, width="stretch")
        st.caption(
            "↓ below the lower limit that applies; ↑ above the upper limit that applies; L, H, LL, HH, A, "
            "AA, <, >: the lab's own flag (LL, HH, AA: critical; <, >: off the instrument's scale); "
            "(prelim.) a preliminary result, final awaited. Newest first."
        )
        audited_csv_download(
            "Download the flowsheet (CSV)",
            values.reset_index(),
            file_name=f"flowsheet-{patient['patient_id']}.csv",
            viewer=viewer,
            what="flowsheet CSV",
            patient_key=chosen,
        )


def _local_time(times: pd.Series) -> pd.Series:
    """Times in the site's zone as text ('' when missing); midnight alone shows as a date."""
    local = times.dt.tz_convert(timezone)
    text = local.dt.strftime("%Y-%m-%d %H:%M").where(
        local.dt.strftime("%H:%M") != "00:00", local.dt.strftime("%Y-%m-%d")
    )
    return text.fillna("")


with event_tab:
    if events.empty:
        st.info(
            "No events recorded: add one under 'Acknowledge, add, set a range', or import an events file."
        )
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "Kind": events["kind"].map(_kind_words),
                    "Start": _local_time(events["start_at"]),
                    "End": _local_time(events["end_at"]),
                    "Label": events["label"],
                    "Details": events["details"],
                }
            ),
            hide_index=True,
            width="stretch",
        )
        st.caption(f"Times in {timezone}.")
with compare_tab:
    if events.empty:
        st.info("No events to compare around.")
    else:
        kinds = events["kind"].map(_kind_words)
        names = _local_time(events["start_at"]) + " · " + kinds + " · " + events["label"].fillna("")
        picked = st.selectbox(
            "Event",
            events.index.tolist(),
            format_func=names.__getitem__,
            key="patient_compare_event",
        )
        window_days = st.slider("Days before and after", 7, 180, 28, key="patient_compare_days")
        compared = around_event(view, event=picked, window_days=window_days)
        if compared.empty:
            st.info(f"No WBC, differential, haemoglobin or platelet result within {window_days} days of it.")
        else:
            st.dataframe(
                pd.DataFrame(
                    {
                        "Count": compared["analyte"].map(
                            lambda a: f"{ANALYTES[a].label} ({ANALYTES[a].unit})"
                        ),
                        **{
                            f"{heading} {side}": compared[f"{stat}_{side}"].round(2)
                            for side in ("before", "after")
                            for stat, heading in (
                                ("n", "Results"),
                                ("median", "Median"),
                                ("min", "Lowest"),
                                ("max", "Highest"),
                            )
                        },
                    }
                ),
                hide_index=True,
                width="stretch",
            )
            st.caption(
                f"Results within {window_days} days before the event's start, and from its start to "
                f"{window_days} days after; withdrawn results left out."
            )


def _record(action, done: str, clear: tuple[str, ...] = (), **fields) -> None:
    """Run a recording action (services.patient_actions) for this patient as the signed-in user; say what
    happened. Once done, the ``clear`` widgets go back to their defaults (a refused entry keeps them)."""
    try:
        action(data.store(), viewer=viewer, patient_key=chosen, now=datetime.now(UTC), **fields)
    except (ValueError, PermissionError) as error:
        st.error(plain(error))
        data.refresh()  # what was refused may rest on what the page showed: shown afresh
    else:
        for key in clear:
            st.session_state.pop(key, None)
        data.refresh()
        st.toast(done)
        st.rerun()


# What an Acknowledge button is drawn with: the patient's key and identifier, the flags and when a flag last
# appeared or worsened.
Shown = tuple[int, str, list[str], pd.Timestamp | None]


def _acknowledge(shown: Shown, comment: str) -> tuple[str, str]:
    """Acknowledge what the button clicked was drawn with; ("done" or "refused", the words to say)."""
    patient_key, patient_id, flags, changed_at = shown
    try:
        acknowledge(
            data.store(),
            viewer=viewer,
            patient_key=patient_key,
            now=datetime.now(UTC),
            comment=comment,
            seen=flags,
            seen_changed_at=changed_at,
        )
    except (ValueError, PermissionError) as error:
        return "refused", plain(error)
    if patient_key != chosen:  # the button of the page shown before another patient was chosen
        return "done", f"Acknowledged the flags of {plain(patient_id)}, recorded in the audit trail."
    return "done", "Acknowledged, recorded in the audit trail."


def _button_key(shown: Shown) -> str:
    """The Acknowledge button's key for what it is drawn with. A click names the button the browser showed:
    a button drawn for other flags, or for another patient, is another button."""
    patient_key, _, flags, changed_at = shown
    said = repr((patient_key, flags, None if changed_at is None else changed_at.isoformat()))
    return "acknowledge_" + hashlib.sha256(said.encode()).hexdigest()[:16]


EVENT_FIELDS = ("event_kind", "event_date", "event_time", "event_label", "event_details")


with record_tab:
    if not viewer.may("record"):
        st.info("Viewer accounts read only: a clinician acknowledges flags, adds events and sets ranges.")
        st.stop()
    left, middle, right = st.columns(3)
    with left.form("acknowledge_form", clear_on_submit=True):
        st.markdown("**Acknowledge the current flags**")
        said = st.session_state.pop("acknowledge_said", None)
        if said and said[0] == "refused":
            st.error(said[1])  # the flags above are the store's now
        elif said:
            st.toast(said[1])
        comment = st.text_area(
            "Comment", key="acknowledge_comment", placeholder="e.g. reviewed, repeat CBC in 1 week"
        )
        changed = patient["flags_changed_at"]
        shown: Shown = (
            chosen,
            str(patient["patient_id"]),
            list(patient["flags"] or []),
            None if pd.isna(changed) else pd.Timestamp(changed),
        )
        # Each button drawn is kept with what it was drawn with; the click acknowledges what the button
        # the person clicked showed (one drawn by an earlier run when this run, after a new result or
        # another patient chosen, draws another), and the store refuses it if the flags changed since.
        key = _button_key(shown)
        drawn = st.session_state.setdefault("acknowledge_drawn", {})
        clicked = [drawn[old] for old in drawn if old != key and st.session_state.get(old) is True]
        drawn.pop(key, None)
        drawn[key] = shown
        for old in list(drawn)[:-20]:
            drawn.pop(old)
        if st.form_submit_button("Acknowledge", key=key, disabled=not shown[2]):
            clicked = [shown]
        if clicked:
            # Either way the page is drawn again from the store, and the form says what happened.
            st.session_state["acknowledge_said"] = _acknowledge(clicked[-1], comment)
            data.refresh()
            st.rerun()
    # The date and time start as now in the site's zone, set once (not at every rerun, which would move
    # them under the person typing); a kind has no default: a person chooses it.
    site_now = datetime.now(ZoneInfo(timezone)).replace(second=0, microsecond=0)
    st.session_state.setdefault("event_date", site_now.date())
    st.session_state.setdefault("event_time", site_now.time())
    with middle.form("event_form"):
        st.markdown("**Add an event or a note**")
        kind = st.selectbox(
            "Kind",
            EVENT_KINDS,
            index=None,
            placeholder="Choose a kind",
            format_func=lambda code: EVENT_NAMES.get(code, code.capitalize()),
            key="event_kind",
        )
        when = st.date_input("Date", key="event_date")
        clock = st.time_input(
            f"Time ({timezone})",
            key="event_time",
            step=300,
            help=f"In the site's time zone, {timezone}; stored in UTC.",
        )
        label = st.text_input("Label", key="event_label", placeholder="e.g. Filgrastim 5 mcg/kg")
        details = st.text_input("Details", key="event_details")
        submitted = st.form_submit_button("Add")
        if submitted and kind is None:
            st.error(
                "Choose the event's kind ("
                + ", ".join(EVENT_NAMES.get(code, code.capitalize()) for code in EVENT_KINDS)
                + "): nothing was saved."
            )
        elif submitted:
            _record(
                add_event,
                "Event added.",
                clear=EVENT_FIELDS,
                kind=kind,
                start=site_instant(when, clock, timezone),
                end=None,
                label=label,
                details=details,
                timezone=timezone,
            )
    with right.form("range_form", clear_on_submit=True):
        st.markdown("**Patient-specific range** (e.g. Duffy-null ANC)")
        analyte = st.selectbox(
            "Count", ["anc", "wbc", "alc"], key="range_analyte", format_func=lambda a: ANALYTES[a].label
        )
        low = st.number_input("Lower limit (10^9/L)", min_value=0.0, step=0.01, key="range_low")
        high = st.number_input("Upper limit (10^9/L)", min_value=0.0, step=0.01, key="range_high")
        reason = st.text_input("Reason", key="range_reason", placeholder="Duffy-null phenotype confirmed")
        end = st.checkbox("End the current range instead", key="range_end")
        if st.form_submit_button("Save"):
            _record(
                set_patient_range,
                "Range saved; grades and flags recomputed.",
                analyte=analyte,
                low=None if end else low,
                high=None if end else (high or None),
                reason=reason,
                timezone=timezone,
            )
    if not view.ranges.empty:
        st.markdown("**Patient-specific ranges** (newest first; ended ones kept for the record)")
        st.dataframe(view.ranges, hide_index=True, width="stretch")
    if not view.acknowledgements.empty:
        st.markdown("**Acknowledgements**")
        st.dataframe(view.acknowledgements, hide_index=True, width="stretch")
