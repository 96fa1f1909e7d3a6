"""The patient timeline and the cycle overlay: plotly figures built by pure functions from frames.

Row by row on one time axis: a thin track of treatment and other events (a lane per kind); WBC against
each result's own reference band with CTCAE grade zones, significant changes and the treatment cycles; the
differential (ANC, ALC, AMC, AEC, ABC); haemoglobin; platelets. Colours are Okabe-Ito (colour-blind safe),
and nothing is told by colour alone: grades are also zones with labels, low results are also downward
triangles, statuses and event kinds are also shapes. A row without results says so in words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitor.analysis.cycles import cycle_notation
from monitor.analysis.cycles.align import day_start
from monitor.analysis.forecast import Forecast
from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.analysis.timeline import DEFAULT_WINDOW_DAYS, view_window
from monitor.analytes import ANALYTES
from monitor.formats.units import printed
from ui.figures import (
    BAND_FILL,
    BLUE,
    EVENT_COLOURS,
    EVENT_NAMES,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    SKY,
    VERMILLION,
)
from ui.temperatures import TEMPERATURE_TITLE, add_temperature_row, usable_temperatures
from ui.text import plain_html, plain_html_series

DIFFERENTIAL = ("anc", "alc", "amc", "aec", "abc")
LINEAGE_COLOURS = {"anc": BLUE, "alc": ORANGE, "amc": GREEN, "aec": PURPLE, "abc": GREY}
# CTCAE v5.0 "White blood cell decreased" zones in 10^9/L (NCI 2017; docs/clinical-basis.md, CTCAE v5.0
# grading), most severe last.
WBC_GRADE_ZONES = ((3.0, 2.0, "G2", 0.10), (2.0, 1.0, "G3", 0.17), (1.0, 0.0, "G4", 0.25))
GRADE_COLOURS = {0: BLUE, 1: SKY, 2: ORANGE, 3: VERMILLION, 4: "#000000"}
STATUS_SYMBOLS = {"final": "circle", "preliminary": "circle-open", "corrected": "diamond"}
# What the hover says of a result's status: a preliminary one is not yet the lab's last word
# (docs/clinical-basis.md, Preliminary results).
STATUS_WORDS = {"preliminary": "preliminary result; final awaited"}


def _symbols(rows: pd.DataFrame, low: np.ndarray) -> np.ndarray:
    """Marker shapes: by status, a low result as a down-triangle, hollow while it is preliminary."""
    by_status = rows["status"].map(STATUS_SYMBOLS).fillna("circle").to_numpy()
    preliminary = rows["status"].eq("preliminary").to_numpy(dtype=bool)
    return np.select(
        [low & preliminary, low & (by_status == "circle")],
        ["triangle-down-open", "triangle-down"],
        by_status,
    )


ROW_TITLES = ("WBC", "Differential", "Haemoglobin", "Platelets")
# What a row without results says instead of drawing empty axes.
NO_RESULTS = {"wbc": "No WBC results", "hgb": "No haemoglobin results", "plt": "No platelet results"}
# The events track sits above the WBC in the top row's space; its axes are x9 and y9, numbered past every
# row's so that the rows keep theirs (WBC y, differential y2, ..., temperatures y5).
TRACK = 9
TRACK_TITLE = "Treatment and other events"
TRACK_SHARE, TRACK_GAP = 0.07, 0.035  # of the plotting height: the track, and the room for the WBC title
# A lane each for the treatments that move the counts; every other kind in one lane.
LANES = {"chemotherapy": "Chemotherapy", "gcsf": "G-CSF", "transfusion": "Transfusion"}
OTHER_LANE = "Other"
EVENT_SYMBOLS = {
    "chemotherapy": "diamond",
    "gcsf": "triangle-up",
    "transfusion": "square",
    "medication": "circle",
    "infection": "x",
    "fever": "star",
    "supplement": "pentagon",
    "note": "circle-open",
}
# Flowsheet headings other than "label (unit)": a temperature's is short, it sits among the counts.
FLOWSHEET_HEADINGS = {"temp": "Temp °C"}


def _local(times: pd.Series, timezone: str) -> pd.Series:
    return times.dt.tz_convert(timezone).dt.tz_localize(None)


def _usable(results: pd.DataFrame, analyte: str) -> pd.DataFrame:
    rows = results[(results["analyte"] == analyte).to_numpy() & ~results["status"].isin(EXCLUDED_STATUSES)]
    return rows.dropna(subset=["value"]).sort_values("collected_at", kind="stable")


def correction_history(history: pd.DataFrame | None) -> pd.Series:
    """Per (panel_id, analyte) of a corrected result, the earlier versions as one line of hover text."""
    if history is None or history.empty or "is_current" not in history:
        return pd.Series(dtype="string")
    earlier = history[~history["is_current"].astype(bool)].sort_values("version")
    if earlier.empty:
        return pd.Series(dtype="string")
    text = (
        "v" + earlier["version"].astype(str) + " " + earlier["comparator"].fillna("").astype(str)
        + earlier["value"].map(lambda v: "?" if pd.isna(v) else f"{v:g}")
        + " (" + earlier["status"].astype(str) + ")"
    )  # fmt: skip
    return text.groupby([earlier["panel_id"], earlier["analyte"]]).agg("; ".join)


def timeline_figure(
    results: pd.DataFrame,
    *,
    events: pd.DataFrame | None = None,
    cycles: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    lineages: Sequence[str] = ("anc", "alc"),
    log: bool = False,
    window_days: float | None = DEFAULT_WINDOW_DAYS,
    timezone: str = "UTC",
    forecast: Forecast | None = None,
) -> go.Figure:
    """The whole timeline: the events track over rows sharing the time axis (see the module docstring).

    ``results`` are current results already marked (``analysis.timeline.marked_results``: grade, below
    the limit that applies, change beyond the reference change value); ``history`` adds superseded
    versions for the hover of corrected results; ``cycles`` (``analysis.cycles.treatment_cycles``) shade
    each cycle; ``window_days`` is the visible window: the last days of the patient's data, never wider
    than the data (``analysis.timeline.view_window``; all of it when None); ``forecast``
    (``analysis.forecast``) is drawn on the differential's row with the ANC, ahead of the cycle's last ANC
    (``add_forecast``).
    """
    # Temperatures get a small row of their own under the counts, only when the patient has any.
    temperatures = usable_temperatures(results)
    n_rows = 5 if len(temperatures) else 4
    figure = make_subplots(
        rows=n_rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.42 + TRACK_SHARE + TRACK_GAP, 0.26, 0.16, 0.16, 0.14][:n_rows],
        subplot_titles=(*ROW_TITLES, TEMPERATURE_TITLE)[:n_rows],
    )
    _add_track(figure, bottom=n_rows)
    earlier = correction_history(history)
    wbc = _usable(results, "wbc")
    _band(figure, wbc, timezone, row=1, fill=BAND_FILL, name="WBC reference range (as reported)")
    if len(wbc):
        _grade_zones(figure, wbc)
    # Drawn before the points: a significant change circles its point and never covers its grade colour.
    _significant(figure, wbc, timezone)
    _graded_points(figure, wbc, earlier, timezone)
    ahead = pd.DataFrame()
    if forecast is not None and "anc" in lineages:
        # Drawn before the counts, so that its band never hides a point.
        ahead = forecast_ahead(forecast, _usable(results, "anc")["collected_at"])
        if len(ahead):
            add_forecast(figure, forecast, ahead, _local(ahead["at"], timezone), timezone=timezone, row=2)
    drawn: dict[int, pd.DataFrame] = {1: wbc}
    differential = []
    for analyte in lineages:
        rows = _usable(results, analyte)
        differential.append(rows)
        if rows.empty:
            continue
        colour = LINEAGE_COLOURS.get(analyte, GREY)
        _band(
            figure, rows, timezone, row=2, fill=_tint(colour, 0.12), name=f"{ANALYTES[analyte].label} range"
        )
        _line(figure, rows, earlier, timezone, row=2, colour=colour)
    drawn[2] = pd.concat(differential) if differential else results.iloc[0:0]
    for row, analyte in ((3, "hgb"), (4, "plt")):
        rows = drawn[row] = _usable(results, analyte)
        _band(figure, rows, timezone, row=row, fill=BAND_FILL, name=f"{ANALYTES[analyte].label} range")
        _line(figure, rows, earlier, timezone, row=row, colour=BLUE if analyte == "plt" else VERMILLION)
    if cycles is not None and not cycles.empty:
        _cycle_spans(figure, cycles, timezone)
    _events(figure, events if events is not None else pd.DataFrame(), timezone)
    for row, analyte in ((1, "wbc"), (2, "anc"), (3, "hgb"), (4, "plt")):
        meta = ANALYTES[analyte]
        title = f"{'WBC' if row == 1 else 'Counts' if row == 2 else meta.label} ({meta.unit})"
        kind = "log" if log and analyte != "hgb" else "linear"
        figure.update_yaxes(title_text=title, type=kind, rangemode="tozero", row=row, col=1)
    if len(temperatures):
        add_temperature_row(figure, temperatures, row=5, timezone=timezone)
    figure.update_xaxes(title_text=f"Collection date ({timezone})", row=n_rows, col=1)
    window = view_window(_shown_times(results, events, ahead), days=window_days)
    if window is not None:
        figure.update_xaxes(range=_local(pd.Series(window), timezone).tolist())
    empty = {1: NO_RESULTS["wbc"], 2: _no_differential(lineages), 3: NO_RESULTS["hgb"], 4: NO_RESULTS["plt"]}
    for row, rows in drawn.items():
        words = _nothing_shown(rows, empty[row], window, timezone)
        if words:
            _say_empty(figure, words, row=row, bottom=row == n_rows)
    if events is not None and len(events):
        starts = events[["start_at"]].rename(columns={"start_at": "collected_at"})
        words = _nothing_shown(starts, "No events", window, timezone)
        if words:
            _say_on_track(figure, words)
    figure.update_layout(
        height=(900 if n_rows == 4 else 1040) + 80,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        hovermode="closest",
        legend={"orientation": "h", "y": 1.03, "yanchor": "bottom", "x": 0},
    )
    return figure


def _add_track(figure: go.Figure, *, bottom: int) -> None:
    """The events track's axes at the top of the WBC row's space, sharing the time axis; the WBC below it."""
    low, high = figure.layout.yaxis.domain
    figure.layout.yaxis.domain = (low, high - TRACK_SHARE - TRACK_GAP)
    figure.layout[f"xaxis{TRACK}"] = {
        "anchor": f"y{TRACK}",
        "domain": [0.0, 1.0],
        "matches": f"x{bottom}",
        "showticklabels": False,
    }
    figure.layout[f"yaxis{TRACK}"] = {
        "anchor": f"x{TRACK}",
        "domain": [high - TRACK_SHARE, high],
        "type": "category",
        "autorange": "reversed",  # the first lane on top
        "fixedrange": True,
        "tickfont": {"size": 10},
    }
    for annotation in figure.layout.annotations:
        if annotation.text == ROW_TITLES[0]:
            annotation.y = high - TRACK_SHARE - TRACK_GAP
    figure.add_annotation(  # a title as the rows' (make_subplots')
        text=TRACK_TITLE,
        x=0.5,
        y=high,
        xref="paper",
        yref="paper",
        xanchor="center",
        yanchor="bottom",
        showarrow=False,
        font={"size": 16},
    )


def _shown_times(results: pd.DataFrame, events: pd.DataFrame | None, ahead: pd.DataFrame) -> pd.Series:
    """Every time the figure draws something at: usable results, events (start and end), the forecast."""
    usable = results[~results["status"].isin(EXCLUDED_STATUSES)].dropna(subset=["value"])
    parts = [usable["collected_at"]]
    if events is not None and len(events):
        parts += [events["start_at"], *([events["end_at"]] if "end_at" in events else [])]
    if len(ahead):
        parts.append(ahead["at"])
    return pd.concat([pd.to_datetime(part, utc=True) for part in parts], ignore_index=True)


def _no_differential(lineages: Sequence[str]) -> str:
    if not lineages:
        return "No differential count chosen"
    return "No " + " or ".join(ANALYTES[code].label for code in lineages) + " results"


def _nothing_shown(
    rows: pd.DataFrame, words: str, window: tuple[pd.Timestamp, pd.Timestamp] | None, timezone: str
) -> str:
    """What a row says when it draws no point: ``words``, or that its results are all outside the window."""
    if rows.empty:
        return words
    if window is None:
        return ""
    times = rows["collected_at"]
    if times.between(*window).any():
        return ""
    latest = times.max().tz_convert(timezone)
    return f"{words} in this window (the latest on {latest:%d %b %Y}; choose a longer window to see it)"


def _say_empty(figure: go.Figure, words: str, *, row: int, bottom: bool) -> None:
    """``words`` in the middle of the row, whose value axis (and grid) is hidden: no empty axes."""
    low, high = figure.layout["yaxis" if row == 1 else f"yaxis{row}"].domain
    figure.add_annotation(  # placed on the page: plotly draws nothing referred to a hidden axis
        text=words,
        x=0.5,
        y=(low + high) / 2,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 14, "color": GREY},
    )
    figure.update_yaxes(visible=False, row=row, col=1)
    if not bottom:  # the bottom row's axis carries the dates
        figure.update_xaxes(showgrid=False, row=row, col=1)


def _tint(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _band(figure: go.Figure, rows: pd.DataFrame, timezone: str, *, row: int, fill: str, name: str) -> None:
    """The reference range as reported with each result, stepped where the lab's range changed."""
    if rows.empty:
        return
    when = _local(rows["collected_at"], timezone)
    common = {"mode": "lines", "line": {"width": 0, "shape": "hv"}, "hoverinfo": "skip", "legendgroup": name}
    figure.add_trace(
        go.Scatter(x=when, y=rows["ref_high"], showlegend=False, name=name, **common), row=row, col=1
    )
    figure.add_trace(
        go.Scatter(x=when, y=rows["ref_low"], fill="tonexty", fillcolor=fill, name=name, **common),
        row=row,
        col=1,
    )


