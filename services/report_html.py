"""The printed patient summary as HTML and CSS (laid out as a PDF by ``services.reports``), and the words of a
team's handover (drawn by ``services.report_handover``).

Every value is escaped (a name holding "<", "&", "*" or "#" prints as written), a name in a right-to-left
script keeps its own direction, a missing value prints as a dash, never "nan" or "None", and times are
in the site's zone with the zone named. The synthetic banner prints on every page of a demo patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis.flags import flag_label
from monitor.analysis.forecast.words import decision_support_caption, forecast_made, forecast_sentence
from monitor.analysis.patterns import PATTERNS
from monitor.analysis.setting_descriptions import PRIMARY_SOURCES
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.analysis.timeline import DEFAULT_WINDOW_DAYS, view_window
from monitor.analysis.triage import TIERS
from monitor.analytes import ANALYTES
from monitor.formats.units import printed
from services.patients import PatientView
from services.report_chart import chart_svg
from services.report_handover import HandoverRow
from services.worklist import count_and_grade

__all__ = ["DISCLAIMER", "FLOWSHEET_PANELS", "PRODUCT", "HandoverText", "handover_text", "summary_html"]

PRODUCT = "Leukopenia monitor"
DISCLAIMER = (
    "Decision support, not a diagnosis: each flag states the rule and the results it rests on; "
    "check them against the full record before acting."
)
SYNTHETIC = "SYNTHETIC DEMO PATIENT: simulated data, not a real person"
# The rules' sources, in every page's footer (in full at the end of a summary).
SOURCES_LINE = "grades: NCI CTCAE; every rule and its source: the clinical basis (docs/clinical-basis.md)"
# The latest counts printed, in this order, and the flowsheet's rows.
LATEST = ("wbc", "anc", "alc", "hgb", "plt")
FLOWSHEET = ("wbc", "anc", "alc", "amc", "hgb", "plt")
# The last panels printed in the flowsheet, and events at most.
FLOWSHEET_PANELS = 8
EVENTS_PRINTED = 12
# Medications and runs below the limit listed from before the printed period, at most.
EVENTS_BEFORE = 8
RUNS_BEFORE = 6
DASH = "–"
# What a result's limit came from, in words (``monitor.analysis.ranges_default.RANGE_SOURCES``).
SOURCE_WORDS = {
    "patient override": "this patient's range",
    "reported": "the lab's range",
    "lab": "the lab's configured range",
    "default adult": "adult default",
    "default age band": "default for the age",
    "default any age": "default for any age",
}
CYCLE_COLUMNS = (
    "cycle",
    "start",
    "nadir ANC",
    "on",
    "grade",
    "nadir WBC",
    "days G3+",
    "days ANC<0.5",
    "recovered",
    "FN",
    "G-CSF",
    "delay days",
    "ready at next",
)


def summary_html(
    view: PatientView,
    *,
    now: datetime,
    printed_by: str,
    paper: str,
    since: pd.Timestamp | None,
    site: str,
    ctcae_version: str = "5.0",
) -> str:
    """The summary of ``view`` as one HTML document for ``paper`` ("A4" or "letter"); grade zones and words
    from the site's CTCAE version."""
    zone = view.timezone
    status = view.status
    usable = view.results[~view.results["status"].isin(EXCLUDED_STATUSES).to_numpy(dtype=bool)]
    usable = usable[usable["value"].notna().to_numpy(dtype=bool)]
    start, end = _window(usable, view.events, since=since, now=now)
    patient_id = _text(status.get("patient_id"))
    printed_at = f"{pd.Timestamp(now).tz_convert(zone):%Y-%m-%d %H:%M} ({zone})"
    synthetic = bool(status.get("is_synthetic"))
    body = [
        f"<h1>Patient summary <span class='product'>{PRODUCT}</span></h1>",
        _identity(status, site=site, now=now, printed_at=printed_at, printed_by=printed_by),
        "<h2>Latest counts</h2>",
        _latest(usable, view.history, zone),
        _temperatures(usable, now, zone),
        "<h2>Flags</h2>",
        _flags(status, view.acknowledgements, zone),
        _chart_section(usable, view.events, start, end, zone, ctcae_version)
        or f"<p>No WBC or ANC from {_local(start, zone, '%Y-%m-%d')} to {_local(end, zone, '%Y-%m-%d')}.</p>",
        _cycles(view),
        _flowsheet(usable, view.history, start, end, zone),
        _events(view.events, start, end, zone),
        _before(view, usable, start, zone),
        _ranges(view.ranges, zone),
        _sources(ctcae_version),
    ]
    footer = f"{PRODUCT} · {patient_id} · printed {printed_at} · {SOURCES_LINE}"
    return _document("".join(body), paper=paper, footer=footer, synthetic=synthetic)


