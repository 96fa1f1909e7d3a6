"""Benchmark: one pass of the live feed's status process, with each patient's history kept between passes
(``db.histories``) against reading it whole.

    python -m benchmarks.status_pass                      # SQLite store of 1,000,000 results, every patient
    python -m benchmarks.status_pass --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds a store of ``--store-results`` results (``benchmarks.feeds.fill``: 2,000+ patients, not timed), then
writes one new CBC for each of ``--patients`` patients through the listener's writer and recomputes their
statuses as the status process does: a first pass that reads every history whole and keeps it, then after
a second CBC each, the same patients recomputed twice from the same store: read whole (its transaction
rolled back) and extended from what was kept. Prints each pass's seconds, the statuses extended and read
whole, the rows and memory kept, and whether both ways stored the same rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.listener import build_store, message


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store-results", type=int, default=1_000_000, help="results in the store first")
    parser.add_argument("--patients", type=int, default=2_000, help="patients given a new CBC each time")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL that may create databases")
    args = parser.parse_args()
    from sqlalchemy import select, text

    from db.histories import Histories
    from db.models import Patient
    from db.status import refresh_patient_status
    from services.config import Config
    from services.feed import FeedOptions, FeedWriter, Received, catch_up
    from services.store import open_store

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        url, drop = build_store(Path(folder), args.store_results, args.postgres)
        try:
            store = open_store(Config(database_url=url, timezone="UTC"))
            with store() as session:
                count = len(session.scalars(select(Patient.id)).all())
            patients = min(args.patients, count)
            now = datetime.now(UTC).replace(microsecond=0)
            writer = FeedWriter(
                store, FeedOptions(address="bench", site_timezone="UTC"), started_at=now, clock=lambda: now
            )
            histories = Histories()

            def feed(round_: int) -> list[int]:
                texts = [message(round_, n, count, now) for n in range(patients)]
                for start in range(0, len(texts), 50):
                    writer.write([Received(t.encode()) for t in texts[start : start + 50]])
                with store() as session:
                    return [int(k) for k in session.scalars(text("SELECT patient_id FROM status_pending"))]

            waiting = feed(1)
            started = time.perf_counter()
            catch_up(store, timezone="UTC", now=now, limit=len(waiting), histories=histories)
            first = time.perf_counter() - started
            print(
                f"first pass, {len(waiting):,} patients read whole and kept: {first:.2f} s "
                f"({histories.rows():,} rows kept, {histories.megabytes():.0f} MB)"
            )
            waiting = feed(2)
            later = now + timedelta(minutes=1)
            session = store()
            try:
                started = time.perf_counter()
                refresh_patient_status(session, waiting, now=later, timezone="UTC")
                whole = time.perf_counter() - started
                session.flush()
                read_whole = session.execute(text("SELECT * FROM patient_status ORDER BY patient_id")).all()
            finally:
                session.rollback()
                session.close()
            started = time.perf_counter()
            catch_up(store, timezone="UTC", now=later, limit=len(waiting), histories=histories)
            extended = time.perf_counter() - started
            with store() as session:
                kept = session.execute(text("SELECT * FROM patient_status ORDER BY patient_id")).all()
            writer.close()
            print(f"second pass, {len(waiting):,} patients with one new CBC each:")
            print(f"  read whole:         {whole:.2f} s")
            print(
                f"  extended from kept: {extended:.2f} s ({histories.extended:,} extended, "
                f"{histories.whole - len(waiting):,} read whole; {histories.rows():,} rows kept, "
                f"{histories.megabytes():.0f} MB)"
            )
            same = [tuple(row) for row in kept] == [tuple(row) for row in read_whole]
            print(f"  the same status rows both ways: {same}")
        finally:
            drop()  # type: ignore[operator]


if __name__ == "__main__":
    main()
