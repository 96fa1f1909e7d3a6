"""Benchmark: the printed reports (PDF), a patient's summary and a team's handover list.

    python -m benchmarks.reports                      # a team of 500 patients, one of them with 1,000 panels
    python -m benchmarks.reports --patients 200 --long-panels 300     # a quicker, smaller run

Builds a SQLite store (not timed) of ``--patients`` patients with ``--panels`` CBCs each plus BENCH-LONG
with ``--long-panels`` CBCs, all in one care team, then times in this process: BENCH-LONG's summary (the
first, which loads the layout engine, then again, as a dashboard that has printed before), and the team's
handover (every patient, BENCH-LONG included), each from the store to the PDF's bytes. Figures only: the
targets are in docs/benchmarks.md (summary of a 1,000-panel patient < 3 s, handover of 500 < 5 s).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.import_csv import SYNTHETIC_FUTURE
from benchmarks.pages import write_cohort


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=499, help="patients besides BENCH-LONG")
    parser.add_argument("--panels", type=int, default=20, help="CBCs of each of those")
    parser.add_argument("--long-panels", type=int, default=1_000, help="CBCs of BENCH-LONG")
    args = parser.parse_args()
    from db.accounts import ensure_teams
    from db.store import open_store
    from services.accounts import SYSTEM
    from services.imports import ImportOptions, import_path
    from services.patients import find_patient
    from services.reports import handover, patient_summary

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cohort.csv"
        results = write_cohort(path, args.patients, args.panels, args.long_panels)
        store = open_store(f"sqlite:///{Path(folder) / 'bench.db'}", timezone="UTC")
        with store.begin() as session:
            ensure_teams(session, ["bench"])
        summary = import_path(
            store,
            path,
            options=ImportOptions(
                imported_by="benchmark",
                site_timezone="UTC",
                future_tolerance=SYNTHETIC_FUTURE,
                teams=("bench",),
            ),
        )
        assert summary.error is None, summary.error
        print(f"store: {args.patients + 1:,} patients in one team, {results:,} results (not timed)")
        now = datetime.now(UTC)
        key = find_patient(store, viewer=SYSTEM, patient_id="BENCH-LONG")
        print(f"{'report':<56}{'seconds':>9}{'pages':>7}")
        for label in ("first in this process", "again"):
            started = time.perf_counter()
            made = patient_summary(
                store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=now, printed_by="b"
            )
            seconds = time.perf_counter() - started
            print(
                f"{'summary of BENCH-LONG (' + str(args.long_panels) + ' panels), ' + label:<56}"
                f"{seconds:>9.2f}{made.pages:>7}"
            )
        started = time.perf_counter()
        made = handover(store, viewer=SYSTEM, team="bench", timezone="UTC", now=now, printed_by="b")
        seconds = time.perf_counter() - started
        label = f"handover of the team ({len(made.patient_keys):,} patients)"
        print(f"{label:<56}{seconds:>9.2f}{made.pages:>7}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
