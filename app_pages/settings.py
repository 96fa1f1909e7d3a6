"""Settings: the site's rules (grading, flags, cycles, febrile neutropenia) in words, each with its unit and
the source of its default, and the labs' reference ranges; raw keys and JSON values in an advanced editor.

Saving recomputes every patient's status in the same transaction, so lists follow the new rules at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from monitor.analysis.rules import setting_rows
from monitor.analysis.setting_descriptions import GROUPS, describe
from monitor.analytes import ANALYTES
from services.rules import change_settings, regimen_setting_warning, set_lab_range
from ui import data
from ui.identity import current_viewer
from ui.setting_inputs import default_text, same, setting_input, source_caption
from ui.text import plain

viewer = current_viewer()
if not viewer.may("administer"):
    st.error("This page is for administrators.")
    st.stop()

st.title("Settings")
st.caption(
    "Every threshold the analysis uses, in words, with its unit, its default and the source of the default "
    "(docs/clinical-basis.md gives each rule at length). Only what differs from the defaults is stored; "
    "saving recomputes every patient's grades and flags."
)
rules = data.rules()
rows = pd.DataFrame(setting_rows(rules))


def _save(asked: dict[str, Any], *, in_words: bool = False) -> None:
    """Save the settings changed here over what is stored now (not over this page's cached copy), a value
    equal to its default restoring the default, then recompute every patient's status. A refusal from the
    form in words names the settings by their labels, not by their keys."""
    try:
        change_settings(
            data.store(), asked, viewer=viewer, now=datetime.now(UTC), timezone=data.config().timezone
        )
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        message = str(error)
        if in_words:
            for key in sorted(asked, key=len, reverse=True):
                label = describe(key).label
                message = message.replace(key, f'"{label}"').replace(key.rsplit(".", 1)[-1], f'"{label}"')
        st.error(f"Not saved: {plain(message)}")
    else:
        data.refresh()
        st.toast(f"Saved {len(asked)} setting(s); status recomputed.")
        st.rerun()


rules_tab, regimen_tab, lab_tab = st.tabs(["Rules", "Readiness per regimen", "Lab reference ranges"])
with rules_tab:
    worded = rows[~rows["key"].str.startswith("cycles.regimens.")]
    with st.form("settings_words"):
        asked: dict[str, Any] = {}
        for group in GROUPS:
            st.subheader(group)
            for row in worded[worded["group"] == group].to_dict("records"):
                description = describe(row["key"])
                field, words = st.columns([2, 3])
                with field:
                    asked[row["key"]] = setting_input(row["key"], row["value"], row["default"], description)
                words.caption(
                    source_caption(
                        row["setting"],
                        row["citation"],
                        row["section"],
                        changed=bool(row["changed"]),
                        default=default_text(row["default"], description),
                    )
                )
        submitted = st.form_submit_button("Save changes and recompute", type="primary")
    if submitted:
        stored = dict(zip(worded["key"], worded["value"], strict=True))
        defaults = dict(zip(worded["key"], worded["default"], strict=True))
        changed = {
            key: None if same(value, defaults[key]) else value
            for key, value in asked.items()
            if not same(value, stored[key])
        }
        if changed:
            _save(changed, in_words=True)
        else:
            st.info("Nothing changed.")

    with st.expander("Advanced: settings by key, values as JSON"):
        st.caption(
            "The same settings by the keys the command line uses (python -m monitor settings), values as "
            'JSON: a number, true/false, "5.0", [7, 14].'
        )
        shown = rows.assign(
            value=rows["value"].map(json.dumps),
            default=rows["default"].map(json.dumps),
            changed=rows["changed"],
        )
        edited = st.data_editor(
            shown[["key", "value", "default", "changed", "source"]],
            hide_index=True,
            width="stretch",
            disabled=["key", "default", "changed", "source"],
            key="settings_rules",
            column_config={
                "value": st.column_config.TextColumn(
                    "value", help='JSON: a number, true/false, "5.0", [7, 14]'
                ),
            },
        )
        changes = edited[edited["value"] != shown["value"]]
        if st.button("Save the edited values and recompute", disabled=changes.empty, key="settings_save"):
            try:
                by_key = {}
                for key, text in zip(changes["key"].astype(str), changes["value"].astype(str), strict=True):
                    value = json.loads(text)
                    same_as_default = value == rows.loc[rows["key"] == key, "default"].iloc[0]
                    by_key[key] = None if same_as_default else value
            except ValueError as error:  # json.JSONDecodeError is a ValueError
                st.error(f"Not saved: {plain(error)}")
            else:
                _save(by_key)

with regimen_tab:
    regimens = rules.cycles.regimens
    if regimens:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "regimen": name,
                        "rule": rule.describe(),
                        "FN risk": rule.fn_risk or "",
                        "risk source": rule.fn_risk_source,
                        "nadir window (days)": "-".join(map(str, rule.nadir_window_days or ())),
                    }
                    for name, rule in sorted(regimens.items())
                ]
            ),
            hide_index=True,
        )
    st.caption(
        f"Default for every other regimen: {rules.cycles.readiness.describe()} (paclitaxel and docetaxel "
        "prescribing information; docs/clinical-basis.md, Readiness thresholds). A regimen's rule applies to "
        "the chemotherapy events whose details contain its name as whole words, ignoring case; the longest "
        "name wins (docs/clinical-basis.md, Per-regimen settings)."
    )
    if "regimen_warning" in st.session_state:
        st.warning(st.session_state.pop("regimen_warning"))
    with st.form("regimen_form", clear_on_submit=True):
        name = st.text_input("Regimen (as in the chemotherapy events' details)", key="regimen_name")
        columns = st.columns(3)
        anc_min = columns[0].number_input("ANC at least (10^9/L)", value=1.5, min_value=0.1, step=0.1)
        plt_min = columns[1].number_input("Platelets at least (10^9/L)", value=100.0, min_value=1.0, step=5.0)
        inclusive = columns[2].checkbox("At the threshold counts as ready (>=)", value=True)
        # The regimen's febrile-neutropenia risk (ASCO 2015, EORTC, NCCN categories) drives the G-CSF
        # support; its nadir window the nadir and CBC-due checks (docs/clinical-basis.md, G-CSF prophylaxis).
        risk_columns = st.columns(2)
        fn_risk = risk_columns[0].selectbox(
            "Febrile-neutropenia risk",
            ["not set", "high", "intermediate", "low"],
            help="high: 20 % or more; intermediate: 10-20 %; low: under 10 % (ASCO 2015, EORTC, NCCN).",
            key="regimen_fn_risk",
        )
        fn_risk_source = risk_columns[1].text_input(
            "Source of the risk (e.g. NCCN table, trial)", key="regimen_fn_risk_source"
        )
        window = st.columns(3)
        own_window = window[0].checkbox("Own nadir window", key="regimen_own_window")
        first_day = window[1].number_input("Nadir from day (after the dose)", value=7, min_value=0, step=1)
        last_day = window[2].number_input("Nadir to day", value=14, min_value=0, step=1)
        remove = st.checkbox("Remove this regimen's rule instead")
        if st.form_submit_button("Save regimen rule"):
            key = f"cycles.regimens.{name.strip().lower()}"
            rule = None if remove else {"anc_min": anc_min, "plt_min": plt_min, "inclusive": inclusive}
            if rule is not None and fn_risk != "not set":
                rule |= {"fn_risk": fn_risk, "fn_risk_source": fn_risk_source.strip()}
            if rule is not None and own_window:
                rule["nadir_window_days"] = [int(first_day), int(last_day)]
            try:
                change_settings(
                    data.store(),
                    {key: rule},
                    viewer=viewer,
                    now=datetime.now(UTC),
                    timezone=data.config().timezone,
                )
            except ValueError as error:
                st.error(f"Not saved: {plain(error)}")
            else:
                warning = None if remove else regimen_setting_warning(data.store(), key)
                if warning:
                    st.session_state["regimen_warning"] = f"Saved; {warning}."
                data.refresh()
                st.rerun()

with lab_tab:
    ranges = data.lab_ranges()
    if ranges.empty:
        st.info("No lab range configured: results without their own range use the population defaults.")
    else:
        st.dataframe(ranges, hide_index=True, width="stretch")
    st.caption(
        "Used for results that arrive without a range. A range reported with the result always wins, and a "
        "patient-specific range wins over both. Without an age band a range is for adults (11 years or "
        "more): give a band starting at 0 months to apply it at every age. Counts in 10^9/L, Hb in g/dL."
    )
    with st.form("lab_range_form", clear_on_submit=True):
        first = st.columns(4)
        lab = first[0].selectbox("Lab", data.lab_codes(), key="lab_range_lab")
        analyte = first[1].selectbox(
            "Analyte",
            ["wbc", "anc", "alc", "amc", "aec", "abc", "hgb", "plt"],
            format_func=lambda a: ANALYTES[a].label,
        )
        low = first[2].number_input("Lower limit", min_value=0.0, step=0.1)
        high = first[3].number_input("Upper limit (0: none)", min_value=0.0, step=0.1)
        second = st.columns(4)
        sex = second[0].selectbox("Sex", ["either", "F", "M"])
        min_months = second[1].number_input("From age (months; -1: adult range)", value=-1.0, min_value=-1.0)
        max_months = second[2].number_input("Below age (months; 0: no end)", value=0.0, min_value=0.0)
        source = second[3].text_input("Source", value="lab handbook")
        remove = st.checkbox("Remove the range for this lab, analyte, sex and band instead")
        if st.form_submit_button("Save lab range"):
            try:
                set_lab_range(
                    data.store(),
                    lab=lab,
                    analyte=analyte,
                    low=None if remove else low,
                    high=None if remove or high == 0 else high,
                    sex=None if sex == "either" else sex,
                    min_months=None if min_months < 0 else min_months,
                    max_months=None if max_months == 0 else max_months,
                    source=source,
                    viewer=viewer,
                    now=datetime.now(UTC),
                    timezone=data.config().timezone,
                )
            except ValueError as error:
                st.error(f"Not saved: {plain(error)}")
            else:
                data.refresh()
                st.rerun()
