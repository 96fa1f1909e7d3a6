"""The timeline figure drawn by plotly.js in a headless Chromium: what the eye gets of a WBC point circled as
a significant change. Needs Debian's Chromium and Playwright, as tests/test_browser.py does (else skipped)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from monitor.analysis.timeline import marked_results
from tests.test_browser import PAGE_TIMEOUT_MS, chromium  # noqa: F401 (a fixture)
from ui.timeline import timeline_figure

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

# Where each WBC point is drawn, in CSS pixels of the page: plotly's own axis conversions.
POINT_CENTRES = """() => {
    const chart = document.querySelector('.js-plotly-plot');
    const box = chart.getBoundingClientRect();
    const layout = chart._fullLayout, x = layout.xaxis, y = layout.yaxis;
    const wbc = chart._fullData.find(trace => trace.name.startsWith('WBC (marker'));
    return wbc.x.map((when, i) => [
        box.left + x._offset + x.c2p(x.d2c(when)),
        box.top + y._offset + y.c2p(y.d2c(wbc.y[i])),
    ]);
}"""


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:  # noqa: F811 (the fixture imported above)
    context = chromium.new_context(viewport={"width": 1200, "height": 1100})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _results(*, marked: bool) -> pd.DataFrame:
    """WBC 5.6, 1.5 (grade 3, a fall beyond the reference change value) and 5.0 (a rise beyond it)."""
    results = marked_results(
        pd.DataFrame(
            {
                "collected_at": pd.to_datetime(
                    ["2026-01-01T08:00Z", "2026-01-15T08:00Z", "2026-02-01T08:00Z"]
                ),
                "analyte": "wbc",
                "value": [5.6, 1.5, 5.0],
                "comparator": [None] * 3,
                "ref_low": 4.0,
                "ref_high": 11.0,
                "lln": 4.0,
                "status": "final",
                "lab": "A",
                "accession": ["1", "2", "3"],
                "panel_id": [1, 2, 3],
            }
        )
    )
    return results if marked else results.assign(significant_fall=False, significant_rise=False)


def _drawn(page: Page, results: pd.DataFrame, path: Path):
    """The chart as Chromium draws it and where the WBC points are; no legend and fixed ranges, so that
    drawings with and without the marks share one layout."""
    from PIL import Image

    figure = timeline_figure(results)
    figure.update_layout(showlegend=False)
    figure.update_xaxes(range=["2025-12-25", "2026-02-08"])
    figure.update_yaxes(range=[0, 8], row=1, col=1)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    page.goto(path.as_uri())
    page.locator(".js-plotly-plot .main-svg").first.wait_for()
    page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
    centres = page.evaluate(POINT_CENTRES)
    return Image.open(io.BytesIO(page.screenshot())).convert("RGB"), centres


def _disc(image, centre: list[float], radius: float) -> list[tuple[int, int, int]]:
    cx, cy = centre
    r = int(radius) + 1
    return [
        image.getpixel((round(cx) + dx, round(cy) + dy))
        for dx in range(-r, r + 1)
        for dy in range(-r, r + 1)
        if dx * dx + dy * dy <= radius * radius
    ]


def test_a_ring_round_a_significant_change_leaves_the_points_grade_colour_as_it_was(
    page: Page, tmp_path: Path
) -> None:
    ringed, centres = _drawn(page, _results(marked=True), tmp_path / "ringed.html")
    plain, same_centres = _drawn(page, _results(marked=False), tmp_path / "plain.html")
    assert centres == same_centres
    for number, centre in enumerate(centres):
        # Every pixel of the point (the largest, a low one, is 11 px across with its outline) is drawn as it
        # is without any mark: nothing covers or crosses it.
        assert _disc(ringed, centre, 7) == _disc(plain, centre, 7), f"point {number} is covered"
    # The grade-3 point is still vermillion at its centre, and the mark is there, around it.
    x, y = (round(v) for v in centres[1])
    assert ringed.getpixel((x, y)) == (0xD5, 0x5E, 0x00)
    assert _disc(ringed, centres[1], 12) != _disc(plain, centres[1], 12)
    assert _disc(ringed, centres[2], 12) != _disc(plain, centres[2], 12)  # the rise is marked too


def test_the_words_of_an_empty_row_are_drawn_where_its_axes_would_be(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    path = tmp_path / "empty.html"
    timeline_figure(_results(marked=True)).write_html(path, include_plotlyjs=True, full_html=True)
    page.goto(path.as_uri())
    chart = page.locator(".js-plotly-plot")
    for words in ("No haemoglobin results", "No platelet results", "No treatment or other events recorded"):
        expect(chart.get_by_text(words, exact=True)).to_be_visible()
    # In the haemoglobin row's place: below the differential's title, above the platelets'.
    said = chart.get_by_text("No haemoglobin results", exact=True).bounding_box()
    above = chart.get_by_text("Haemoglobin", exact=True).bounding_box()
    below = chart.get_by_text("Platelets", exact=True).bounding_box()
    assert said is not None and above is not None and below is not None
    assert above["y"] < said["y"] < below["y"]
