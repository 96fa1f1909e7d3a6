"""Every performance figure of the product in one run, each next to its baseline measured in the same run
and its target (docs/benchmarks.md: the targets and the recorded runs).

    python -m benchmarks              # 10,000 patients, 1,000,000 panels, 8,000,000 results
    python -m benchmarks --patients 1000 --panels 100000    # a quicker, smaller run
    python -m benchmarks --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Generates a synthetic cohort (canonical CSV: eight analytes a panel, panels a week apart, chemotherapy
every 21 days for a third of the patients, and one patient with 1,000 panels), then, each step in a fresh
process so that none warms another and each reports its own peak memory:

* import: the raw driver inserting the file's rows into a bare table (SQLite ``executemany``; PostgreSQL
  ``COPY``) vs ``python -m monitor import`` of the same file into an empty store;
* status: ``python -m monitor recompute`` over the whole cohort vs one DuckDB query computing the latest
  value, the current run below the limit and the 28-day slope over the same data;
* pages (AppTest): the worklist at this many patients, and the timeline of the 1,000-panel patient.

With ``--postgres`` (a server URL whose user may create databases) the import and status steps also run on
a fresh PostgreSQL database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.import_csv import SYNTHETIC_FUTURE, TreePeak, peak_rss_mb, postgres_raw
from benchmarks.status import DUCKDB_STATUS
from monitor.formats.csv_long import HEADER

ROOT = Path(__file__).parents[1]
# Eight analytes a panel, with the lab's range sent beside each (as most lab exports do).
ANALYTES = (
    ("wbc", "10^9/L", 4.0, 11.0),
    ("anc", "10^9/L", 1.8, 7.7),
    ("alc", "10^9/L", 1.0, 4.8),
    ("amc", "10^9/L", 0.2, 1.0),
    ("aec", "10^9/L", 0.0, 0.5),
    ("abc", "10^9/L", 0.0, 0.1),
    ("hgb", "g/dL", 12.0, 16.0),
    ("plt", "10^9/L", 150.0, 450.0),
)
LONG_PANELS = 1_000
PANELS_PER_WRITE = 100_000


def generate(folder: Path, patients: int, panels: int) -> tuple[Path, Path, int]:
    """The cohort's results CSV and chemotherapy events CSV; returns their paths and the result count."""
    results, events = folder / "cohort.csv", folder / "events.csv"
    per_patient = max(1, panels // patients)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    count = 0
    with results.open("w", newline="") as handle:
        handle.write(",".join(HEADER) + "\n")
        step = PANELS_PER_WRITE
        batches = [np.arange(a, min(a + step, panels)) for a in range(0, panels, step)]
        batches.append(np.arange(panels, panels + LONG_PANELS))  # the long patient, last
        for panel in batches:
            long = panel >= panels
            patient = np.where(long, patients, panel % patients)
            visit = np.where(long, panel - panels, panel // patients)
            when = start + pd.to_timedelta(visit * 7, unit="D") + pd.to_timedelta(patient % 600, unit="min")
            mrn = pd.Series(patient).map("B{:06d}".format).where(~long, "BENCH-LONG")
            collected = when.strftime("%Y-%m-%dT%H:%M:%SZ")  # once a batch, shared by its analytes
            accession = pd.Series(panel).map("A{:09d}".format)
            frames = []
            for number, (analyte, unit, low, high) in enumerate(ANALYTES):
                wave = 0.6 + 0.35 * np.sin(visit / 9 + patient + number)
                frames.append(
                    pd.DataFrame(
                        {
                            "patient_id": mrn,
                            "collected_at": collected,
                            "analyte": analyte,
                            "value": np.round((low + high) / 2 * wave + 0.01, 2),
                            "unit": unit,
                            "ref_low": low,
                            "ref_high": high,
                            "lab": "BENCH",
                            "accession": accession,
                            "status": "final",
                            "_order": np.arange(len(panel)) * len(ANALYTES) + number,
                        }
                    )
                )
            chunk = pd.concat(frames, ignore_index=True).sort_values("_order", kind="stable")
            chunk[list(HEADER)].to_csv(handle, header=False, index=False)
            count += len(chunk)
    treated = np.arange(0, patients, 3)
    days = np.arange(0, per_patient * 7, 21)
    pd.DataFrame(
        {
            "patient_id": pd.Series(np.repeat(treated, len(days))).map("B{:06d}".format),
            "kind": "chemotherapy",
            "start": (start + pd.to_timedelta(np.tile(days, len(treated)), unit="D")).strftime("%Y-%m-%d"),
            "end": "",
            "label": "cycle",
        }
    ).to_csv(events, index=False)
    return results, events, count


# Steps, each run in a fresh process (``--step``); each prints one JSON line of figures.


def step_sqlite_raw(work: Path) -> dict[str, float]:
    """Baseline: the csv module's rows inserted with one sqlite3 executemany into a bare table."""
    started = time.perf_counter()
    connection = sqlite3.connect(work / "raw.db")
    connection.execute(f"CREATE TABLE result_raw ({', '.join(f'{name} TEXT' for name in HEADER)})")
    with (work / "cohort.csv").open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        connection.executemany(f"INSERT INTO result_raw VALUES ({', '.join('?' for _ in HEADER)})", rows)
    connection.commit()
    connection.close()
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}


def step_postgres_raw(work: Path, url: str) -> dict[str, float]:
    """Baseline: PostgreSQL's COPY of the file into a bare table (psycopg, the driver the store uses)."""
    return postgres_raw(work / "cohort.csv", url)


def step_import(work: Path, url: str) -> dict[str, float]:
    """The product: the results file imported into an empty store (schema created first, not timed)."""
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    factory = open_store(url, timezone="UTC")
    started = time.perf_counter()
    summary = import_path(
        factory,
        work / "cohort.csv",
        options=ImportOptions(
            imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
        ),
    )
    seconds = time.perf_counter() - started
    assert summary.error is None and not len(summary.rejected), summary
    events = import_path(
        factory,
        work / "events.csv",
        options=ImportOptions(
            imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
        ),
    )  # for the status step
    assert events.error is None and not len(events.rejected), events
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "accepted": summary.accepted}


