"""The dashboard served by a real `streamlit run` on loopback, driven by a headless Chromium.

Needs Debian's Chromium and the Playwright package (never `playwright install`, which downloads a browser):
``apt-get install -y chromium`` and ``pip install playwright``. Without them the browser tests are skipped;
the loopback test still runs. Select or deselect all of these with ``-m browser`` / ``-m "not browser"``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from db.store import open_store
from services.admin import seed_demo
from services.imports import ImportOptions, import_path
from tests.conftest import DATA, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 60
# Where each module's dashboard server writes its output (read by the log test at the end).
SERVER_LOGS: dict[str, Path] = {}
STOP_SECONDS = 10
PAGE_TIMEOUT_MS = 30_000
TCP_LISTEN = "0A"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


# Where the page screenshots go: MONITOR_SCREENSHOT_DIR (docs/screenshots for the README), else a temporary
# folder of the test run.
SCREENSHOT_DIR = os.environ.get("MONITOR_SCREENSHOT_DIR")
EVENTS = (
    "patient_id,kind,start,end,label,details\n"
    "MRN1001,chemotherapy,2026-02-24,,Docetaxel 75 mg/m2 cycle 1,docetaxel q21d\n"
    "MRN1001,chemotherapy,2026-03-17,,Docetaxel 75 mg/m2 cycle 2,docetaxel q21d\n"
)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of `streamlit run dashboard.py` on a free 127.0.0.1 port, over the synthetic demo
    cohort, the canonical CSV and a chemotherapy events file (MRN1001, two cycles)."""
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'monitor.db'}"
    store = open_store(url, timezone="UTC")
    seed_demo(store, patients=60, seed=7, now=datetime.now(UTC), timezone="UTC")
    summary = import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.error is None and summary.accepted > 0, summary
    (folder / "events.csv").write_text(EVENTS)
    assert (
        import_path(
            store, folder / "events.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
        ).error
        is None
    )
    env = {**os.environ, "MONITOR_DATABASE_URL": url, "MONITOR_SEED_DEMO": "0"}
    log_path = folder / "streamlit.log"
    SERVER_LOGS["dashboard"] = log_path
    SERVER_LOGS["store"] = folder / "monitor.db"
    with _served(env, log_path) as base_url:
        yield base_url


