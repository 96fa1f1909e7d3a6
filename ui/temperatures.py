"""The patient timeline's temperature row: recorded body temperatures in °C, with the fever thresholds of the
two febrile-neutropenia definitions drawn as labelled lines.

Only structured readings (results of the analyte ``temp``) are drawn here; a fever written in an event's
free text stays an event marker on the events track, labelled as such (``ui.figures.EVENT_NAMES``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from monitor.analysis.status import EXCLUDED_STATUSES
from monitor.analytes import TEMPERATURE_SITES
from ui.figures import GREY, ORANGE, VERMILLION
from ui.text import plain_html_series

TEMPERATURE_TITLE = "Temperature"
# The fever thresholds of febrile neutropenia, drawn for orientation only (the rule itself is judged
# elsewhere): 38.0 °C, sustained over an hour (IDSA 2010; CTCAE v5.0 "for more than one hour"), and 38.3 °C,
# a single reading (IDSA 2010: >= 38.3; CTCAE v5.0: > 38.3). Sources: docs/clinical-basis.md, Temperatures.
FEVER_LINES = (
    (38.0, "dash", ORANGE, "38.0 °C sustained over 1 h (IDSA 2010, CTCAE v5.0)", "bottom right"),
    (38.3, "dot", VERMILLION, "38.3 °C single reading (IDSA ≥, CTCAE >)", "top right"),
)
TEMPERATURE_CAPTION = (
    " Temperature row: recorded readings in °C (converted from °F where sent so; hover for the value"
    " as sent),"
    " with the fever thresholds of febrile neutropenia: 38.0 °C sustained over an hour and 38.3 °C once"
    " (IDSA 2010; CTCAE v5.0). A fever written in an event is a marker on the events track, labelled free"
    " text."
)
SITE_WORDS = {code: f" ({site})" if site else "" for code, site in TEMPERATURE_SITES.items()}


def usable_temperatures(results: pd.DataFrame) -> pd.DataFrame:
    """The patient's temperature readings that are results (not withdrawn), oldest first."""
    chosen = results["analyte"].eq("temp").to_numpy(dtype=bool) & ~results["status"].isin(EXCLUDED_STATUSES)
    return results[chosen].dropna(subset=["value"]).sort_values("collected_at", kind="stable")


def _as_sent(rows: pd.DataFrame) -> pd.Series:
    """' · sent as 100.4 [degF]' where the reading was converted; '' when it came in °C as stored."""
    if "value_raw" not in rows or "unit_raw" not in rows:
        return pd.Series("", index=rows.index)
    raw = rows["value_raw"].fillna("").astype(str) + " " + rows["unit_raw"].fillna("").astype(str)
    converted = pd.to_numeric(rows["value_raw"], errors="coerce").ne(rows["value"])
    return ("<br>sent as " + plain_html_series(raw)).where(converted.to_numpy(dtype=bool), "")


def add_temperature_row(figure: go.Figure, rows: pd.DataFrame, *, row: int, timezone: str) -> None:
    """Readings as a line with markers on ``row``, the fever lines, and a hover with the local time, the
    site (from the LOINC code) and the value as sent when it was converted."""
    when = rows["collected_at"].dt.tz_convert(timezone).dt.tz_localize(None)
    loinc = rows["loinc"] if "loinc" in rows else pd.Series("", index=rows.index)
    site = loinc.map(SITE_WORDS).fillna("")
    febrile = rows["value"].ge(FEVER_LINES[0][0]).to_numpy(dtype=bool)
    custom = np.column_stack([site.astype(str).to_numpy(), _as_sent(rows).astype(str).to_numpy()])
    figure.add_trace(
        go.Scatter(
            x=when,
            y=rows["value"],
            mode="lines+markers",
            name="Temperature (▲ at or above 38.0 °C)",
            line={"color": GREY, "width": 1.5},
            marker={
                "size": np.where(febrile, 10, 7),
                "symbol": np.where(febrile, "triangle-up", "circle"),
                "color": np.where(febrile, VERMILLION, GREY),
            },
            customdata=custom,
            hovertemplate=(
                f"%{{x|%d %b %Y %H:%M}} ({timezone})<br><b>%{{y}} °C</b>%{{customdata[0]}}"
                "%{customdata[1]}<extra></extra>"
            ),
        ),
        row=row,
        col=1,
    )
    for level, dash, colour, label, where in FEVER_LINES:
        figure.add_hline(
            y=level,
            line_dash=dash,
            line_color=colour,
            line_width=1,
            annotation_text=label,
            annotation_position=where,
            annotation_font_size=10,
            row=row,
            col=1,
        )
    low = min(36.0, float(rows["value"].min()) - 0.3)
    high = max(39.0, float(rows["value"].max()) + 0.3)
    figure.update_yaxes(title_text="Temp (°C)", range=[low, high], row=row, col=1)
