"""The printed summary's chart: the WBC and the ANC over time as vector SVG, drawn from the same results and
limits as the patient timeline (``ui.timeline``) draws on screen.

Each count has its own panel: the reference interval that applied to each result as a shaded band, the
CTCAE grade 2-4 zones as graded tints with their labels, the results joined by a line with the ones below
their limit marked, and each chemotherapy dose and G-CSF start as a dashed line. Text stays text (the PDF
can be searched), and the SVG needs no browser: WeasyPrint draws it.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis.grading import CTCAE

__all__ = ["chart_svg"]

WIDTH, PANEL, GAP, TOP, LEFT, RIGHT, BOTTOM = 680.0, 125.0, 30.0, 14.0, 46.0, 30.0, 24.0
# Okabe-Ito colours, as the dashboard uses them: blue for counts, vermillion for what is low.
BLUE, VERMILLION, GREY, BAND = "#0072B2", "#D55E00", "#555555", "#009E73"
PANELS = (("wbc", "WBC"), ("anc", "ANC"))
GRADE_TINTS = (0.10, 0.18, 0.28)  # grades 2, 3 and 4


def chart_svg(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    timezone: str,
    ctcae_version: str = "5.0",
) -> str:
    """The chart of ``results`` (current, usable; ``collected_at``, ``analyte``, ``value``, ``lln``,
    ``uln``, ``below_limit``) and the chemotherapy and G-CSF starts of ``events`` between ``start`` and
    ``end`` (UTC); dates on the axis in ``timezone``. "" when there is no WBC or ANC in that time."""
    shown = results[
        results["analyte"].isin([code for code, _ in PANELS]).to_numpy(dtype=bool)
        & results["collected_at"].between(start, end).to_numpy(dtype=bool)
        & results["value"].notna().to_numpy(dtype=bool)
    ]
    if shown.empty:
        return ""
    span = max((end - start).total_seconds(), 86_400.0)

    def x(times: pd.Series | pd.Timestamp) -> np.ndarray:
        seconds = (pd.to_datetime(times, utc=True) - start) / pd.Timedelta(seconds=1)
        return LEFT + np.asarray(seconds, dtype=float) / span * (WIDTH - LEFT - RIGHT)

    height = TOP + 2 * PANEL + GAP + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {height:g}" '
        f'width="100%" font-family="DejaVu Sans, sans-serif" font-size="9">'
    ]
    criteria = CTCAE[ctcae_version]
    for number, (code, label) in enumerate(PANELS):
        top = TOP + number * (PANEL + GAP)
        rows = shown[shown["analyte"].eq(code).to_numpy(dtype=bool)].sort_values("collected_at")
        term = criteria.term(code)
        zones = (term.bounds, term.first_absolute_grade) if term else ((), 2)
        parts.append(_panel(rows, label, top, x, *zones))
    parts.append(_events(events, start, end, x, TOP, TOP + 2 * PANEL + GAP))
    parts.append(_time_axis(start, end, x, TOP + 2 * PANEL + GAP, timezone))
    parts.append("</svg>")
    return "".join(parts)


def _panel(
    rows: pd.DataFrame, label: str, top: float, x: Any, bounds: tuple[float, ...], first_grade: int
) -> str:
    right = WIDTH - RIGHT
    values = rows["value"].to_numpy(dtype=float)
    limits = rows[["lln", "uln"]].to_numpy(dtype=float) if not rows.empty else np.empty((0, 2))
    # The scale is the reference band's and the grade zones', not a spike's: a WBC of 48 on G-CSF would
    # squash a nadir of 0.3 into two points. Values above twice the band's top are drawn at the top edge as
    # a triangle with their value.
    band_top = np.nanmax(np.concatenate([limits.ravel(), [bounds[0] if bounds else 1.0]]))
    within = values[values <= 2 * band_top]
    # Unless most counts are above it (a CLL's lymphocytosis): then the scale is theirs.
    scale = within if len(within) * 2 >= len(values) else values
    highest = np.nanmax(np.concatenate([scale, [band_top]]))
    ceiling = _nice(highest * 1.08)

    def y(values: np.ndarray | float) -> np.ndarray:
        return top + PANEL - np.asarray(values, dtype=float) / ceiling * PANEL

    out = [
        f'<rect x="{LEFT:g}" y="{top:g}" width="{right - LEFT:g}" height="{PANEL:g}" fill="none" '
        f'stroke="#bbbbbb" stroke-width="0.6"/>'
    ]
    # The CTCAE grade zones below the first absolute bound (a grade 1 that starts at each result's own LLN
    # is the band's lower edge).
    edges = [*bounds, 0.0]
    for grade, (high, low) in enumerate(zip(edges, edges[1:], strict=False), start=first_grade):
        y_high, y_low = float(y(min(high, ceiling))), float(y(low))
        tint = GRADE_TINTS[min(max(grade - 2, 0), len(GRADE_TINTS) - 1)]
        out.append(
            f'<rect x="{LEFT:g}" y="{y_high:.1f}" width="{right - LEFT:g}" height="{y_low - y_high:.1f}" '
            f'fill="{VERMILLION}" fill-opacity="{tint}"/>'
            f'<text x="{right + 3:g}" y="{(y_high + y_low) / 2 + 2:.1f}" fill="{GREY}" font-size="6">'
            f"G{grade}</text>"
        )
    times = x(rows["collected_at"]) if not rows.empty else np.array([])
    # The reference interval that applied to each result, as a stepped band between them.
    known = ~np.isnan(limits[:, 0]) & ~np.isnan(limits[:, 1]) if len(limits) else np.array([], dtype=bool)
    if known.any():
        xs, lows, highs = times[known], limits[known, 0], limits[known, 1]
        upper = " ".join(f"{a:.1f},{float(y(b)):.1f}" for a, b in zip(xs, highs, strict=True))
        lower = " ".join(f"{a:.1f},{float(y(b)):.1f}" for a, b in zip(xs[::-1], lows[::-1], strict=True))
        if len(xs) == 1:
            upper = f"{xs[0] - 3:.1f},{float(y(highs[0])):.1f} {xs[0] + 3:.1f},{float(y(highs[0])):.1f}"
            lower = f"{xs[0] + 3:.1f},{float(y(lows[0])):.1f} {xs[0] - 3:.1f},{float(y(lows[0])):.1f}"
        out.append(f'<polygon points="{upper} {lower}" fill="{BAND}" fill-opacity="0.14" stroke="none"/>')
    for tick in _ticks(ceiling):
        at = float(y(tick))
        out.append(
            f'<line x1="{LEFT - 3:g}" y1="{at:.1f}" x2="{LEFT:g}" y2="{at:.1f}" stroke="{GREY}" '
            f'stroke-width="0.6"/><text x="{LEFT - 5:g}" y="{at + 3:.1f}" text-anchor="end" '
            f'fill="{GREY}">{tick:g}</text>'
        )
    out.append(f'<text x="{LEFT + 4:g}" y="{top + 11:g}" font-weight="bold">{escape(label)} (x10^9/L)</text>')
    if len(times):
        shown = np.minimum(values, ceiling)
        points = " ".join(f"{a:.1f},{float(y(b)):.1f}" for a, b in zip(times, shown, strict=True))
        out.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="1.3"/>')
        marked = rows["below_limit"].fillna(False).to_numpy(dtype=bool) if "below_limit" in rows else None
        preliminary = rows["status"].eq("preliminary").to_numpy(dtype=bool) if "status" in rows else None
        for index, (a, b) in enumerate(zip(times, values, strict=True)):
            colour = VERMILLION if marked is not None and marked[index] else BLUE
            if b > ceiling:
                edge = float(y(ceiling))
                out.append(
                    f'<polygon points="{a - 3:.1f},{edge + 4:.1f} {a + 3:.1f},{edge + 4:.1f} '
                    f'{a:.1f},{edge - 1:.1f}" fill="{colour}"/>'
                    f'<text x="{a + 4:.1f}" y="{edge + 8:.1f}" font-size="7" fill="{GREY}">{b:g}</text>'
                )
                continue
            # A preliminary result is a hollow point, as on the timeline.
            fill = "white" if preliminary is not None and preliminary[index] else colour
            out.append(
                f'<circle cx="{a:.1f}" cy="{float(y(b)):.1f}" r="2.2" fill="{fill}" stroke="{colour}" '
                'stroke-width="0.9"/>'
            )
    return "".join(out)


def _events(
    events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, x: Any, top: float, bottom: float
) -> str:
    if events.empty:
        return ""
    kinds = events["kind"].astype(str)
    shown = events[kinds.isin(["chemotherapy", "gcsf"]).to_numpy(dtype=bool)]
    shown = shown[pd.to_datetime(shown["start_at"], utc=True).between(start, end).to_numpy(dtype=bool)]
    out = []
    for kind, at in zip(shown["kind"], x(shown["start_at"]), strict=True):
        colour, word = (GREY, "chemo") if kind == "chemotherapy" else (BAND, "G-CSF")
        out.append(
            f'<line x1="{at:.1f}" y1="{top:g}" x2="{at:.1f}" y2="{bottom - GAP + PANEL:g}" stroke="{colour}" '
            f'stroke-width="0.7" stroke-dasharray="3,2"/>'
            f'<text x="{at + 2:.1f}" y="{top + 22:g}" fill="{colour}" font-size="7">{word}</text>'
        )
    return "".join(out)


def _time_axis(start: pd.Timestamp, end: pd.Timestamp, x: Any, bottom: float, timezone: str) -> str:
    local_start, local_end = start.tz_convert(timezone), end.tz_convert(timezone)
    days = max((local_end - local_start).days, 1)
    step = next(s for s in (1, 2, 7, 14, 28, 56, 91, 182, 365, 730, 100_000) if days / s <= 7)
    first = local_start.normalize() + pd.Timedelta(days=1)
    ticks = pd.date_range(first, local_end, freq=f"{step}D") if step < 100_000 else pd.DatetimeIndex([first])
    out = []
    for tick in ticks:
        at = float(np.asarray(x(pd.Timestamp(tick).tz_convert("UTC"))))
        out.append(
            f'<line x1="{at:.1f}" y1="{bottom:g}" x2="{at:.1f}" y2="{bottom + 3:g}" stroke="{GREY}" '
            f'stroke-width="0.6"/><text x="{at:.1f}" y="{bottom + 13:g}" text-anchor="middle" '
            f'fill="{GREY}">{tick:%d %b %Y}</text>'
        )
    return "".join(out)


def _nice(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 x a power of ten) at or above
    ``value``."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(
        next(step * power for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= value)
    )


def _ticks(ceiling: float) -> list[float]:
    """Axis ticks from 0 at the first of 1, 2, 5 x a power of ten leaving at most six intervals."""
    power = 10 ** math.floor(math.log10(ceiling / 6)) if ceiling > 0 else 1.0
    step = next(k * power for k in (1, 2, 5, 10) if ceiling / (k * power) <= 6)
    return [round(step * k, 10) for k in range(int(ceiling / step + 1e-9) + 1)]