@contextlib.contextmanager
def _served(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`streamlit run dashboard.py` on a free 127.0.0.1 port with ``env``: its base URL while it runs."""
    port = _free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    # Only the port is given: address, headless and telemetry come from the project's
    # .streamlit/config.toml, which is what the loopback test below is checking.
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard.py",
        "--server.port",
        str(port),
        # No "source changed, rerun?" prompt should a source file change while this runs.
        "--server.fileWatcherType",
        "none",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not _healthy(base_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    state = f"exited with {process.returncode}" if process.poll() is not None else "timed out"
                    pytest.fail(
                        f"streamlit never answered {base_url}/_stcore/health ({state}); its output:\n"
                        + log_path.read_text(errors="replace")
                    )
                time.sleep(0.2)
            yield base_url
        finally:
            _stop(process)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's headless Chromium through Playwright, with its profile and caches in a temporary folder."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the playwright package is missing: `pip install playwright` (never `playwright install`)",
    )
    home = tmp_path_factory.mktemp("chromium-home")
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    # Assertions wait as long as actions do: on a busy 2-core machine a page can take more than the
    # assertions' own 5 s default to draw; a wait that succeeds early costs nothing.
    sync_api.expect.set_options(timeout=PAGE_TIMEOUT_MS)
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, env=env
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser tab (own cookies and session) at a desktop size."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port``, read from /proc/net/tcp and tcp6."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address_hex, port_hex = fields[1].split(":")
            if fields[3] != TCP_LISTEN or int(port_hex, 16) != port:
                continue
            # The kernel prints each 32-bit word of the address in host byte order.
            words = [int(address_hex[i : i + 8], 16) for i in range(0, len(address_hex), 8)]
            found.append(socket.inet_ntop(family, struct.pack(f"={len(words)}I", *words)))
    return found


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never contacted, only routed
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_the_dashboard_listens_on_loopback_only(dashboard: str) -> None:
    assert _healthy(dashboard)
    port = urlsplit(dashboard).port
    assert port is not None
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system: cannot list listening sockets")
    assert _listening_addresses(port) == ["127.0.0.1"]
    other = _non_loopback_address()
    if other is not None:
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
            pass


def _screenshot(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    # The app scrolls inside its own container: a tall viewport shows the whole page.
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight ?? 1000")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height), 1000), 2600)})
    page.wait_for_timeout(800)  # let plotly redraw at the new size
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def _sign_in(page: Page, dashboard: str, username: str = "admin", password: str = "demo") -> None:
    from playwright.sync_api import expect

    page.goto(dashboard)
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    # While Streamlit reruns, the old page's elements stay until replaced: wait for the form to go.
    expect(page.get_by_role("heading", name="Sign in")).to_have_count(0)


def _settled(page: Page) -> None:
    """Wait until the script run a widget change started has finished.

    A text typed into an input while the page is still rerunning can be overwritten when that run's
    elements arrive, so an edit that follows another one waits for the page to settle first.
    """
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning")


def _grid_column(page: Page, index: int):
    """The cells of one column of the first table (drawn on a canvas; its accessible table has the text)."""
    grid = page.locator('[data-testid="stDataFrame"] table[role="grid"]').first
    return grid.locator(f'td[role="gridcell"][aria-colindex="{index}"]')


def test_the_worklist_puts_the_most_urgent_first_with_the_reason(
    dashboard: str, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    expect(page.locator('[data-testid="stAlertContentWarning"]').first).to_contain_text("Synthetic demo data")
    priorities, reasons = _grid_column(page, 1), _grid_column(page, 2)
    # The demo's showcase has febrile neutropenia, first in tier 1 (before an afebrile ANC grade 4).
    expect(priorities.first).to_have_text("1")
    expect(reasons.first).to_contain_text("febrile neutropenia (ANC 0.10")
    expect(page.get_by_role("button", name="Download this list (CSV)")).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]').first).to_contain_text("Patients")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "worklist", tmp_path)
    page.get_by_label("Search identifier or name").fill("MRN1001")
    page.keyboard.press("Enter")
    expect(_grid_column(page, 3)).to_have_text(["MRN1001"])
    # Selecting the row (its checkbox, drawn on the grid's canvas) opens the patient.
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 18)  # first body row, selection column
    expect(page.get_by_role("heading", name="Patient timeline", level=1)).to_be_visible()
    header = page.locator('[data-testid="stMarkdownContainer"] strong', has_text="MRN1001")
    expect(header.first).to_be_visible()


def test_the_timeline_draws_wbc_against_the_reference_band(
    dashboard: str, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Patient timeline").click()
    expect(page).to_have_url(f"{dashboard}/patient")
    expect(page.get_by_role("heading", name="Patient timeline", level=1)).to_be_visible()
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    expect(chart.locator(".main-svg").first).to_be_visible()
    # plotly draws a `fill: tonexty` band as a closed path; the first one is the WBC reference band.
    band = chart.locator(".scatterlayer .trace .fills path.js-fill").first
    expect(band).to_have_attribute("d", re.compile(r"^M.+Z$"))
    expect(band).to_have_css("fill", "rgb(0, 158, 115)")
    expect(chart.locator(".g-ytitle .ytitle").first).to_contain_text("WBC (10^9/L)")
    # The CTCAE grade zones are labelled, not only tinted.
    for label in ("G2", "G3", "G4"):
        expect(chart.locator(".annotation-text", has_text=label).first).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "patient-timeline", tmp_path)


def test_the_cycles_page_overlays_each_cycle(dashboard: str, page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Treatment cycles").click()
    expect(page.get_by_role("heading", name="Treatment cycles", level=1)).to_be_visible()
    # A demo patient with several cycles (the first listed may have only one, drawn without a legend).
    chosen = page.get_by_label("Patient (with chemotherapy)")
    chosen.click()
    page.keyboard.type("DEMO-0002")
    page.keyboard.press("Enter")
    _settled(page)
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    expect(chart.locator(".scatterlayer .trace").first).to_be_visible()
    expect(chart.locator(".legendtext", has_text="Cycle 1").first).to_be_visible()
    expect(page.get_by_text("Per cycle")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "treatment-cycles", tmp_path)


def test_importing_a_shared_file_from_the_import_page(dashboard: str, page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import results", level=1)).to_be_visible()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        str(DATA / "external" / "us-core-observation-cbc-leukocytes.json")
    )
    # The run the finished upload starts has shown the file before anything is typed: an edit made while
    # that run is under way can be lost when its elements arrive.
    expect(page.get_by_text("1 file chosen, ")).to_be_visible()
    _settled(page)
    # A file is chosen: a mistyped zone alone keeps both buttons disabled, and is named.
    zone = page.get_by_label("Time zone for times without an offset")
    zone.fill("Europe/Lndon")
    zone.press("Enter")
    expect(page.get_by_text("'Europe/Lndon' is not an IANA time zone")).to_be_visible()
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Check (dry run)")).to_be_disabled()
    _settled(page)
    zone.fill("UTC")
    zone.press("Enter")
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled()
    page.get_by_role("button", name="Check (dry run)").click()
    expect(page.get_by_text("What would be imported (dry run: nothing stored)")).to_be_visible()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text("What was imported")).to_be_visible()
    imported = page.locator('[data-testid="stDataFrame"] table[role="grid"]').first
    expect(imported).to_contain_text("us-core-observation-cbc-leukocytes.json")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "import", tmp_path)


def test_the_settings_page_shows_each_rule_with_its_source(
    dashboard: str, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Save changes and recompute")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    # Each rule in words, its source a link a reader can follow; the raw keys stay folded under Advanced.
    expect(page.get_by_role("spinbutton", name="Z of the reference change value")).to_be_visible()
    expect(page.get_by_role("combobox", name="CTCAE version")).to_have_value("5.0")
    expect(
        page.get_by_text("A fall is significant when it exceeds the reference change value at Z = 1.645")
    ).to_be_visible()
    expect(page.get_by_role("link", name="doi.org/10.1373/clinchem.2006.069369")).to_be_visible()
    expect(page.get_by_text("grading.rcv_z", exact=True)).not_to_be_visible()
    _screenshot(page, "settings", tmp_path)
    page.get_by_text("Advanced: settings by key, values as JSON").click()
    expect(page.get_by_role("button", name="Save the edited values and recompute")).to_be_visible()


def test_a_deep_link_goes_through_the_dashboard_entry(dashboard: str, page: Page) -> None:
    """A bookmarked page URL must run dashboard.py first (sign-in, banner, navigation)."""
    from playwright.sync_api import expect

    page.goto(f"{dashboard}/patient")
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(0)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("demo")
    page.get_by_role("button", name="Sign in").click()
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="Patient timeline")).to_be_visible()
    expect(nav.get_by_role("link", name="Import")).to_be_visible()
    expect(nav).not_to_contain_text("dashboard")


def test_an_oncology_clinician_sees_only_oncology_patients_then_signs_out(
    dashboard: str, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    _sign_in(page, dashboard, "oncology")
    expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="Import")).to_have_count(0)  # not an administrator
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    patients = page.locator('[data-testid="stMetric"]').first
    expect(patients).to_contain_text("Patients")
    shown = int(patients.locator('[data-testid="stMetricValue"]').inner_text())
    assert 0 < shown < 62  # the demo cohort's oncology patients, not all 62 an administrator sees
    # DEMO-0029 is followed by internal medicine only; MRN1001 by no team (administrators only).
    for hidden in ("DEMO-0029", "MRN1001"):
        # From the whole list each time, so that the count must change to 0 (a "0" left from the previous
        # search would be read before this search's rerun).
        page.get_by_label("Search identifier or name").fill("")
        page.keyboard.press("Enter")
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(str(shown))
        page.get_by_label("Search identifier or name").fill(hidden)
        page.keyboard.press("Enter")
        # the whole value, not a substring: "30" from before the rerun also contains "0"
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("0")
        # No row names a patient. (An empty grid still draws one blank placeholder row, so blank cells are
        # allowed; the grid is redrawn after the figures above it, which on a loaded machine takes seconds.)
        named = _grid_column(page, 2).filter(has_text=re.compile(r"\S"))
        expect(named).to_have_count(0, timeout=20_000)
        expect(page.locator('[data-testid="stDataFrame"]').first).not_to_contain_text(hidden)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("heading", name="Worklist")).to_have_count(0)


def _worklist_figures(page: Page, dashboard: str, username: str, password: str) -> list[str]:
    """Sign in and read the worklist's six headline figures once all are drawn (["0"] when it says there
    are no patients yet)."""
    from playwright.sync_api import expect

    _sign_in(page, dashboard, username, password)
    expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    shown = page.locator('[data-testid="stMetric"], [data-testid="stAlert"]').first
    shown.wait_for()
    if page.get_by_text("No patients to show yet").count():
        return ["0"]
    metrics = page.locator('[data-testid="stMetric"]')
    expect(metrics).to_have_count(6)
    expect(metrics.first).to_contain_text("Patients")
    return [value.inner_text() for value in page.locator('[data-testid="stMetricValue"]').all()]


def test_two_dashboards_on_one_postgresql_show_the_same_whole_imports_while_they_run(
    chromium: Browser, postgres_url: str, tmp_path: Path
) -> None:
    """Two dashboard processes on one PostgreSQL store while two imports of overlapping files
    run; each dashboard only ever shows whole files, and both show the same figures afterwards."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from db.accounts import create_user
    from db.migrate import upgrade
    from db.session import make_engine, make_session_factory
    from tests.test_concurrency import _file, start_imports

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine, timezone="UTC")
    password = "night shift 2026"
    with make_session_factory(engine).begin() as session:
        create_user(
            session, username="ward", role="admin", teams=[], password=password, now=datetime.now(UTC)
        )
    engine.dispose()
    _file(tmp_path / "a.csv", range(0, 120), range(0, 20))
    _file(tmp_path / "b.csv", range(60, 180), range(0, 20))
    env = {
        **os.environ,
        "MONITOR_DATABASE_URL": postgres_url,
        "MONITOR_SEED_DEMO": "0",
        "MONITOR_CACHE_SECONDS": "1",
    }
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_served(env, tmp_path / f"server-{n}.log")) for n in (1, 2)]
        pages = []
        for _ in servers:
            context = chromium.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            stack.callback(context.close)
            pages.append(context.new_page())
        imports = start_imports([tmp_path / "a.csv", tmp_path / "b.csv"], env)
        seen: list[tuple[int, bool, str]] = []
        while True:
            running = any(process.poll() is None for process in imports)
            for number, (page, base) in enumerate(zip(pages, servers, strict=True)):
                seen.append((number, running, _worklist_figures(page, base, "ward", password)[0]))
            if not running:
                break
        for process in imports:
            assert process.wait(timeout=600) == 0, process.stderr.read()
        time.sleep(1.5)  # past the cache's lifetime
        final = [
            _worklist_figures(page, base, "ward", password) for page, base in zip(pages, servers, strict=True)
        ]
    print(f"patients shown by (dashboard, imports running): {seen}")
    assert {patients for _, _, patients in seen} <= {"0", "120", "180"}  # whole files only
    assert any(running for _, running, _ in seen)
    assert final[0] == final[1] and final[0][0] == "180"


