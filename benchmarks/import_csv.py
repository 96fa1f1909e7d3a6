"""Benchmark: importing a canonical long CSV vs the raw driver inserting the same rows.

    python -m benchmarks.import_csv --results 1000000
    python -m benchmarks.import_csv --results 1000000 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Prints the machine, versions, the times, the ratios and each step's peak memory (resident set size).
Each measurement runs in a fresh process on a fresh SQLite file (or a fresh PostgreSQL database, dropped
afterwards), so one cannot warm the other. Beside each baseline, the floor of the store's own schema: the
raw driver writing the same rows, already built in memory, into the store's tables.
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
import threading
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
    """This process's peak resident memory, plus the largest of its ended child processes' (an import
    of a large file reads ahead in a second process: both are counted, as if they peaked together)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


class TreePeak:
    """The most resident memory this process and its child processes held at once while the block ran,
    sampled every 50 ms from Linux's /proc (``peak_mb``; 0 where /proc cannot tell)::

        with TreePeak() as tree:
            ...
        tree.peak_mb
    """

    def __init__(self, every: float = 0.05) -> None:
        self.every, self.peak_mb = every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, sum(_rss_kb(pid) for pid in [os.getpid(), *_children()]) / 1024)
            if self._stop.wait(self.every):
                return


def _children() -> list[int]:
    """The process ids of this process's children (each thread's)."""
    found: list[int] = []
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            found += [int(pid) for pid in task.read_text().split()]
        except OSError:
            continue
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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


