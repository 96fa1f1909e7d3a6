"""Plotly figures, built by pure functions from frames (tested without Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from monitor.analytes import ANALYTES
from monitor.status import EXCLUDED_STATUSES

# Okabe-Ito colour-blind-safe palette.
BLUE, ORANGE, VERMILLION, SKY, GREEN, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#D55E00",
    "#56B4E9",
    "#009E73",
    "#CC79A7",
    "#7F7F7F",
)
BAND_FILL = "rgba(0, 158, 115, 0.14)"
EVENT_COLOURS = {
    "chemotherapy": PURPLE,
    "gcsf": GREEN,
    "medication": ORANGE,
    "infection": VERMILLION,
    "fever": VERMILLION,
    "supplement": SKY,
    "transfusion": BLUE,
    "note": GREY,
}
EVENT_NAMES = {"gcsf": "G-CSF"}


def _local(times: pd.Series, timezone: str) -> pd.Series:
    return times.dt.tz_convert(timezone).dt.tz_localize(None)


def count_figure(
    results: pd.DataFrame, analyte: str, *, events: pd.DataFrame | None = None, timezone: str = "UTC"
) -> go.Figure:
    """One analyte over time, against the reference range each result was reported with.

    The band steps wherever the lab's range changed; results below the lower limit are drawn as
    filled vermillion triangles (shape and colour, so the low ones do not rely on colour alone).
    """
    meta = ANALYTES[analyte]
    series = results[(results["analyte"] == analyte) & ~results["status"].isin(EXCLUDED_STATUSES)]
    series = series.dropna(subset=["value"]).sort_values("collected_at")
    when = _local(series["collected_at"], timezone)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=when,
            y=series["ref_high"],
            mode="lines",
            line={"width": 0, "shape": "hv"},
            hoverinfo="skip",
            showlegend=False,
            name="upper limit",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=when,
            y=series["ref_low"],
            mode="lines",
            line={"width": 0, "shape": "hv"},
            fill="tonexty",
            fillcolor=BAND_FILL,
            hoverinfo="skip",
            name="Reference range (as reported by the lab)",
        )
    )
    # Below the limit that applies (a patient-specific range first), as the list judges it.
    limit = series["lln"] if "lln" in series else series["ref_low"]
    low = (series["value"] < limit).to_numpy()
    hover = (
        "%{x|%d %b %Y %H:%M}<br><b>%{customdata[5]}%{y} "
        + meta.unit
        + "</b><br>range %{customdata[0]}–%{customdata[1]}"
        "<br>%{customdata[2]} · lab %{customdata[3]} · accession %{customdata[4]}<extra></extra>"
    )
    custom = (
        series.reindex(columns=["ref_low", "ref_high", "status", "lab", "accession"])
        .astype(object)
        .fillna("?")
    )
    comparator = series["comparator"] if "comparator" in series else pd.Series("", index=series.index)
    custom["comparator"] = comparator.fillna("").astype(object)
    figure.add_trace(
        go.Scatter(
            x=when,
            y=series["value"],
            mode="lines+markers",
            name=meta.label,
            line={"color": BLUE, "width": 2},
            marker={
                "size": np.where(low, 11, 7),
                "color": np.where(low, VERMILLION, BLUE),
                "symbol": np.where(low, "triangle-down", "circle"),
            },
            customdata=custom.to_numpy(),
            hovertemplate=hover,
        )
    )
    if events is not None and not events.empty:
        _add_events(figure, events, series["value"].max() if len(series) else 1.0, timezone)
    figure.update_layout(
        height=420,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        hovermode="closest",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        xaxis={"title": f"Collection date ({timezone})"},
        yaxis={"title": f"{meta.label} ({meta.unit})", "rangemode": "tozero"},
    )
    return figure


def _add_events(figure: go.Figure, events: pd.DataFrame, top: float, timezone: str) -> None:
    """Events as labelled markers along the top of the chart, one trace per kind (toggle in legend)."""
    for kind, group in events.groupby("kind", sort=True):
        figure.add_trace(
            go.Scatter(
                x=_local(group["start_at"], timezone),
                y=[top * 1.08] * len(group),
                mode="markers",
                name=EVENT_NAMES.get(str(kind), str(kind).capitalize()),
                text=group["label"],
                marker={"symbol": "diamond", "size": 10, "color": EVENT_COLOURS.get(str(kind), GREY)},
                hovertemplate="%{x|%d %b %Y}<br>%{text}<extra></extra>",
            )
        )