def test_the_worklist_downloads_as_csv_and_the_download_is_audited(dashboard: str, page: Page) -> None:
    """The CSV is written when the button is clicked (not on every rerun), and the click is audited."""
    import csv
    import sqlite3

    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    button = page.get_by_role("button", name="Download this list (CSV)")
    expect(button).to_be_visible()
    with page.expect_download() as download:
        button.click()
    text = Path(download.value.path()).read_text()
    lines = text.splitlines()
    assert (
        lines[0].startswith("Priority,Why,Patient ID,") and len(lines) >= 62
    )  # header, 60 demo + 2 imported
    assert any(row[2] == "MRN1001" for row in csv.reader(lines[1:]))  # a reason may hold a comma
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(SERVER_LOGS["store"]) as connection:
            exports = connection.execute(
                "SELECT username, details FROM audit_log WHERE action = 'export' ORDER BY id DESC"
            ).fetchall()
        if exports or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert exports and exports[0][0] == "admin" and "worklist" in exports[0][1], exports


def test_the_patient_page_prints_a_pdf_summary(dashboard: str, page: Page, tmp_path: Path) -> None:
    """The patient page's "Print summary (PDF)" downloads the summary, laid out when clicked, as real text."""
    import subprocess

    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Patient timeline").click()
    expect(page).to_have_url(f"{dashboard}/patient")
    button = page.get_by_role("button", name="Print summary (PDF)")
    expect(button).to_be_visible()
    with page.expect_download() as download:
        button.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("summary-") and saved.suffix == ".pdf"
    assert saved.read_bytes().startswith(b"%PDF-")
    words = subprocess.run(["pdftotext", str(saved), "-"], capture_output=True, text=True).stdout
    assert "Patient summary" in words and "Decision support, not a diagnosis" in words
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_the_server_log_names_no_patient(dashboard: str, page: Page) -> None:
    """After pages are used (here a sign-in, the worklist, a search, a timeline; in a full run every test
    above as well): the server's output holds no identifier, name or birth date of any patient."""
    import sqlite3

    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    page.get_by_label("Search identifier or name").fill("MRN1001")
    page.keyboard.press("Enter")
    expect(_grid_column(page, 3)).to_have_text(["MRN1001"])
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Patient timeline").click()
    expect(page.get_by_role("heading", name="Patient timeline", level=1)).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg').first).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    log = SERVER_LOGS["dashboard"].read_text(errors="replace")
    with sqlite3.connect(SERVER_LOGS["store"]) as connection:
        people = connection.execute("SELECT mrn, name, birth_date FROM patient").fetchall()
    secrets = {str(field) for person in people for field in person if field and len(str(field)) >= 5}
    assert len(people) >= 60 and secrets
    leaked = sorted(secret for secret in secrets if secret in log)
    assert not leaked, f"the server log names {leaked[:5]}"
    print(f"server log: {len(log):,} characters, none of {len(secrets):,} identifiers, names, birth dates")


