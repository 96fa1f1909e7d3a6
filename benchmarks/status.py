"""Benchmark: the per-patient status (grades, flags, pattern) and treatment cycles over a whole cohort.

    python -m benchmarks.status --results 1000000

Two measurements, each in a fresh process:

* analysis: the pure pandas functions over an in-memory cohort of ``--results`` results (WBC, ANC, ALC,
  haemoglobin, platelets in panels; chemotherapy every 21 days for a third of the patients): limits,
  CTCAE grades, flags with their sentences, the latest panel's pattern, cycles with their readiness;
* store: ``python -m monitor recompute`` on a SQLite store holding the same number of results (imported
  first, not timed): reading the history back and writing every patient's status.

Prints seconds, results per second and peak memory (resident set size) for each.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.import_csv import ANALYTES, SYNTHETIC_FUTURE, generate, peak_rss_mb

ROOT = Path(__file__).parents[1]


def cohort(results: int, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and chemotherapy events: 100 panels per patient, one every 7 days, smooth noisy values."""
    rng = np.random.default_rng(seed)
    panels = results // len(ANALYTES)
    patients = max(1, panels // 100)
    panel = np.arange(panels)
    patient = panel % patients
    visit = panel // patients
    start = pd.Timestamp("2024-01-01", tz="UTC")
    when = start + pd.to_timedelta(visit * 7, unit="D") + pd.to_timedelta(patient % 600, unit="min")
    frames = []
    for analyte, _unit, low, high in ANALYTES:
        level = (low + high) / 2 * (0.55 + 0.35 * np.sin(visit / 9 + patient) + rng.normal(0, 0.08, panels))
        frames.append(
            pd.DataFrame(
                {
                    "patient_key": patient,
                    "panel_id": panel,
                    "collected_at": when,
                    "analyte": analyte,
                    "value": np.round(np.clip(level, 0.01, None), 2),
                    "ref_low": low,
                    "ref_high": high,
                    "status": "final",
                }
            )
        )
    data = pd.concat(frames, ignore_index=True)
    treated = np.arange(0, patients, 3)
    cycles = np.arange(0, 100 * 7, 21)
    events = pd.DataFrame(
        {
            "patient_key": np.repeat(treated, len(cycles)),
            "kind": "chemotherapy",
            "start_at": start + pd.to_timedelta(np.tile(cycles, len(treated)), unit="D"),
            "label": "cycle",
            "details": "bench regimen",
        }
    )
    return data, events


def analysis(results: int) -> dict[str, float]:
    from monitor.analysis.cycles import cycle_trend, treatment_cycles
    from monitor.analysis.flags import LINEAGES, patient_flags
    from monitor.analysis.grading import ctcae_grade, resolve_lower_limit
    from monitor.analysis.patterns import panel_pattern

    data, events = cohort(results)
    started = time.perf_counter()
    limits = resolve_lower_limit(data, overrides=None, lab_ranges=None)
    data = data.assign(lln=limits["lln"])
    data["grade"] = ctcae_grade(data)
    lineages = data[data["analyte"].isin(list(LINEAGES)).to_numpy()]
    flags = patient_flags(lineages, as_of=pd.Timestamp("2026-01-01", tz="UTC"), timezone="UTC")
    last_panel = data.groupby("patient_key")["panel_id"].transform("max")
    pattern = panel_pattern(data[(data["panel_id"] == last_panel).to_numpy()])
    status_seconds = time.perf_counter() - started
    cycles = treatment_cycles(data, events)
    trend = cycle_trend(cycles)
    seconds = time.perf_counter() - started
    assert len(flags) == len(pattern) == data["patient_key"].nunique() and len(trend)
    return {
        "seconds": seconds,
        "status_seconds": status_seconds,
        "cycles_seconds": seconds - status_seconds,
        "patients": int(data["patient_key"].nunique()),
        "cycles": len(cycles),
        "peak_mb": peak_rss_mb(),
    }


# The same figures the status needs, as one DuckDB query (the recompute baseline): per patient and lineage,
# the latest value, the length of the current run below the limit, and the 28-day least-squares slope.
DUCKDB_STATUS = """
WITH ordered AS (
    SELECT patient_key, analyte, collected_at, value, value < lln AS below,
           SUM(CASE WHEN value < lln THEN 0 ELSE 1 END)
               OVER (PARTITION BY patient_key, analyte ORDER BY collected_at) AS run_id,
           MAX(collected_at) OVER (PARTITION BY patient_key, analyte) AS latest_at
    FROM results
    WHERE analyte IN ('wbc', 'anc', 'alc')
),
last_run AS (
    SELECT patient_key, analyte, MAX(run_id) AS run_id FROM ordered GROUP BY ALL
)
SELECT o.patient_key, o.analyte,
       arg_max(o.value, o.collected_at) AS latest,
       COUNT(*) FILTER (WHERE o.below AND o.run_id = r.run_id) AS run_results,
       regr_slope(o.value, epoch(o.collected_at) / 86400.0)
           FILTER (WHERE o.collected_at >= o.latest_at - INTERVAL 28 DAY) AS slope_per_day
FROM ordered o JOIN last_run r USING (patient_key, analyte)
GROUP BY o.patient_key, o.analyte
"""


def duckdb_baseline(results: int) -> dict[str, float]:
    """The baseline: DuckDB computing latest value, run length and slope over the same in-memory data."""
    import duckdb

    from monitor.analysis.grading import resolve_lower_limit

    data, _events = cohort(results)
    data = data.assign(lln=resolve_lower_limit(data, overrides=None, lab_ranges=None)["lln"])
    connection = duckdb.connect()
    connection.register("results", data)
    started = time.perf_counter()
    found = connection.execute(DUCKDB_STATUS).fetch_df()
    seconds = time.perf_counter() - started
    assert len(found) == 3 * data["patient_key"].nunique()
    return {"seconds": seconds, "peak_mb": peak_rss_mb()}


def store(results: int) -> dict[str, float]:
    from datetime import UTC, datetime

    from db.status import refresh_all_status
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        generate(path, results)
        factory = open_store(f"sqlite:///{Path(folder) / 'bench.db'}", timezone="UTC")
        summary = import_path(
            factory,
            path,
            options=ImportOptions(
                imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
            ),
        )
        assert summary.error is None, summary.error
        imported_mb = peak_rss_mb()
        started = time.perf_counter()
        with factory.begin() as session:
            patients = refresh_all_status(session, now=datetime.now(UTC), timezone="UTC")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "patients": patients, "peak_mb": peak_rss_mb(), "import_peak_mb": imported_mb}


