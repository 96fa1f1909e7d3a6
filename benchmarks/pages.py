"""Benchmark: the dashboard's pages at hospital scale, rendered by Streamlit's AppTest.

    python -m benchmarks.pages --patients 10000 --panels 10 --long-panels 1000

Builds a SQLite store (not timed) holding ``--patients`` patients with ``--panels`` CBCs each plus one
patient (BENCH-LONG) with ``--long-panels`` CBCs, then times each page's first run (empty caches) and a
rerun (what a user waits for after a click): the worklist, and the patient timeline of BENCH-LONG.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.import_csv import ANALYTES, SYNTHETIC_FUTURE
from monitor.formats.csv_long import HEADER

ROOT = Path(__file__).parents[1]


def write_cohort(path: Path, patients: int, panels: int, long_panels: int) -> int:
    """The canonical CSV of the cohort; returns the number of results."""
    ids = np.concatenate([np.repeat(np.arange(patients), panels), np.full(long_panels, patients)])
    visit = np.concatenate([np.tile(np.arange(panels), patients), np.arange(long_panels)])
    start = pd.Timestamp("2024-01-01", tz="UTC")
    when = start + pd.to_timedelta(visit * 3, unit="D") + pd.to_timedelta(ids % 600, unit="min")
    mrn = np.where(ids == patients, "BENCH-LONG", pd.Series(ids).map("P{:06d}".format))
    accession = pd.Series(ids).astype(str) + "-" + pd.Series(visit).astype(str)
    frames = []
    for number, (analyte, unit, low, high) in enumerate(ANALYTES):
        level = (low + high) / 2 * (0.6 + 0.35 * np.sin(visit / 7 + ids + number))
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": mrn,
                    "collected_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "analyte": analyte,
                    "value": np.round(level, 2),
                    "unit": unit,
                    "ref_low": low,
                    "ref_high": high,
                    "lab": "BENCH",
                    "accession": accession,
                    "status": "final",
                }
            )
        )
    cohort = pd.concat(frames, ignore_index=True)[list(HEADER)]
    cohort.to_csv(path, index=False)
    return len(cohort)


def timed_pages(url: str) -> list[tuple[str, float]]:
    """First run and rerun of the worklist and of BENCH-LONG's timeline."""
    from streamlit.testing.v1 import AppTest

    os.environ["MONITOR_DATABASE_URL"] = url
    os.environ["MONITOR_SEED_DEMO"] = "0"
    figures = []
    import secrets
    from datetime import UTC, datetime

    from db.accounts import Viewer
    from db.store import open_store
    from services.accounts import SYSTEM, add_user

    # The dashboard reads the signed-in account on every run: the benchmark's administrator must exist.
    add_user(
        open_store(url, timezone="UTC"),
        viewer=SYSTEM,
        username="benchmark",
        role="admin",
        teams=[],
        password=secrets.token_urlsafe(24),
        now=datetime.now(UTC),
    )
    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
    app.session_state["viewer"] = Viewer("benchmark", "admin", None)  # signed in: every patient
    started = time.perf_counter()
    app.run()
    figures.append(("worklist, first run (empty caches)", time.perf_counter() - started))
    assert not app.exception, app.exception
    started = time.perf_counter()
    app.run()
    figures.append(("worklist, rerun", time.perf_counter() - started))
    app.switch_page("app_pages/patient.py").run()
    box = app.selectbox(key="patient_select")
    index = next(i for i, option in enumerate(box.options) if option.startswith("BENCH-LONG"))
    started = time.perf_counter()
    box.select_index(index).run()
    figures.append(("patient page of BENCH-LONG, first run", time.perf_counter() - started))
    assert not app.exception, app.exception
    started = time.perf_counter()
    app.run()
    figures.append(("patient page of BENCH-LONG, rerun", time.perf_counter() - started))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--panels", type=int, default=10)
    parser.add_argument("--long-panels", type=int, default=1_000)
    args = parser.parse_args()
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cohort.csv"
        results = write_cohort(path, args.patients, args.panels, args.long_panels)
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        started = time.perf_counter()
        summary = import_path(
            open_store(url, timezone="UTC"),
            path,
            options=ImportOptions(
                imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
            ),
        )
        assert summary.error is None, summary.error
        print(
            f"store: {args.patients + 1:,} patients, {results:,} results "
            f"(imported in {time.perf_counter() - started:.1f} s, not part of the figures below)"
        )
        print(f"{'page':<48}{'seconds':>9}")
        for name, seconds in timed_pages(url):
            print(f"{name:<48}{seconds:>9.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the whole run: {peak:.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
