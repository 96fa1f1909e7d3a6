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

ANALYTES = (
    ("wbc", "10^9/L", 4.0, 11.0),
    ("anc", "10^9/L", 1.8, 7.7),
    ("alc", "10^9/L", 1.0, 4.8),
    ("hgb", "g/dL", 12.0, 16.0),
    ("plt", "10^9/L", 150.0, 450.0),
)
START = date(2020, 1, 1)
HEADER = [
    "patient_id",
    "collected_at",
    "analyte",
    "value",
    "unit",
    "ref_low",
    "ref_high",
    "lab",
    "accession",
    "status",
]


def generate(path: Path, results: int) -> None:
    """A deterministic file: patients x panels x the five analytes above, values varying smoothly."""
    panels = results // len(ANALYTES)
    patients = max(1, panels // 100)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
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


def project_import(path: Path, database: Path) -> dict[str, float]:
    """The product: `python -m monitor import` on a fresh store (schema created first, not timed)."""
    from db.importer import import_path
    from db.store import open_store

    factory = open_store(f"sqlite:///{database}")
    started = time.perf_counter()
    summary = import_path(factory, path, imported_by="benchmark")
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
    parser.add_argument("--step", choices=["raw", "project"])
    parser.add_argument("--file", type=Path)
    parser.add_argument("--database", type=Path)
    args = parser.parse_args()
    if args.step:
        measure = raw_driver if args.step == "raw" else project_import
        print(json.dumps(measure(args.file, args.database)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        generate(path, args.results)
        size = path.stat().st_size / 1e6
        raw = _measure("raw", path)
        project = _measure("project", path)
    import pandas
    import sqlalchemy

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, pandas {pandas.__version__}, SQLAlchemy {sqlalchemy.__version__}"
    )
    print(f"file: {args.results:,} results, {size:.0f} MB")
    print(f"{'step':<34}{'seconds':>10}{'results/s':>12}{'peak MB':>10}")
    print(
        f"{'raw sqlite3 executemany (baseline)':<34}{raw['seconds']:>10.2f}"
        f"{args.results / raw['seconds']:>12,.0f}{raw['peak_mb']:>10.0f}"
    )
    print(
        f"{'python -m monitor import':<34}{project['seconds']:>10.2f}"
        f"{args.results / project['seconds']:>12,.0f}{project['peak_mb']:>10.0f}"
    )
    print(f"ratio (import / baseline): {project['seconds'] / raw['seconds']:.2f}  (target <= 3)")


if __name__ == "__main__":
    main()