def _measure(step: str, results: int) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.status", "--step", step, "--results", str(results)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--step", choices=["analysis", "store", "duckdb"])
    args = parser.parse_args()
    if args.step:
        steps = {"analysis": analysis, "store": store, "duckdb": duckdb_baseline}
        print(json.dumps(steps[args.step](args.results)))
        return
    import sqlite3

    versions = f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, pandas {pd.__version__}"
    print(f"machine: {platform.machine()}, {_cores()} cores, {versions}")
    done = _measure("analysis", args.results)
    print(f"cohort: {args.results:,} results, {done['patients']:,} patients, {done['cycles']:,} cycles")
    print(f"{'step':<48}{'seconds':>9}{'results/s':>12}{'peak MB':>10}")
    rows = [
        ("analysis: limits, grades, flags, pattern", done["status_seconds"], done["peak_mb"]),
        ("analysis: cycles and their trend", done["cycles_seconds"], done["peak_mb"]),
    ]
    stored = _measure("store", args.results)
    rows.append(("store: python -m monitor recompute (SQLite)", stored["seconds"], stored["peak_mb"]))
    try:
        duck = _measure("duckdb", args.results)
    except subprocess.CalledProcessError:
        duck = None  # duckdb is a development dependency (requirements-dev.txt)
    if duck is not None:
        rows.append(("baseline: one DuckDB query (latest, run, slope)", duck["seconds"], duck["peak_mb"]))
    for name, seconds, peak in rows:
        print(f"{name:<48}{seconds:>9.2f}{args.results / seconds:>12,.0f}{peak:>10.0f}")
    print("(the store step's peak includes importing the file first, in the same process)")
    if duck is not None:
        analysis_ratio = done["status_seconds"] / duck["seconds"]
        print(f"ratio analysis (limits, grades, flags, pattern) / DuckDB: {analysis_ratio:.1f}")
        print(f"ratio store recompute / DuckDB: {stored['seconds'] / duck['seconds']:.1f}  (target <= 3)")


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