def postgres_raw(path: Path, url: str) -> dict[str, float]:
    """The PostgreSQL baseline: the file's rows copied (``COPY ... FORMAT csv``) into a bare table of text."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(_dsn(url)) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE result_raw ({', '.join(f'{name} text' for name in HEADER)})")
        with (
            path.open("rb") as handle,
            cursor.copy("COPY result_raw FROM STDIN (FORMAT csv, HEADER true)") as copy,
        ):
            while block := handle.read(1 << 20):
                copy.write(block)
        connection.commit()
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}


def postgres_store_floor(path: Path, url: str) -> dict[str, float]:
    """The floor of the store's schema on PostgreSQL: patients, panels and results, ids assigned here, copied
    with ``COPY`` from text built in memory first (not timed), with the store's keys, foreign keys and
    checks. ``write_seconds`` times the copies and the commit."""
    import io

    import psycopg

    patients: dict[str, int] = {}
    panels: dict[str, int] = {}
    people, specimens, results = io.StringIO(), io.StringIO(), io.StringIO()
    now = "2026-01-01 00:00:00+00"
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        for mrn, when, analyte, value, unit, low, high, _lab, accession, status in rows:
            if mrn not in patients:
                patients[mrn] = len(patients) + 1
                people.write(f'{patients[mrn]},{mrn},"",false,{now}\n')
            if accession not in panels:
                panels[accession] = len(panels) + 1
                specimens.write(f"{panels[accession]},{patients[mrn]},1,{accession},{when},1\n")
            results.write(
                f"{panels[accession]},{analyte},{value},{unit},{value},{unit},{low},{high},{status},false,1,true,1,{now}\n"
            )
    with psycopg.connect(_dsn(url)) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO lab (id, code, name, is_synthetic) VALUES (1, 'BENCH', 'BENCH', false)")
        cursor.execute(
            "INSERT INTO import_batch (id, file_name, content_sha256, format, imported_by, imported_at, "
            "accepted, unchanged, superseded, rejected) VALUES (1, 'b', 'x', 'csv', 'b', now(), 0, 0, 0, 0)"
        )
        connection.commit()
        started = time.perf_counter()
        for statement, text in (
            ("COPY patient (id, mrn, assigning_authority, is_synthetic, created_at)", people),
            ("COPY panel (id, patient_id, lab_id, accession, collected_at, batch_id)", specimens),
            (
                "COPY result (panel_id, analyte, value_raw, unit_raw, value, unit, ref_low, ref_high, "
                "status, derived, version, is_current, batch_id, created_at)",
                results,
            ),
        ):
            with cursor.copy(f"{statement} FROM STDIN (FORMAT csv)") as copy:
                copy.write(text.getvalue())
        connection.commit()
        written = time.perf_counter() - started
    return {"seconds": written, "write_seconds": written, "peak_mb": peak_rss_mb()}


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def project_import(path: Path, database: Path | str) -> dict[str, float]:
    """The product: `python -m monitor import` on a fresh store (schema created first, not timed)."""
    from db.store import open_store
    from services.import_file import reads_beside
    from services.imports import ImportOptions, import_path

    url = str(database) if "://" in str(database) else f"sqlite:///{database}"
    factory = open_store(url, timezone="UTC")
    beside = reads_beside(path.stat().st_size)  # as the import will judge it: a core idle, or not
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
    figures = {"seconds": seconds, "peak_mb": peak_rss_mb(), "accepted": summary.accepted}
    return {**figures, "read_beside": float(beside)}


def _measure(step: str, path: Path, postgres: str = "") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        drop = None
        if postgres:
            from benchmarks.__main__ import _postgres_database

            database, drop = _postgres_database(postgres)
        else:
            database = str(Path(folder) / "bench.db")
        command = [sys.executable, "-m", "benchmarks.import_csv", "--step", step, "--file", str(path)]
        try:
            out = subprocess.run(
                [*command, "--database", database],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parents[1],
            )
            if out.returncode:
                raise SystemExit(f"step {step} failed:\n{out.stderr[-3000:]}")
        finally:
            if drop is not None:
                drop()  # type: ignore[operator]
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="", help="also on PostgreSQL (a URL that may create databases)")
    parser.add_argument("--step", choices=list(STEPS))
    parser.add_argument("--file", type=Path)
    parser.add_argument("--database")
    args = parser.parse_args()
    if args.step:
        database = args.database if "://" in args.database else Path(args.database)
        print(json.dumps(STEPS[args.step](args.file, database)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        generate(path, args.results)
        size = path.stat().st_size / 1e6
        raw = _measure("raw", path)
        raw_store = _measure("raw-store", path)
        project = _measure("project", path)
        if args.postgres:
            copied = _measure("postgres-raw", path, args.postgres)
            copied_store = _measure("postgres-store", path, args.postgres)
            imported = _measure("project", path, args.postgres)
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
    print(f"read ahead in a second process: {'yes' if project['read_beside'] else 'no (no core idle)'}")
    print(f"ratio import / bare-table baseline:   {ratio:.2f}  (target <= 3: {verdict})")
    print(f"ratio import / store-schema baseline: {project['seconds'] / raw_store['seconds']:.2f}")
    if not args.postgres:
        return
    print(f"{'PostgreSQL step':<36}{'seconds':>10}{'results/s':>12}{'peak MB':>10}")
    for label, figures in (
        ("COPY into a bare table (baseline)", copied),
        ("COPY into the store's schema", copied_store),
        ("python -m monitor import", imported),
    ):
        rate = args.results / figures["seconds"]
        print(f"{label:<36}{figures['seconds']:>10.2f}{rate:>12,.0f}{figures['peak_mb']:>10.0f}")
    floor = copied_store["write_seconds"] / copied["seconds"]
    ratio = imported["seconds"] / copied["seconds"]
    print(
        f"store-schema floor (COPY of rows built in memory, keys, foreign keys): {floor:.2f}x the bare COPY"
    )
    print(f"ratio import / bare COPY: {ratio:.2f}  (target <= 3: {'met' if ratio <= 3 else 'MISSED'})")
    print(f"ratio import / store-schema floor: {imported['seconds'] / copied_store['seconds']:.2f}")


STEPS = {
    "raw": raw_driver,
    "raw-store": raw_driver_into_store,
    "project": project_import,
    "postgres-raw": postgres_raw,
    "postgres-store": postgres_store_floor,
}


if __name__ == "__main__":
    main()