def test_tables_offer_no_export_of_their_own_only_the_audited_download(dashboard: str, page: Page) -> None:
    """Streamlit's table toolbar would download any table as CSV, unaudited and with formulas kept raw: it
    offers no download (client.disableDataExport); the page's own button is the way to export."""
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    table = page.locator('[data-testid="stDataFrame"]').first
    expect(table).to_be_visible()
    table.hover()
    toolbar = page.locator('[data-testid="stElementToolbar"]').first
    expect(toolbar.get_by_role("button", name="Fullscreen")).to_be_visible()  # the toolbar is drawn
    expect(toolbar.get_by_role("button", name="Download as CSV")).to_have_count(0)
    expect(page.get_by_role("button", name="Download this list (CSV)")).to_be_visible()


def test_a_downloaded_file_is_served_without_a_session_only_until_pages_run_twice_more(
    dashboard: str, page: Page, chromium: Browser
) -> None:
    """The residual risk docs/deployment.md describes: Streamlit serves a file made for a download at an
    unguessable /media/ address to any client that has the address (no session needed) until pages have
    run twice more, then forgets it."""
    from playwright.sync_api import expect

    _sign_in(page, dashboard)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download this list (CSV)").click()
    address = download.value.url
    assert re.fullmatch(r"/media/[0-9a-f]{32}\.csv", urlsplit(address).path), address  # a 128-bit hash
    stranger = chromium.new_context()  # no cookie, no session
    try:
        assert stranger.request.get(address).status == 200
        search = page.get_by_label("Search identifier or name")
        for typed in ("MRN1001", "MRN2002"):  # two runs of the page (each waited for: its list drawn)
            search.fill(typed)
            search.press("Enter")
            expect(_grid_column(page, 3).first).to_have_text(typed)
        assert stranger.request.get(address).status == 404
    finally:
        stranger.close()