def _grade_zones(figure: go.Figure, wbc: pd.DataFrame) -> None:
    """CTCAE grade 2-4 zones under the WBC, in graded tints with their labels; grade 1 starts at the LLN."""
    for high, low, label, alpha in WBC_GRADE_ZONES:
        figure.add_hrect(
            y0=low,
            y1=high,
            fillcolor=_tint(VERMILLION, alpha),
            line_width=0,
            layer="below",
            annotation_text=label,
            annotation_position="right",
            annotation_font_size=10,
            row=1,
            col=1,
        )


def _hover(rows: pd.DataFrame, earlier: pd.Series, unit: str, *, graded: bool) -> tuple[np.ndarray, str]:
    key = pd.MultiIndex.from_arrays([rows["panel_id"], rows["analyte"]]) if "panel_id" in rows else None
    corrected = (
        pd.Series(earlier.reindex(key).to_numpy(), index=rows.index)
        if key is not None and len(earlier)
        else None
    )
    custom = pd.DataFrame(
        {
            "comparator": plain_html_series(rows["comparator"].fillna("")) if "comparator" in rows else "",
            "range": rows["ref_low"].map(lambda v: "?" if pd.isna(v) else f"{v:g}")
            + "–"
            + rows["ref_high"].map(lambda v: "?" if pd.isna(v) else f"{v:g}"),
            "grade": rows["grade"].map(lambda g: "" if pd.isna(g) else f" · CTCAE grade {int(g)}")
            if graded
            else "",
            # What a feed sent is shown as text: plotly renders a subset of HTML in hover labels.
            "status": plain_html_series(rows["status"].map(STATUS_WORDS).fillna(rows["status"])),
            "lab": plain_html_series(rows["lab"].fillna("?")) if "lab" in rows else "?",
            "accession": plain_html_series(rows["accession"].fillna("?")) if "accession" in rows else "?",
            "history": ("<br>corrected; earlier: " + plain_html_series(corrected.astype("string"))).fillna("")
            if corrected is not None
            else "",
        },
        index=rows.index,
    )
    template = (
        "%{x|%d %b %Y %H:%M}<br><b>%{customdata[0]}%{y} " + unit + "</b>%{customdata[2]}"
        "<br>range %{customdata[1]} · %{customdata[3]}<br>lab %{customdata[4]} · accession %{customdata[5]}"
        "%{customdata[6]}<extra></extra>"
    )
    return custom.astype(object).to_numpy(), template


