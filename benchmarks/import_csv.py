"""Benchmark: importing a canonical long CSV vs the raw sqlite3 driver inserting the same rows.

    python -m benchmarks.import_csv --results 1000000

Prints the machine, versions, both times, the ratio and each step's peak memory (resident set size).
Each measurement runs in a fresh process on a fresh SQLite file, so one cannot warm the other.
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
from datetime import date, timedelta
from pathlib import Path

from monitor.formats.csv_long import HEADER

ANALYTES = (
    ("wbc", "10^9/L", 4.0, 11.0),
    ("anc", "10^9/L", 1.8, 7.7),
    ("alc", "10^9/L", 1.0, 4.8),
    ("hgb", "g/dL", 12.0, 16.0),
    ("plt", "10^9/L", 150.0, 450.0),
)
START = date(2020, 1, 1)
# A synthetic cohort of the default scale runs for decades of daily panels from START, past today: its
# imports accept collection times in the future (a real import refuses them; docs/clinical-basis.md,
# Plausible collection times).
SYNTHETIC_FUTURE = timedelta(days=365 * 200)


def generate(path: Path, results: int) -> None:
    """A deterministic file: patients x panels x the five analytes above, values varying smoothly."""
    panels = results // len(ANALYTES)
    patients = max(1, panels // 100)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)  # the canonical format's own header
        for panel in range(panels):
            patient = panel % patients
            day = panel // patients
            date = START + timedelta(days=day)
            when = f"{date.isoformat()}T08:{patient % 60:02d}:00Z"
            for number, (analyte, unit, low, high) in enumerate(ANALYTES):
                value = round(low * (0.6 + ((panel * 7 + number * 13) % 97) / 60), 2)
                writer.writerow(
                    [
                        f"B{patient:06d}",
                        when,
                        analyte,
                        value,
                        unit,
                        low,
                        high,
                        "BENCH",
                        f"A{panel:08d}",
                        "final",
                    ]
                )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_driver(path: Path, database: Path) -> dict[str, float]:
    """The baseline: csv rows inserted with one sqlite3 executemany into a table of the same columns."""
    started = time.perf_counter()
    connection = sqlite3.connect(database)
    connection.execute(
        "CREATE TABLE result_raw (patient_id TEXT, collected_at TEXT, analyte TEXT, value REAL, unit TEXT, "
        "ref_low REAL, ref_high REAL, lab TEXT, accession TEXT, status TEXT)"
    )
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        connection.executemany("INSERT INTO result_raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}


def raw_driver_into_store(path: Path, database: Path) -> dict[str, float]:
    """A second baseline: the raw driver writing the same rows into the store's own schema.

    Patients, panels and results are inserted with one ``executemany`` each (ids assigned here, times
    taken as written, no validation), on a store created by the project's migrations with the project's
    connection settings. ``write_seconds`` times the inserts and the commit alone, from rows already built
    in memory: the floor for this schema, its constraints and its index, whatever an importer does.
    """
    from db.store import open_store

    open_store(f"sqlite:///{database}", timezone="UTC").kw["bind"].dispose()
    started = time.perf_counter()
    connection = sqlite3.connect(database)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
        connection.execute(f"PRAGMA {pragma}")
    now = "2026-01-01 00:00:00.000000"
    connection.execute("INSERT INTO lab (id, code, name, is_synthetic) VALUES (1, 'BENCH', 'BENCH', 0)")
    connection.execute(
        "INSERT INTO import_batch (id, file_name, content_sha256, format, imported_by, imported_at, "
        "accepted, unchanged, superseded, rejected) VALUES (1, 'b', 'x', 'csv', 'b', ?, 0, 0, 0, 0)",
        (now,),
    )
    patients: dict[str, int] = {}
    panels: dict[str, int] = {}
    panel_rows, result_rows = [], []
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        for mrn, when, analyte, value, unit, low, high, _lab, accession, status in rows:
            patient = patients.setdefault(mrn, len(patients) + 1)
            if accession not in panels:
                panels[accession] = len(panels) + 1
                panel_rows.append((panels[accession], patient, 1, accession, when.replace("T", " ")[:19], 1))
            result_rows.append(
                (
                    panels[accession],
                    analyte,
                    value,
                    unit,
                    float(value),
                    unit,
                    float(low),
                    float(high),
                    status,
                    0,
                    1,
                    1,
                    1,
                    now,
                )
            )
    writing = time.perf_counter()
    connection.executemany(
        "INSERT INTO patient (id, mrn, assigning_authority, is_synthetic, created_at) "
        "VALUES (?, ?, '', 0, ?)",
        [(number, mrn, now) for mrn, number in patients.items()],
    )
    connection.executemany(
        "INSERT INTO panel (id, patient_id, lab_id, accession, collected_at, batch_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        panel_rows,
    )
    connection.executemany(
        "INSERT INTO result (panel_id, analyte, value_raw, unit_raw, value, unit, ref_low, ref_high, "
        "status, derived, version, is_current, batch_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        result_rows,
    )
    connection.commit()
    written = time.perf_counter()
    connection.close()
    ended = time.perf_counter()
    return {"seconds": ended - started, "write_seconds": written - writing, "peak_mb": peak_rss_mb()}


def project_import(path: Path, database: Path) -> dict[str, float]:
    """The product: `python -m monitor import` on a fresh store (schema created first, not timed)."""
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    factory = open_store(f"sqlite:///{database}", timezone="UTC")
    started = time.perf_counter()
    summary = import_path(
        factory,
        path,
        options=ImportOptions(
            imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
        ),
    )
    seconds = time.perf_counter() - started
    assert summary.error is None and not len(summary.rejected), summary
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "accepted": summary.accepted}


def _measure(step: str, path: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "benchmarks.import_csv",
            "--step",
            step,
            "--file",
            str(path),
            "--database",
            str(Path(folder) / "bench.db"),
        ]
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--step", choices=["raw", "raw-store", "project"])
    parser.add_argument("--file", type=Path)
    parser.add_argument("--database", type=Path)
    args = parser.parse_args()
    if args.step:
        measure = {"raw": raw_driver, "raw-store": raw_driver_into_store, "project": project_import}[
            args.step
        ]
        print(json.dumps(measure(args.file, args.database)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        generate(path, args.results)
        size = path.stat().st_size / 1e6
        raw = _measure("raw", path)
        raw_store = _measure("raw-store", path)
        project = _measure("project", path)
    import pandas
    import sqlalchemy

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, pandas {pandas.__version__}, SQLAlchemy {sqlalchemy.__version__}"
    )
    print(f"file: {args.results:,} results, {size:.0f} MB")
    print(f"{'step':<36}{'seconds':>10}{'results/s':>12}{'peak MB':>10}")
    for label, figures in (
        ("raw sqlite3, bare table (baseline)", raw),
        ("raw sqlite3, the store's schema", raw_store),
        ("python -m monitor import", project),
    ):
        rate = args.results / figures["seconds"]
        print(f"{label:<36}{figures['seconds']:>10.2f}{rate:>12,.0f}{figures['peak_mb']:>10.0f}")
    floor = raw_store["write_seconds"]
    ratio = project["seconds"] / raw["seconds"]
    print(
        f"store-schema write floor (its inserts and commit, rows already in memory): {floor:.2f} s = "
        f"{floor / raw['seconds']:.2f}x the bare-table baseline"
    )
    verdict = "met" if ratio <= 3 else "MISSED"
    print(f"ratio import / bare-table baseline:   {ratio:.2f}  (target <= 3: {verdict})")
    print(f"ratio import / store-schema baseline: {project['seconds'] / raw_store['seconds']:.2f}")


if __name__ == "__main__":
    main()