def step_recompute(work: Path, url: str) -> dict[str, float]:
    """The product: every patient's status recomputed from the store (`python -m monitor recompute`)."""
    from db.store import open_store
    from services.admin import recompute_all

    factory = open_store(url, timezone="UTC")
    started = time.perf_counter()
    # As the command does it: worker processes compute the passes when the store is large enough; their
    # memory and this process's are summed as they run (sampled), and never less than this one's peak.
    with TreePeak() as tree:
        patients = recompute_all(factory, now=datetime.now(UTC), timezone="UTC", beside=True)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": max(tree.peak_mb, own), "patients": patients}


def step_duckdb(work: Path) -> dict[str, float]:
    """Baseline: one DuckDB query over the same results (loaded first, not timed; the lab's lower limit)."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE results AS SELECT patient_id AS patient_key, analyte, "
        "CAST(collected_at AS TIMESTAMPTZ) AS collected_at, CAST(value AS DOUBLE) AS value, "
        f"CAST(ref_low AS DOUBLE) AS lln FROM read_csv('{work / 'cohort.csv'}', all_varchar = true)"
    )
    started = time.perf_counter()
    found = connection.execute(DUCKDB_STATUS).fetchall()
    seconds = time.perf_counter() - started
    assert found
    return {"seconds": seconds, "peak_mb": peak_rss_mb()}


# The targets the figures are held to (docs/benchmarks.md): the import within 3x its raw-driver baseline,
# the whole cohort's status within 5x one DuckDB query computing the same latest values, runs and slopes.
RATIO_TARGETS = {"import": 3.0, "status": 5.0}
RERUN_TARGETS = {"worklist": 1.0, "patient page": 0.5}
PEAK_TARGET_MB = 1_500


def step_pages(work: Path, url: str) -> dict[str, float]:
    """AppTest: the worklist and the long patient's timeline, each first run and rerun."""
    from benchmarks.pages import timed_pages

    figures = dict(timed_pages(url))
    return {**figures, "peak_mb": peak_rss_mb()}