def _graded_points(figure: go.Figure, rows: pd.DataFrame, earlier: pd.Series, timezone: str) -> None:
    """WBC: a line, points coloured and sized by grade, shaped by status, low ones as down-triangles."""
    if rows.empty:
        return
    low = rows["below_limit"].to_numpy(dtype=bool)
    symbol = _symbols(rows, low)
    grade = rows["grade"].fillna(0).astype(int)
    custom, template = _hover(rows, earlier, ANALYTES["wbc"].unit, graded=True)
    figure.add_trace(
        go.Scatter(
            x=_local(rows["collected_at"], timezone),
            y=rows["value"],
            mode="lines+markers",
            name="WBC (marker: grade colour; ▼ below limit; hollow: preliminary; ◇ corrected)",
            line={"color": GREY, "width": 1.5},
            marker={
                "size": np.where(low, 11, 8),
                # Opaque: plotly draws markers of varied sizes at 0.7, washing the grade colour out
                # over the grade zones.
                "opacity": 1,
                "color": grade.map(GRADE_COLOURS).to_numpy(),
                "symbol": symbol,
                "line": {"width": 1, "color": "#333333"},
            },
            customdata=custom,
            hovertemplate=template,
        ),
        row=1,
        col=1,
    )


def _significant(figure: go.Figure, wbc: pd.DataFrame, timezone: str) -> None:
    """Changes beyond the reference change value from the previous WBC: an open mark round the point (a
    ring for a fall, a hexagon for a rise), drawn under it and clear of it, so that the point keeps its
    grade colour.

    The reference change value and its sources: docs/clinical-basis.md, Reference change values.
    """
    for column, name, symbol in (
        ("significant_fall", "Significant fall (beyond the RCV)", "circle-open"),
        ("significant_rise", "Significant rise (beyond the RCV)", "hexagon-open"),
    ):
        chosen = wbc[column].fillna(False).to_numpy(dtype=bool)
        if not chosen.any():
            continue
        rows = wbc[chosen]
        percent = (100 * rows["change"]).map("{:+.0f}%".format)
        figure.add_trace(
            go.Scatter(
                x=_local(rows["collected_at"], timezone),
                y=rows["value"],
                mode="markers",
                name=name,
                # Wide enough to leave a gap round the largest point (11).
                marker={"symbol": symbol, "size": 22, "color": "#000000", "line": {"width": 2}},
                text=percent,
                hovertemplate="%{x|%d %b %Y}<br>" + name + ": %{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )


def _line(
    figure: go.Figure, rows: pd.DataFrame, earlier: pd.Series, timezone: str, *, row: int, colour: str
) -> None:
    if rows.empty:
        return
    meta = ANALYTES[str(rows["analyte"].iloc[0])]
    low = rows["below_limit"].to_numpy(dtype=bool)
    custom, template = _hover(rows, earlier, meta.unit, graded=False)
    figure.add_trace(
        go.Scatter(
            x=_local(rows["collected_at"], timezone),
            y=rows["value"],
            mode="lines+markers",
            name=meta.label,
            line={"color": colour, "width": 2},
            marker={
                "size": np.where(low, 10, 6),
                "symbol": _symbols(rows, low),
                "opacity": 1,
                "color": colour,
            },
            customdata=custom,
            hovertemplate=template,
        ),
        row=row,
        col=1,
    )


def _cycle_spans(figure: go.Figure, cycles: pd.DataFrame, timezone: str) -> None:
    """Each chemotherapy cycle as a shaded span across all rows and the events track, labelled C1, C2, ..."""
    starts = _local(cycles["start"], timezone)
    ends = _local(cycles["end"], timezone)
    for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
        fill = _tint(PURPLE, 0.07 if number % 2 == 0 else 0.13)
        figure.add_vrect(x0=start, x1=end, fillcolor=fill, line_width=0, layer="below", row="all", col=1)
        figure.add_shape(
            type="rect",
            x0=start,
            x1=end,
            y0=0,
            y1=1,
            xref=f"x{TRACK}",
            yref=f"y{TRACK} domain",
            fillcolor=fill,
            line_width=0,
            layer="below",
        )
        figure.add_annotation(
            x=start,
            y=1,
            yref="y domain",
            text=f"C{int(cycles['cycle'].iloc[number])}",
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 10},
        )


def _say_on_track(figure: go.Figure, words: str) -> None:
    low, high = figure.layout[f"yaxis{TRACK}"].domain
    # Placed on the page: plotly draws no subplot, nor its annotations, without a trace.
    figure.add_annotation(
        text=words,
        x=0.5,
        y=(low + high) / 2,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 12, "color": GREY},
    )