@dataclass(frozen=True, slots=True)
class HandoverText:
    """What a handover prints, as text (drawn by ``services.report_handover``): one row per patient."""

    rows: list[HandoverRow]
    title: str
    subtitle: str
    legend: str
    footer: str
    banner: str | None


def handover_text(
    listed: pd.DataFrame,
    *,
    others: pd.DataFrame | None = None,
    team: str,
    timezone: str,
    now: datetime,
    printed_by: str,
    site: str,
    ctcae_version: str = "5.0",
) -> HandoverText:
    """A team's handover list (``listed``: its worklist, in priority order) as the rows and words printed:
    the place and tier, the patient, the latest WBC/ANC/ALC with their grades, the last CBC with the cycle
    day and any CBC due, the flags, and the finding that sets the place."""
    printed_at = f"{pd.Timestamp(now).tz_convert(timezone):%Y-%m-%d %H:%M} ({timezone})"
    synthetic = bool(listed["is_synthetic"].astype(bool).any()) if not listed.empty else False
    counts = {analyte: count_and_grade(listed, analyte) for analyte in ("wbc", "anc", "alc")}
    day = listed["cycle_day"].astype("Int64") + 1
    cycle = "C" + listed["cycle"].astype("Int64").astype("string") + "D" + day.astype("string")
    last = listed["last_collected_at"].map(lambda at: _local(at, timezone, "%Y-%m-%d"))
    rows: list[HandoverRow] = []
    # The latest haemoglobin and platelets of each patient: time and status (``others``).
    latest_other = (
        {
            (key, code): (at, status)
            for key, code, at, status in zip(
                others["patient_key"],
                others["analyte"],
                others["collected_at"],
                others["status"],
                strict=True,
            )
        }
        if others is not None and not others.empty
        else {}
    )
    for position, row in enumerate(listed.to_dict("records")):
        days = row["days_since_cbc"]
        since = "" if _missing(days) else f" ({int(days)} d)"
        flags = ", ".join(flag_label(str(flag)) for flag in (row.get("flags") or [])) or DASH
        if row.get("flags"):
            acknowledged = row.get("acknowledged")
            flags += (
                "\n(acknowledged)"
                if not _missing(acknowledged) and bool(acknowledged)
                else "\n(not acknowledged)"
            )
        due = row.get("cbc_due_reason")
        who = f"{_age_short(row.get('birth_date'), row['age'], now)} {_text(row.get('sex'))}".strip()
        # The last CBC: the newest of the white-cell counts (a platelet count sent on its own later is not).
        times = [row.get(f"latest_{a}_at") for a in ("wbc", "anc", "alc")]
        known: list[Any] = [at for at in times if not _missing(at)]
        last_white = max(known) if known else None
        lines = []
        for a in ("wbc", "anc", "alc"):
            said = f"{a.upper()} {_text(counts[a].iloc[position])}"
            if row.get(f"latest_{a}_status") == "preliminary":
                said += " prelim."
            taken = row.get(f"latest_{a}_at")
            # A count from an earlier panel than the last CBC is dated: it was not repeated since.
            if not _missing(taken) and last_white is not None and taken < last_white:
                said += f" ({_local(taken, timezone, '%Y-%m-%d')})"
            lines.append(said)
        for code, word in (("hgb", "Hb"), ("plt", "PLT")):
            value, grade = row[f"latest_{code}"], row[f"latest_{code}_grade"]
            if not _missing(value):
                number = printed(pd.Series([value]), pd.Series([code])).iloc[0]
                said = f"{word} {number}" + ("" if _missing(grade) else f" G{int(grade)}")
                taken, state = latest_other.get((row["patient_key"], code), (None, None))
                if state == "preliminary":
                    said += " prelim."
                if not _missing(taken) and last_white is not None and taken < last_white:
                    said += f" ({_local(taken, timezone, '%Y-%m-%d')})"
                lines.append(said)
        lineages = "\n".join(lines)
        when = f"{last.iloc[position]}{since}"
        if not _missing(cycle.iloc[position]):
            when += f"\ncycle {cycle.iloc[position]}"
        if isinstance(due, str) and due:
            when += f"\ndue: {due}"
        rows.append(
            (
                f"{position + 1}\nT{_text(row.get('tier'))}",
                f"{_one_line(row.get('name'))}\n{_one_line(row.get('patient_id'))}, {who}",
                lineages,
                when,
                flags,
                _one_line(row.get("priority_reason")),
            )
        )
    count = len(rows)
    return HandoverText(
        rows=rows,
        title=f"Handover: {team}",
        subtitle=(
            f"{PRODUCT}. {count} patient{'s' if count != 1 else ''}, most urgent first (the worklist's "
            f"order). Site: {site or DASH}. Printed {printed_at} by {printed_by}."
        ),
        legend=(
            "Counts in x10^9/L and haemoglobin in g/dL (converted at import where the lab sent other units), "
            f"with the lab's flag and the CTCAE v{ctcae_version} grade (G1-G4; ↑: flagged high, as "
            "leukocytosis, neutrophilia or lymphocytosis; a high count expected while G-CSF acts is not); "
            "a date: the count is from an earlier panel than the last CBC; prelim.: preliminary, final "
            "awaited. T: the worklist's tier, 1 the most urgent: "
            + "; ".join(f"{tier}: {words}" for tier, words in TIERS.items())
            + "."
        ),
        footer=f"{PRODUCT} · handover {team} · printed {printed_at} · {SOURCES_LINE}",
        banner=SYNTHETIC if synthetic else None,
    )