STEPS = {
    "sqlite-raw": lambda work, url: step_sqlite_raw(work),
    "postgres-raw": step_postgres_raw,
    "import": step_import,
    "recompute": step_recompute,
    "duckdb": lambda work, url: step_duckdb(work),
    "pages": step_pages,
}


def _run(step: str, work: Path, url: str = "") -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks", "--step", step, "--work", str(work), "--url", url]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _postgres_database(admin_url: str) -> tuple[str, object]:
    """A fresh, migrated database on the server of ``admin_url``: its URL and a function dropping it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    from db.migrate import upgrade
    from db.session import make_engine

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine, timezone="UTC")
    engine.dispose()
    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--panels", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("MONITOR_BENCH_POSTGRES_URL", ""))
    parser.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args.work, args.url)))
        return

    import duckdb
    import sqlalchemy

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, pandas {pd.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"DuckDB {duckdb.__version__}"
    )
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        _, _, results = generate(work, args.patients, args.panels)
        size = (work / "cohort.csv").stat().st_size / 1e6
        print(
            f"cohort: {args.patients + 1:,} patients, {args.panels + LONG_PANELS:,} panels, "
            f"{results:,} results ({size:,.0f} MB of CSV, generated in {time.perf_counter() - started:.0f} s)"
        )
        rows: list[tuple[str, dict[str, float], dict[str, float]]] = []  # step, its figures, its baseline
        sqlite_url = f"sqlite:///{work / 'store.db'}"
        rows.append(("import (SQLite)", _run("import", work, sqlite_url), _run("sqlite-raw", work)))
        duck = _run("duckdb", work)
        rows.append(("status recompute (SQLite)", _run("recompute", work, sqlite_url), duck))
        pages = _run("pages", work, sqlite_url)
        if args.postgres:
            url, drop = _postgres_database(args.postgres)
            try:
                copied = _run("postgres-raw", work, url)
                rows.append(("import (PostgreSQL)", _run("import", work, url), copied))
                rows.append(("status recompute (PostgreSQL)", _run("recompute", work, url), duck))
            finally:
                drop()
    head = f"{'step':<32}{'seconds':>9}{'results/s':>12}{'peak MB':>9}"
    print(f"{head}   {'baseline':<28}{'seconds':>8}{'ratio':>7}   target")
    baselines = {
        "import (SQLite)": "sqlite3 executemany, bare",
        "import (PostgreSQL)": "COPY into a bare table",
    }
    for name, mine, base in rows:
        label = baselines.get(name, "one DuckDB query")
        rate = results / mine["seconds"]
        ratio = mine["seconds"] / base["seconds"]
        target = RATIO_TARGETS[name.split()[0]]
        print(
            f"{name:<32}{mine['seconds']:>9.2f}{rate:>12,.0f}{mine['peak_mb']:>9.0f}"
            f"   {label:<28}{base['seconds']:>8.2f}{ratio:>7.1f}"
            f"   ratio <= {target:g}: {_verdict(ratio <= target)}"
        )
    print(f"{'page (AppTest, SQLite)':<48}{'seconds':>9}   target")
    for name, seconds in pages.items():
        if name == "peak_mb":
            continue
        target = next((limit for kind, limit in RERUN_TARGETS.items() if name.startswith(kind)), None)
        verdict = ""
        if target is not None and name.endswith("rerun"):
            verdict = f"< {target:g} s: {_verdict(seconds < target)}"
        print(f"{name:<48}{seconds:>9.2f}   {verdict}")
    peak = max([pages["peak_mb"], *(mine["peak_mb"] for _, mine, _ in rows)])
    print(
        f"peak memory of the pages step: {pages['peak_mb']:.0f} MB; largest of any step: {peak:.0f} MB "
        f"(< {PEAK_TARGET_MB:,} MB: {_verdict(peak < PEAK_TARGET_MB)})"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