def _lane(kind: str) -> str:
    return LANES.get(kind, OTHER_LANE)


def _events(figure: go.Figure, events: pd.DataFrame, timezone: str) -> None:
    """Events on their own track above the WBC: a lane per treatment (chemotherapy, G-CSF, transfusion)
    and one for the rest, a marker at each start, shaped and coloured by kind, and a bar to its end when it
    has one; one trace per kind (toggle in the legend), the label and times on hover."""
    if events.empty:
        _say_on_track(figure, "No treatment or other events recorded")
        return
    kinds = events["kind"].astype(str)
    present = [lane for lane in (*LANES.values(), OTHER_LANE) if lane in set(kinds.map(_lane))]
    figure.update_layout({f"yaxis{TRACK}": {"categoryorder": "array", "categoryarray": present}})
    where = {"xaxis": f"x{TRACK}", "yaxis": f"y{TRACK}"}
    for kind, group in events.groupby(kinds, sort=True):
        kind = str(kind)
        name = plain_html(EVENT_NAMES.get(kind, kind.capitalize()))
        colour = EVENT_COLOURS.get(kind, GREY)
        lane = _lane(kind)
        start = _local(group["start_at"], timezone)
        end = _local(group["end_at"], timezone) if "end_at" in group else pd.Series(pd.NaT, index=group.index)
        lasting = end.notna().to_numpy(dtype=bool)
        if lasting.any():
            figure.add_trace(
                go.Scatter(
                    x=[t for pair in zip(start[lasting], end[lasting], strict=True) for t in (*pair, None)],
                    y=[lane, lane, None] * int(lasting.sum()),
                    mode="lines",
                    line={"color": colour, "width": 4},
                    name=name,
                    legendgroup=name,
                    showlegend=False,
                    hoverinfo="skip",
                    **where,
                )
            )
        until = end.dt.strftime(" until %d %b %Y %H:%M").fillna("")
        figure.add_trace(
            go.Scatter(
                x=start,
                y=[lane] * len(group),
                mode="markers",
                name=name,
                legendgroup=name,
                text=plain_html_series(group["label"].fillna("")),
                customdata=until.to_numpy(dtype=object),
                marker={
                    "symbol": EVENT_SYMBOLS.get(kind, "circle"),
                    "size": 11,
                    "color": colour,
                    "line": {"width": 1, "color": "#333333"},
                },
                hovertemplate="%{x|%d %b %Y %H:%M}%{customdata}<br>" + name + ": %{text}<extra></extra>",
                **where,
            )
        )