def _age(born: Any, years: Any, now: datetime) -> tuple[int, str] | None:
    """An age as a clinician says it: whole years from two; under two, completed months, or days under
    one month; None when unknown."""
    if _missing(years):
        return None
    if int(years) >= 2 or _missing(born):
        return int(years), "year"
    day, birth = pd.Timestamp(now).tz_convert(None).normalize(), pd.Timestamp(str(born)[:10])
    months = (day.year - birth.year) * 12 + day.month - birth.month - (day.day < birth.day)
    return (months, "month") if months >= 1 else ((day - birth).days, "day")


def _age_short(born: Any, years: Any, now: datetime) -> str:
    """An age for a crowded cell: "58 y", "17 mo", "15 d"; "" when unknown."""
    found = _age(born, years, now)
    return "" if found is None else f"{found[0]} {_SHORT_UNITS[found[1]]}"


_SHORT_UNITS = {"year": "y", "month": "mo", "day": "d"}


def _one_line(value: Any) -> str:
    """A value as one line of text (a name or identifier from a feed may hold line breaks)."""
    return " ".join(_text(value).split()) or DASH


def _document(body: str, *, paper: str, footer: str, synthetic: bool) -> str:
    banner = (
        f'@top-center {{ content: "{SYNTHETIC}"; color: white; background: #a00; font-weight: bold; '
        'font-family: "DejaVu Sans", sans-serif; font-size: 9pt; padding: 2pt 8pt; }'
        if synthetic
        else ""
    )
    css = f"""
    @page {{
      size: {paper};
      margin: 14mm 13mm 19mm 13mm;
      {banner}
      @bottom-left {{ content: "{_css_string(footer)}\\A {_css_string(DISCLAIMER)}"; white-space: pre-wrap;
                      font-family: "DejaVu Sans", sans-serif; font-size: 6.5pt; color: #444; width: 85%; }}
      @bottom-right {{ content: "Page " counter(page) " of " counter(pages); width: 15%;
                       font-family: "DejaVu Sans", sans-serif; font-size: 7pt; color: #444; }}
    }}
    body {{ font-family: "DejaVu Sans", sans-serif; font-size: 8pt; color: #111; }}
    table.sheet {{ font-size: 7pt; }}
    h1 {{ font-size: 14pt; margin: 0 0 4pt 0; }}
    h1 .product {{ font-size: 9pt; font-weight: normal; color: #555; margin-left: 6pt; }}
    h2 {{ font-size: 10pt; margin: 7pt 0 2pt 0; border-bottom: 0.6pt solid #999;
          break-after: avoid; }}
    table {{ border-collapse: collapse; width: 100%; margin: 2pt 0; }}
    th, td {{ border-bottom: 0.4pt solid #ccc; padding: 1.5pt 3pt; text-align: left; vertical-align: top; }}
    th {{ background: #eef2f5; font-weight: bold; }}
    td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
    td.u {{ white-space: nowrap; }}
    tr {{ break-inside: avoid; }}
    .banner {{ background: #a00; color: white; font-weight: bold; padding: 3pt 6pt; margin-bottom: 6pt; }}
    .identity td {{ border: none; padding: 0.5pt 6pt 0.5pt 0; }}
    .identity th {{ background: none; border: none; padding: 0.5pt 4pt 0.5pt 0; color: #555;
                    font-weight: normal; width: 22%; }}
    .flag {{ margin: 2pt 0; break-inside: avoid; }}
    .flag b {{ color: #8a2a00; }}
    .low {{ color: #b03000; font-weight: bold; }}
    .note {{ color: #444; font-size: 7.5pt; }}
    .chart {{ break-inside: avoid; }}
    .sources li {{ font-size: 7pt; color: #333; }}
    """
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(footer)}</title><style>{css}</style></head><body>{body}</body></html>"
    )


