"""The worklist in a real browser on a common laptop screen (1366 x 768, the sidebar open as the app shows
it): every column on screen without scrolling sideways. Served and driven as in tests/test_browser.py (its
fixtures: a dashboard over the synthetic demo cohort, Debian's headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.test_browser import PAGE_TIMEOUT_MS, _sign_in, chromium, dashboard  # noqa: F401 (fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}


def test_the_worklist_fits_a_1366_pixel_screen_without_scrolling_sideways(
    dashboard: str,  # noqa: F811
    chromium: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=LAPTOP)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        _sign_in(page, dashboard)
        expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_role("link", name="Worklist")).to_be_visible()  # the sidebar is open
        grid = page.locator('[data-testid="stDataFrame"]').first
        expect(grid).to_be_visible()
        # The grid's accessible table has the header cells of the columns in view only: the last CBC and
        # the cycle day are among them, as are the lineages.
        headers = grid.locator('th[role="columnheader"]')
        for name in ("Priority", "WBC", "ANC", "ALC", "Pattern", "Last CBC", "Cycle"):
            expect(headers.filter(has_text=re.compile(rf"^{name}$"))).to_have_count(1)
        page.screenshot(path=tmp_path / "worklist-1366.png")
        widths = grid.locator(".dvn-scroller").evaluate(
            "scroller => ({scroll: scroller.scrollWidth, client: scroller.clientWidth})"
        )
        assert widths["client"] > 0 and widths["scroll"] <= widths["client"], widths
        sidebar_box, grid_box = sidebar.bounding_box(), grid.bounding_box()
        assert sidebar_box is not None and grid_box is not None
        assert sidebar_box["width"] > 0 and grid_box["x"] + grid_box["width"] <= LAPTOP["width"]
        # A graded ANC says its grade and count in its own column.
        expect(grid.locator('table[role="grid"]')).to_contain_text(re.compile(r"G4 0\.\d"))
    finally:
        context.close()