def cycle_overlay_figure(
    placed: pd.DataFrame,
    analyte: str = "anc",
    *,
    window: tuple[int, int] = (7, 14),
    forecast: Forecast | None = None,
    timezone: str = "UTC",
) -> go.Figure:
    """One line per cycle of ``analyte`` against the day since the cycle's start (D# on hover).

    ``placed`` is ``analysis.cycles.cycle_days`` output. The site's nadir ``window`` (days 7-14 by default;
    docs/clinical-basis.md, Nadir timing) is shaded, and for the ANC the readiness (1.5, paclitaxel and
    docetaxel prescribing information) and CTCAE grade-4 (0.5) levels are drawn. The ANC's ``forecast``
    (``analysis.forecast``) is drawn for its cycle ahead of that cycle's last ANC, with its nadir window
    shaded; days count from the start of the dosing day in ``timezone``, as the counts' do.
    """
    meta = ANALYTES[analyte]
    rows = placed[(placed["analyte"] == analyte).to_numpy()].sort_values(["cycle", "day"])
    figure = go.Figure()
    figure.add_vrect(
        x0=window[0],
        x1=window[1],
        fillcolor=_tint(GREY, 0.12),
        line_width=0,
        layer="below",
        annotation_text="nadir window",
        annotation_position="top left",  # the levels' labels sit at the right: no overlap
    )
    palette = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, GREY, "#000000")
    for number, (cycle, group) in enumerate(rows.groupby("cycle", sort=True)):
        figure.add_trace(
            go.Scatter(
                x=group["day"],
                y=group["value"],
                mode="lines+markers",
                name=f"Cycle {int(cycle)}",
                line={"color": palette[number % len(palette)], "width": 2},
                marker={"symbol": number % 12},
                text=group["day"].map(cycle_notation),
                hovertemplate=f"Cycle {int(cycle)} %{{text}}<br>%{{y}} {meta.unit}<extra></extra>",
            )
        )
    if forecast is not None and analyte == "anc" and len(ahead := _overlay_ahead(forecast, rows)):
        day_zero = day_start(pd.Series([forecast.cycle_start]), timezone).iloc[0]
        days = (ahead["at"] - day_zero) / pd.Timedelta(days=1)
        if forecast.nadir_window is not None:
            first, last = forecast.nadir_window
            figure.add_vrect(
                x0=first,
                x1=last + 1,  # the whole of the window's last day
                fillcolor=_tint(BLUE, 0.12),
                line_width=0,
                layer="below",
                annotation_text=f"forecast nadir {cycle_notation(first)}-{cycle_notation(last)}",
                annotation_position="bottom left",
            )
        add_forecast(figure, forecast, ahead, days, timezone=timezone, day_zero=day_zero)
    levels = (
        (1.5, "dash", GREEN, "readiness 1.5", "top right"),
        (0.5, "dot", VERMILLION, "grade 4 below 0.5", "bottom right"),
    )
    for level, dash, colour, label, where in levels if analyte == "anc" else ():
        figure.add_hline(
            y=level, line_dash=dash, line_color=colour, annotation_text=label, annotation_position=where
        )
    figure.update_layout(
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "Days since the cycle started (day 0 = D1)"},
        yaxis={"title": f"{meta.label} ({meta.unit})", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    )
    return figure