def test_the_import_page_shows_the_live_feed(dashboard: str, page: Page, tmp_path: Path) -> None:
    """A listener's state, read from the store, on the Import page (a message refused whole: nothing of the
    module's other patients changes)."""
    from playwright.sync_api import expect

    from db.feed import listener_seen
    from services.feed import FeedOptions, FeedWriter, Received
    from tests.test_listener import cbc

    store = open_store(f"sqlite:///{SERVER_LOGS['store']}", timezone="UTC")
    now = datetime.now(UTC)
    writer = FeedWriter(store, FeedOptions(address="10.0.4.12:2575", site_timezone="UTC"), started_at=now)
    assert [a.code for a in writer.write([Received(cbc(9, kind="ADT^A08").encode())])] == ["AR"]
    with store.begin() as session:
        listener_seen(session, "10.0.4.12:2575", pid=4242, host_name="lis-gateway", started_at=now, now=now)
    _sign_in(page, dashboard)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Live feed (MLLP)")).to_be_visible()
    expect(page.get_by_text("Listener on 10.0.4.12:2575: listening")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Not processed (AR)")).to_contain_text("1")
    page.get_by_text("Latest messages with refusals (1)").click()
    # The table is drawn on a canvas; its accessible cells hold the text.
    expect(page.locator('[role="gridcell"]').filter(has_text="MSH-9 is 'ADT^A08'")).to_have_count(1)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "import-live-feed", tmp_path)