def _css_string(text: str) -> str:
    """Text inside a CSS string in a ``<style>`` element: every character but an ASCII letter, digit or
    space as a six-digit CSS escape, so that nothing in it (a quote, a backslash, a line break, "</style>"
    in an identifier) can end the string or the element. (CSS takes the space after an escape as its end:
    each escape brings its own.)"""
    return "".join(
        char if (char.isascii() and char.isalnum()) or char == " " else f"\\{ord(char):06X} " for char in text
    )


def _missing(value: Any) -> bool:
    """None, NaN, NaT or NA."""
    return (
        value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))
    )


def _text(value: Any) -> str:
    """A value as printed text: missing values (None, NaN, NaT, NA) as a dash."""
    return DASH if _missing(value) else str(value)


def _cell(value: Any) -> str:
    """A value as escaped HTML in its own direction (a right-to-left name stays readable)."""
    return f'<span dir="auto">{escape(_text(value))}</span>'


def _local(value: Any, zone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if _missing(value):
        return DASH
    return f"{pd.Timestamp(value).tz_convert(zone):{pattern}}"


def _window(
    results: pd.DataFrame, events: pd.DataFrame, *, since: pd.Timestamp | None, now: datetime
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The time the chart, the flowsheet and the events cover: from ``since`` to now, else from the start of
    the timeline's window (the last ``DEFAULT_WINDOW_DAYS`` days of results) to now."""
    end = pd.Timestamp(now)
    if since is not None:
        start = since if since.tzinfo is not None else since.tz_localize("UTC")
        return start.tz_convert("UTC"), end
    found = view_window(results["collected_at"], days=DEFAULT_WINDOW_DAYS)
    if found is None:
        return end - pd.Timedelta(days=DEFAULT_WINDOW_DAYS), end
    # To now, not to the last count: a dose or a note after it prints, and the chart shows the gap.
    return found[0], max(end, pd.Timestamp(results["collected_at"].max()))


def _identity(status: pd.Series, *, site: str, now: datetime, printed_at: str, printed_by: str) -> str:
    authority = status.get("assigning_authority")
    identifier = _cell(status.get("patient_id")) + (
        f" ({_cell(authority)})" if isinstance(authority, str) and authority else ""
    )
    born = _cell(status.get("birth_date")) + _age_words(status.get("birth_date"), status.get("age"), now)
    rows = [
        ("Name", _cell(status.get("name"))),
        ("Patient ID", identifier),
        ("Born", born),
        ("Sex", _cell(status.get("sex"))),
        ("Teams", _cell(status.get("teams") or DASH)),
        ("Site", _cell(site or DASH)),
        ("Printed", f"{escape(printed_at)} by {_cell(printed_by)}"),
        (
            "Last CBC",
            _days_ago(status.get("days_since_cbc")),
        ),
    ]
    cells = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table class="identity">{cells}</table>'


def _days_ago(days: Any) -> str:
    if _missing(days):
        return DASH
    return "today" if int(days) == 0 else f"{int(days)} day{'s' if int(days) != 1 else ''} ago"


def _age_words(born: Any, years: Any, now: datetime) -> str:
    """ ", 58 years", ", 7 months", ", 20 days"; "" when unknown."""
    found = _age(born, years, now)
    return "" if found is None else f", {found[0]} {found[1]}{'s' if found[0] != 1 else ''}"


def _values(rows: pd.DataFrame) -> pd.Series:
    """Values as the lab printed them, with a censored value's comparator ("<0.1")."""
    comparator = rows["comparator"].astype("string").fillna("") if "comparator" in rows else ""
    return comparator + printed(rows["value"], rows["analyte"]).fillna(DASH)


def _latest(results: pd.DataFrame, history: pd.DataFrame, zone: str) -> str:
    """The latest of each count with its grade and limits, and what a reader must know of it: preliminary,
    corrected by the lab (from what), not repeated in the last CBC, a child's ANC below the interval for age
    but not neutropenia."""
    mine = results[results["analyte"].isin(LATEST).to_numpy(dtype=bool)]
    if mine.empty:
        return "<p>No usable count on record.</p>"
    # The last CBC: the newest panel with a white-cell count (a platelet count sent on its own an hour
    # later does not make the differential "old").
    white = mine[mine["analyte"].isin(["wbc", "anc", "alc"]).to_numpy(dtype=bool)]
    newest = (white if not white.empty else mine)["collected_at"].max()
    earlier = _earlier_values(history)
    last = mine.sort_values(["collected_at", "panel_id"], kind="stable").groupby("analyte").tail(1)
    order = {code: number for number, code in enumerate(LATEST)}
    last = last.sort_values("analyte", key=lambda codes: codes.map(order)).reset_index(drop=True)
    values = _values(last)
    lows, highs = printed(last["lln"], last["analyte"]), printed(last["uln"], last["analyte"])
    rows = []
    for position, row in enumerate(last.to_dict("records")):
        low, high, shown = lows.iloc[position], highs.iloc[position], str(values.iloc[position])
        limits = (
            DASH
            if _missing(low) and _missing(high)
            else f"{'' if _missing(low) else low}{DASH}{'' if _missing(high) else high}"
        )
        source = SOURCE_WORDS.get(str(row.get("range_source")), "")
        grade = row["grade"]
        below = not _missing(row.get("below_limit")) and bool(row.get("below_limit"))
        above = not _missing(row.get("above_range")) and bool(row.get("above_range"))
        value = (
            f'<span class="low">{escape(shown)} L</span>'
            if below
            else f"{escape(shown)} H"
            if above
            else escape(shown)
        )
        notes = []
        if row.get("status") == "preliminary":
            notes.append("preliminary: final awaited")
        before = earlier.get((row.get("panel_id"), row["analyte"]))
        if before is not None and before[2]:
            notes.append(f"corrected by the lab from {before[0]} ({_local(before[1], zone)})")
        elif before is not None and before[0] != shown:
            notes.append(f"final differs from the preliminary {before[0]}")
        if row["collected_at"] < newest:
            notes.append("not in the last CBC")
        flag_limit: Any = row.get("flag_limit")
        lln: Any = row.get("lln")
        value_now: Any = row.get("value")
        if (
            row["analyte"] == "anc"
            and not _missing(flag_limit)
            and not _missing(lln)
            and float(flag_limit) < float(lln)
            and not _missing(value_now)
            and float(flag_limit) <= float(value_now) < float(lln)
        ):
            notes.append(f"below the interval for age, not neutropenia (cut-off {float(flag_limit):g})")
        rows.append(
            f"<tr><td>{escape(_label(row['analyte']))}</td><td class='n'>{value}</td>"
            f"<td class='u'>{escape(str(row['unit']))}</td>"
            f"<td class='u'>{_local(row['collected_at'], zone)}</td>"
            f"<td>{escape(limits)}{' (' + escape(source) + ')' if source else ''}</td>"
            f"<td class='n'>{DASH if _missing(grade) else int(grade)}</td>"
            f"<td>{escape('; '.join(notes))}</td></tr>"
        )
    head = (
        "<tr><th>Count</th><th>Value</th><th>Unit</th><th>Collected</th><th>Limits that apply</th>"
        "<th>Grade</th><th>Note</th></tr>"
    )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _earlier_values(history: pd.DataFrame) -> dict[tuple[Any, Any], tuple[str, Any, bool]]:
    """For each result the lab sent again (panel, analyte): the value it replaced, as printed, when it was
    replaced, and whether that was a correction (False: the final of a preliminary result, with the same
    value or not)."""
    if history.empty or "is_current" not in history:
        return {}
    old = history[~history["is_current"].astype(bool).to_numpy()]
    if old.empty:
        return {}
    old = old.sort_values(["version"]).groupby(["panel_id", "analyte"]).tail(1)
    shown = _values(old)
    return {
        (panel, analyte): (str(text), at, status != "preliminary")
        for panel, analyte, text, at, status in zip(
            old["panel_id"], old["analyte"], shown, old["superseded_at"], old["status"], strict=True
        )
    }


def _temperatures(results: pd.DataFrame, now: datetime, zone: str) -> str:
    """The temperatures of the 72 hours before the print, newest first (febrile neutropenia is judged on
    them by the product's rule; a site's own rule, e.g. NICE's, can be applied by the reader)."""
    since = pd.Timestamp(now) - pd.Timedelta(hours=72)
    temps = results[
        results["analyte"].eq("temp").to_numpy(dtype=bool)
        & (results["collected_at"] >= since).to_numpy(dtype=bool)
        & (results["collected_at"] <= pd.Timestamp(now)).to_numpy(dtype=bool)
    ].sort_values("collected_at", ascending=False)
    if temps.empty:
        return '<p class="note"><b>Temperatures, last 72 hours:</b> none recorded.</p>'
    shown = temps["value"].map("{:.1f}".format)  # as a thermometer reads: 38.6, never 38.61
    listed = "; ".join(
        f"{text} °C {_local(at, zone)}"
        for text, at in zip(shown.head(12), temps["collected_at"].head(12), strict=True)
    )
    more = f" (and {len(temps) - 12} more)" if len(temps) > 12 else ""
    highest = temps.iloc[int(np.argmax(temps["value"].to_numpy(dtype=float)))]
    return (
        f'<p class="note"><b>Temperatures, last 72 hours</b> (highest {float(highest["value"]):.1f} °C at '
        f"{_local(highest['collected_at'], zone)}): {escape(listed)}{more}.</p>"
    )


def _flags(status: pd.Series, acknowledgements: pd.DataFrame, zone: str) -> str:
    flags = list(status.get("flags") or [])
    sentences = list(status.get("explanations") or [])
    out = []
    for flag, sentence in zip(flags, sentences + [""] * (len(flags) - len(sentences)), strict=False):
        label = flag_label(str(flag))
        # The cycle support's sentences start with their own label: printed once.
        said = str(sentence).removeprefix(f"{label}: ") if isinstance(sentence, str) else sentence
        out.append(f'<p class="flag"><b>{escape(label)}</b>: {_cell(said)}</p>')
    if not out:
        out.append("<p>No flag raised.</p>")
    for key in ("pattern_detail", "lab_critical_detail"):
        said = status.get(key)
        if isinstance(said, str) and said:
            name = "Pattern" if key == "pattern_detail" else "Lab's critical flag"
            if key == "pattern_detail" and status.get("pattern") == "none":
                # Nothing low: said first, so that the lineages not measured are not read as a finding.
                said = f"{PATTERNS['none']}; {said}"
            out.append(f'<p class="flag"><b>{name}</b>: {_cell(said)}</p>')
    if flags:
        acknowledged = status.get("acknowledged")
        if not _missing(acknowledged) and bool(acknowledged) and not acknowledgements.empty:
            last = acknowledgements.iloc[0]
            comment = last.get("comment")
            said = f": {_cell(comment)}" if isinstance(comment, str) and comment else ""
            out.append(
                f'<p class="note">Acknowledged by {_cell(last.get("username"))} on '
                f"{_local(last.get('at'), zone)}{said}</p>"
            )
        else:
            changed = _local(status.get("flags_changed_at"), zone)
            out.append(f'<p class="note">Not acknowledged since the flags last changed ({changed}).</p>')
    return "".join(out)


def _chart_section(
    results: pd.DataFrame,
    events: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    zone: str,
    ctcae_version: str,
) -> str:
    svg = chart_svg(results, events, start=start, end=end, timezone=zone, ctcae_version=ctcae_version)
    if not svg:
        return ""
    return (
        f'<div class="chart"><h2>WBC and ANC, {_local(start, zone, "%Y-%m-%d")} to '
        f'{_local(end, zone, "%Y-%m-%d")}</h2>{svg}<p class="note">Shaded: the reference interval that '
        f"applied to each result; tints: CTCAE v{ctcae_version} grades; red points: below the limit; "
        "hollow points: preliminary; a triangle at the top edge: a count above the scale, with its value; "
        "dashed lines: chemotherapy doses and G-CSF.</p></div>"
    )


def _cycles(view: PatientView) -> str:
    table = view.cycles.table
    # The forecast of the cycle now only: a fit of a cycle long past reads as news about it.
    day: Any = view.status.get("cycle_day")
    length: Any = view.status.get("next_dose_day")
    within = view.cycles.now and not _missing(day) and (_missing(length) or int(day) <= int(length))
    forecast = view.cycles.forecast if within else None
    if table.empty and forecast is None:
        return ""
    out = ["<h2>Chemotherapy cycles</h2>"]
    if not table.empty:
        columns = [column for column in CYCLE_COLUMNS if column in table]
        head = "".join(f"<th>{escape(column)}</th>" for column in columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_cell(_blank_as_dash(row[column]))}</td>" for column in columns) + "</tr>"
            for _, row in table.iterrows()
        )
        # (a header in <thead> prints again on the next page when the table runs over)
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        for column in ("delay", "support"):
            for said in table.get(column, pd.Series(dtype=object)):
                for sentence in str(said).split(" | ") if isinstance(said, str) and said else ():
                    out.append(f'<p class="note">{_cell(sentence)}</p>')
    for sentence in view.cycles.trend:
        out.append(f"<p>{_cell(sentence)}</p>")
    if view.cycles.now:
        out.append(f"<p><b>Now</b>: {_cell(view.cycles.now)}</p>")
    if forecast is not None:
        out.append(f"<p><b>Nadir forecast</b>: {_cell(forecast_sentence(forecast))}</p>")
        if forecast_made(forecast):
            out.append(f'<p class="note">{_cell(decision_support_caption())}</p>')
    return "".join(out)


def _flowsheet(
    results: pd.DataFrame, history: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, zone: str
) -> str:
    inside = results["collected_at"].between(start, end).to_numpy(dtype=bool)
    shown = results[inside & results["analyte"].isin(FLOWSHEET).to_numpy(dtype=bool)]
    if shown.empty:
        return ""
    panels = (
        shown.drop_duplicates("panel_id")
        .sort_values(["collected_at", "panel_id"], kind="stable")
        .tail(FLOWSHEET_PANELS)
    )
    shown = shown[shown["panel_id"].isin(panels["panel_id"]).to_numpy(dtype=bool)]
    text = _values(shown)
    below = shown["below_limit"].fillna(False).to_numpy(dtype=bool)
    above = (
        shown["above_range"].fillna(False).to_numpy(dtype=bool) if "above_range" in shown else below & False
    )
    marks = np.where(below, " L", np.where(above, " H", ""))
    preliminary = shown["status"].eq("preliminary").to_numpy(dtype=bool)
    earlier = _earlier_values(history)
    corrected = np.array(
        [
            bool(earlier.get((panel, analyte), ("", None, False))[2])
            for panel, analyte in zip(shown["panel_id"], shown["analyte"], strict=True)
        ],
        dtype=bool,
    )
    marks = np.char.add(
        np.char.add(marks.astype(str), np.where(preliminary, " P", "")), np.where(corrected, "*", "")
    )
    cells = pd.Series(
        [
            f'<span class="low">{escape(t)}{m}</span>' if m.startswith(" L") else f"{escape(t)}{m}"
            for t, m in zip(text, marks, strict=True)
        ],
        index=shown.index,
    )
    grid = pd.DataFrame({"panel_id": shown["panel_id"], "analyte": shown["analyte"], "cell": cells})
    grid = grid.drop_duplicates(["panel_id", "analyte"], keep="last").pivot(
        index="analyte", columns="panel_id", values="cell"
    )
    order = [code for code in FLOWSHEET if code in grid.index]
    head = "".join(
        f"<th>{_local(at, zone, '%Y-%m-%d')}<br>{_local(at, zone, '%H:%M')}</th>"
        for at in panels["collected_at"]
    )
    filled = grid.reindex(columns=list(panels["panel_id"])).astype(object)
    filled = filled.where(filled.map(lambda cell: isinstance(cell, str)), DASH)
    rows = "".join(
        f"<tr><td>{escape(_label(code))}</td>"
        + "".join(f"<td class='n'>{cell}</td>" for cell in filled.loc[code])
        + "</tr>"
        for code in order
    )
    count = len(panels)
    fixes = [
        f"{_label(analyte)} {_local(at, zone)}: {value} was {earlier[(panel, analyte)][0]} (corrected "
        f"{_local(earlier[(panel, analyte)][1], zone)})"
        for panel, analyte, value, at, mark in zip(
            shown["panel_id"], shown["analyte"], text, shown["collected_at"], corrected, strict=True
        )
        if mark
    ]
    listed = f" Corrected by the lab: {'; '.join(fixes)}." if fixes else ""
    return (
        f"<h2>Last {count} panel{'s' if count != 1 else ''} in this period</h2>"
        f"<table class='sheet'><thead><tr><th>Count</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
        '<p class="note">L: below the limit that applies; H: above it; P: preliminary, final awaited; *: '
        "corrected by the lab. Counts in x10^9/L, haemoglobin in g/dL (converted at import where the lab "
        f"sent other units).{escape(listed)}</p>"
    )


def _events(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, zone: str) -> str:
    if events.empty:
        return ""
    when = pd.to_datetime(events["start_at"], utc=True)
    mine = events[when.between(start, end).to_numpy(dtype=bool)]
    if mine.empty:
        return ""
    mine = mine.iloc[::-1]
    rows = "".join(
        f"<tr><td>{_local(row['start_at'], zone)}</td><td>{_cell(row['kind'])}</td>"
        f"<td>{_cell(row['label'])}</td><td>{_cell(row.get('details'))}</td></tr>"
        for _, row in mine.head(EVENTS_PRINTED).iterrows()
    )
    left = len(mine) - EVENTS_PRINTED
    more = f'<p class="note">{left} earlier events in this period not printed.</p>' if left > 0 else ""
    return (
        "<h2>Events and notes in this period (newest first)</h2>"
        "<table><thead><tr><th>When</th><th>Kind</th><th>What</th><th>Details</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{more}"
    )


def _before(view: PatientView, results: pd.DataFrame, start: pd.Timestamp, zone: str) -> str:
    """What the period printed leaves out and a reader must still know: medications begun before it and
    not ended before it, the last chemotherapy and G-CSF before it, runs below the limit that ended before
    it or run into it, and how many earlier panels there are."""
    lines = []
    events = view.events
    if not events.empty:
        began = pd.to_datetime(events["start_at"], utc=True)
        ended = pd.to_datetime(events["end_at"], utc=True)
        earlier = (began < start).to_numpy(dtype=bool)
        medications = events[
            earlier
            & (ended.isna() | (ended >= start)).to_numpy(dtype=bool)
            & events["kind"].eq("medication").to_numpy(dtype=bool)
        ]
        for _, row in medications.tail(EVENTS_BEFORE).iterrows():
            until = (
                "ongoing" if _missing(row["end_at"]) else f"until {_local(row['end_at'], zone, '%Y-%m-%d')}"
            )
            lines.append(
                f"medication from {_local(row['start_at'], zone, '%Y-%m-%d')} ({until}): "
                f"{_cell(row['label'])}"
            )
        if len(medications) > EVENTS_BEFORE:
            lines.append(f"(and {len(medications) - EVENTS_BEFORE} more medications)")
        # Doses are moments, not spans: the last one before the period, and how many came before it.
        for kind, word in (("chemotherapy", "chemotherapy"), ("gcsf", "G-CSF")):
            doses = events[earlier & events["kind"].eq(kind).to_numpy(dtype=bool)]
            if doses.empty:
                continue
            last = doses.iloc[-1]
            others = len(doses) - 1
            lines.append(
                f"last {word} before this period: {_local(last['start_at'], zone, '%Y-%m-%d')}, "
                f"{_cell(last['label'])}"
                + (f" ({others} earlier dose{'s' if others != 1 else ''})" if others else "")
            )
    episodes = view.episodes
    if not episodes.empty:
        began = pd.to_datetime(episodes["start"], utc=True)
        ended = pd.to_datetime(episodes["end"], utc=True)
        shown = episodes[(began < start).to_numpy(dtype=bool)]
        for _, row in shown.head(RUNS_BEFORE).iterrows():
            into = pd.Timestamp(row["end"]) >= start
            lines.append(
                f"{escape(str(row.get('count', '')))} below the limit from "
                f"{_local(row['start'], zone, '%Y-%m-%d')} "
                + ("(running into this period)" if into else f"to {_local(row['end'], zone, '%Y-%m-%d')}")
                + f", lowest {float(row['nadir']):g} on {_local(row['nadir_at'], zone, '%Y-%m-%d')} "
                f"({int(row['n_results'])} result{'s' if int(row['n_results']) != 1 else ''})"
            )
        if len(shown) > RUNS_BEFORE:
            lines.append(f"(and {len(shown) - RUNS_BEFORE} earlier runs below the limit)")
    counts = results[~results["analyte"].eq("temp").to_numpy(dtype=bool)]
    panels = counts.loc[counts["collected_at"].lt(start).to_numpy(dtype=bool), "panel_id"].nunique()
    if panels:
        lines.append(
            f"{panels} earlier panel{'s' if panels != 1 else ''} not printed (the timeline shows them)"
        )
    if not lines:
        return ""
    items = "".join(f"<li>{line}</li>" for line in lines)
    return f"<h2>Before this period</h2><ul>{items}</ul>"


def _ranges(ranges: pd.DataFrame, zone: str) -> str:
    if ranges.empty or "is_active" not in ranges:
        return ""
    active = ranges[ranges["is_active"].astype(bool).to_numpy()]
    if active.empty:
        return ""
    rows = "".join(
        f"<tr><td>{escape(_label(row['analyte']))}</td><td>{_cell(_limit(row['low']))}{DASH}{_cell(_limit(row['high']))}</td>"
        f"<td>{_cell(row.get('reason'))}</td><td>{_cell(row.get('set_by'))}, "
        f"{_local(row.get('set_at'), zone)}</td></tr>"
        for _, row in active.iterrows()
    )
    return (
        "<h2>This patient's own ranges</h2>"
        "<table><thead><tr><th>Count</th><th>Range</th><th>Reason</th><th>Set by</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _blank_as_dash(value: Any) -> Any:
    """An empty text as a dash (missing values become one in ``_text``)."""
    return DASH if isinstance(value, str) and not value.strip() else value


def _label(code: object) -> str:
    """An analyte as clinicians read it ("Neutrophils (ANC)"); an unknown code as it is."""
    return ANALYTES[code].label if isinstance(code, str) and code in ANALYTES else str(code)


def _limit(value: Any) -> str:
    return "" if _missing(value) else f"{float(value):g}"


def _sources(ctcae_version: str) -> str:
    listed = [PRIMARY_SOURCES["ctcae5"] if ctcae_version == "5.0" else f"NCI CTCAE v{ctcae_version}"]
    items = "".join(f"<li>{escape(source)}</li>" for source in listed)
    return (
        '<h2>Rules and sources</h2><ul class="sources">'
        f"{items}<li>Each flag's rule, its thresholds and their sources: the {PRODUCT}'s clinical basis "
        "(docs/clinical-basis.md); the limits are the lab's own range when it sent one.</li></ul>"
    )