def _overlay_ahead(forecast: Forecast, anc: pd.DataFrame) -> pd.DataFrame:
    """The forecast ahead of the last ANC of its cycle among the overlay's placed ANC results."""
    return forecast_ahead(
        forecast, anc.loc[anc["cycle"].eq(forecast.cycle).to_numpy(dtype=bool), "collected_at"]
    )


def forecast_ahead(forecast: Forecast, anc_times: pd.Series) -> pd.DataFrame:
    """The forecast's ``curve`` from the last ANC counted in its cycle on (from the cycle's start when none
    is): what is ahead, never drawn over past counts; empty when the cycle's curve ends before that count."""
    curve = forecast.curve
    if curve.empty or forecast.cycle_start is None:
        return curve.iloc[0:0]
    times = pd.to_datetime(anc_times, utc=True)
    in_cycle = times[times.ge(forecast.cycle_start).to_numpy(dtype=bool)]
    since = in_cycle.max() if len(in_cycle) else forecast.cycle_start
    return curve[curve["at"].ge(since).to_numpy(dtype=bool)]


def add_forecast(
    figure: go.Figure,
    forecast: Forecast,
    ahead: pd.DataFrame,
    x: pd.Series,
    *,
    timezone: str,
    row: int | None = None,
    day_zero: pd.Timestamp | None = None,
) -> None:
    """The forecast's median (dashed) and 80 % band (light) at ``x`` (the times of ``ahead``, on the figure's
    axis), and its nadir as a marker with its 80 % interval as an error bar when it is still ahead.
    ``day_zero`` (the overlay's): the nadir is placed at days since it, else at its time in ``timezone``."""
    if ahead.empty:
        return
    where = {"row": row, "col": 1} if row is not None else {}
    # The band is hatched: the ANC's reference range is a plain tint of the same blue.
    band = {"legendgroup": "forecast band", "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
    figure.add_trace(go.Scatter(x=x, y=ahead["high"], showlegend=False, name="80 % band", **band), **where)
    figure.add_trace(
        go.Scatter(
            x=x,
            y=ahead["low"],
            fill="tonexty",
            fillcolor=_tint(BLUE, 0.08),
            fillpattern={"shape": "/", "fgcolor": BLUE, "fgopacity": 0.35, "size": 7, "solidity": 0.15},
            name="80 % band",
            **band,
        ),
        **where,
    )
    cycle = f"C{forecast.cycle}" if forecast.cycle is not None else ""
    days = np.floor(ahead["day"].to_numpy(dtype=float)).astype(int)
    custom = np.column_stack(
        [ahead["low"].to_numpy(), ahead["high"].to_numpy(), [cycle + cycle_notation(d) for d in days]]
    ).astype(object)
    figure.add_trace(
        go.Scatter(
            x=x,
            y=ahead["median"],
            mode="lines",
            name="forecast (median)",
            legendgroup="forecast",
            line={"color": BLUE, "width": 2, "dash": "dash"},
            customdata=custom,
            hovertemplate="%{customdata[2]}<br>forecast %{y:.2f} "
            "(80 %: %{customdata[0]:.2f}-%{customdata[1]:.2f})"
            f" {ANALYTES['anc'].unit}<extra></extra>",
        ),
        **where,
    )
    if forecast.nadir_day is None or forecast.nadir_anc is None or forecast.cycle_start is None:
        return
    nadir_at = forecast.cycle_start + pd.Timedelta(days=forecast.nadir_day)
    if nadir_at < ahead["at"].min():
        return  # the nadir is behind the last count: the counts tell it
    nadir_x = (
        (nadir_at - day_zero) / pd.Timedelta(days=1)
        if day_zero is not None
        else _local(pd.Series([nadir_at]), timezone).iloc[0]
    )
    low, high = forecast.nadir_anc_low or forecast.nadir_anc, forecast.nadir_anc_high or forecast.nadir_anc
    figure.add_trace(
        go.Scatter(
            x=[nadir_x],
            y=[forecast.nadir_anc],
            mode="markers",
            name="forecast nadir",
            legendgroup="forecast",
            showlegend=False,
            marker={"symbol": "x-thin-open", "size": 12, "color": BLUE, "line": {"width": 2, "color": BLUE}},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [high - forecast.nadir_anc],
                "arrayminus": [forecast.nadir_anc - low],
                "color": BLUE,
                "thickness": 1.5,
                "width": 6,
            },
            hovertemplate=f"forecast nadir {forecast.nadir_anc:.2f} (80 %: {low:.2f}-{high:.2f}) "
            f"{ANALYTES['anc'].unit}<br>{cycle}{cycle_notation(int(forecast.nadir_day))}<extra></extra>",
        ),
        **where,
    )


def flowsheet(results: pd.DataFrame, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dates x analytes: values as text, with the lab's own abnormal flag ("105.6 HH"; HL7 v2 OBX-8, FHIR
    Observation.interpretation), ↓ below the limit that applies, ↑ above the upper limit, "(prelim.)" while
    the result is preliminary, and a frame of the same shape saying "low", "high" or "" for styling;
    ``results`` are marked (``analysis.timeline.marked_results``)."""
    shown = results[~results["status"].isin(EXCLUDED_STATUSES)].dropna(subset=["value"])
    if shown.empty:
        return pd.DataFrame(), pd.DataFrame()
    low, high = shown["below_limit"].to_numpy(dtype=bool), shown["above_range"].to_numpy(dtype=bool)
    mark = np.where(low, " ↓", np.where(high, " ↑", ""))
    # Rounded as labs print (a haemoglobin converted from mmol/L is 9.99, never "9.99033").
    # A preliminary result is not yet the lab's last word: its cell says so (docs/clinical-basis.md,
    # Preliminary results).
    pending = np.where(shown["status"].eq("preliminary").to_numpy(dtype=bool), " (prelim.)", "")
    lab_flag = shown["abnormal_flag"] if "abnormal_flag" in shown else pd.Series(None, index=shown.index)
    said = (" " + lab_flag.astype("string").str.strip()).where(lab_flag.notna() & lab_flag.ne(""), "")
    text = shown["comparator"].fillna("") + printed(shown["value"], shown["analyte"]) + said.fillna("") + mark
    text = text + pending
    state = np.where(low, "low", np.where(high, "high", ""))
    when = _local(shown["collected_at"], timezone).dt.strftime("%Y-%m-%d %H:%M")
    frame = shown.assign(when=when.to_numpy(), text=text.to_numpy(), state=state)
    order = [a for a in ANALYTES if a in set(frame["analyte"])]
    values = frame.pivot_table(index="when", columns="analyte", values="text", aggfunc="last")
    states = frame.pivot_table(index="when", columns="analyte", values="state", aggfunc="last")
    labels = {a: FLOWSHEET_HEADINGS.get(a, f"{ANALYTES[a].label} ({ANALYTES[a].unit})") for a in order}
    values = values.reindex(columns=order).rename(columns=labels).fillna("")
    states = states.reindex(columns=order).rename(columns=labels).fillna("")
    return values.sort_index(ascending=False), states.sort_index(ascending=False)
