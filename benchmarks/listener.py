"""Benchmark: the MLLP listener under a sustained feed, as interface engines send it.

    python -m benchmarks.listener                               # SQLite store of 1,000,000 results, 30 s
    python -m benchmarks.listener --store-results 100000 --seconds 10          # a quicker, smaller run
    python -m benchmarks.listener --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds a store holding ``--store-results`` results of the canonical CSV of ``benchmarks.import_csv`` (its
2,000+ patients, not timed), starts ``python -m monitor listen`` on it in a process of its own, then plays
``--connections`` interface engines for ``--seconds``: each sends ORU^R01 messages (one CBC of five LOINC
coded OBX, for the store's patients, so that each extends a history) one at a time, waiting for each ACK
before the next, as an engine does. Prints the messages acknowledged a second, the ACK latency (median,
95th and 99th percentile, worst, from the block sent to its ACK read), the ACK codes, how long after the
last ACK the status of every patient the feed touched was recomputed, and what a dashboard read (the
worklist, then one patient's timeline) took while the feed ran, in a process of its own. Figures only:
the targets are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).parents[1]
CODES = (
    ("6690-2", "Leukocytes", "10*3/uL", "4.0-11.0", 3.9),
    ("751-8", "Neutrophils", "10*3/uL", "1.8-7.7", 1.6),
    ("731-0", "Lymphocytes", "10*3/uL", "1.0-4.8", 1.2),
    ("718-7", "Hemoglobin", "g/dL", "12.0-16.0", 11.8),
    ("777-3", "Platelets", "10*3/uL", "150-450", 180),
)


def message(sender: int, number: int, patients: int, now: datetime) -> str:
    """One CBC message: control ID and accession unique to the sender and number; the patient one of the
    store's; collected in the last hours (before ``now``), a minute apart per message of a patient."""
    patient = (number * 7919 + sender * 104_729) % patients
    when = now - timedelta(hours=6) + timedelta(seconds=(number % 5000) * 4 + sender)
    stamp = f"{when:%Y%m%d%H%M%S}+0000"
    segments = [
        f"MSH|^~\\&|LIS|BENCH|MONITOR|WARD|{stamp}||ORU^R01^ORU_R01|S{sender}M{number:08d}|P|2.5.1",
        f"PID|1||B{patient:06d}^^^^MR||Bench^P{patient}",
        f"OBR|1||S{sender}A{number:09d}|57021-8^CBC^LN|||{stamp}",
    ]
    for i, (code, name, unit, limits, value) in enumerate(CODES):
        shown = round(value * (0.7 + ((number + i) % 7) / 10), 2)
        segments.append(f"OBX|{i + 1}|NM|{code}^{name}^LN||{shown}|{unit}|{limits}||||F")
    return "\r".join(segments)


def build_store(folder: Path, results: int, postgres: str) -> tuple[str, object]:
    """The store's URL (SQLite in ``folder``, or a new PostgreSQL database) holding ``results`` results, and
    a function that removes it."""
    from benchmarks.feeds import fill

    if postgres:
        from benchmarks.__main__ import _postgres_database

        url, drop = _postgres_database(postgres)
    else:
        url, drop = f"sqlite:///{folder / 'listener.db'}", (lambda: None)
    fill(url, folder, results)
    return url, drop


def start_listener(url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "MONITOR_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "listen", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on " in line:
                return process, int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        if process.poll() is not None:
            raise SystemExit("the listener did not start:\n" + log.read_text())
        time.sleep(0.05)
    raise SystemExit("the listener did not start in 2 minutes")


async def play(
    port: int, connections: int, seconds: float, patients: int
) -> tuple[list[float], Counter[str]]:
    """``connections`` engines sending for ``seconds``: every ACK latency (s) and the ACK codes."""
    from hl7.mllp import open_hl7_connection

    latencies: list[float] = []
    codes: Counter[str] = Counter()
    now = datetime.now(UTC)
    stop = time.perf_counter() + seconds

    async def engine(sender: int) -> None:
        reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
        number = 0
        try:
            while time.perf_counter() < stop:
                block = message(sender, number, patients, now).encode()
                sent = time.perf_counter()
                writer.writeblock(block)
                await writer.drain()
                ack = await reader.readblock()
                latencies.append(time.perf_counter() - sent)
                codes[ack.split(b"MSA|", 1)[1][:2].decode()] += 1
                number += 1
        finally:
            writer.close()

    await asyncio.gather(*(engine(sender) for sender in range(connections)))
    return latencies, codes


# A dashboard reading while the feed runs (a process of its own): the worklist, then one patient's page.
DASHBOARD_READS = """
import sys, time, json
from datetime import UTC, datetime
from services.accounts import SYSTEM
from services.store import open_store
from services.config import Config
from services.worklist import worklist
from services.patients import find_patient, patient_view

store = open_store(Config(database_url=sys.argv[1]))
until = time.monotonic() + float(sys.argv[2])
lists, pages = [], []
while time.monotonic() < until:
    started = time.perf_counter()
    worklist(store, viewer=SYSTEM, timezone="UTC", now=datetime.now(UTC))
    lists.append(time.perf_counter() - started)
    started = time.perf_counter()
    key = find_patient(store, viewer=SYSTEM, patient_id="B000001")
    patient_view(store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=datetime.now(UTC))
    pages.append(time.perf_counter() - started)
    time.sleep(1.0)
print(json.dumps({"worklist": lists, "patient": pages}))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store-results", type=int, default=1_000_000, help="results in the store first")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the engines send")
    parser.add_argument("--connections", type=int, default=4, help="engines sending at once")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL that may create databases")
    parser.add_argument("--no-dashboard", action="store_true", help="no dashboard reads during the run")
    args = parser.parse_args()
    patients = max(1, args.store_results // 5 // 100)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        url, drop = build_store(work, args.store_results, args.postgres)
        kind = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"{kind} store of {args.store_results:,} results ({patients:,} patients) built in "
            f"{time.perf_counter() - started:.0f} s"
        )
        process, port = start_listener(url, work / "listener.log")
        reads = None
        idle = ""
        try:
            if not args.no_dashboard:
                # The same reads with the listener idle first: what "usable" is compared with.
                idle = subprocess.run(
                    [sys.executable, "-c", DASHBOARD_READS, url, "4"],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                reads = subprocess.Popen(
                    [sys.executable, "-c", DASHBOARD_READS, url, str(args.seconds)],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    stdout=subprocess.PIPE,
                    text=True,
                )
            wall = time.perf_counter()
            latencies, codes = asyncio.run(play(port, args.connections, args.seconds, patients))
            wall = time.perf_counter() - wall
            last_ack = time.perf_counter()
            waited = _statuses_done(url)
            lag = time.perf_counter() - last_ack
        finally:
            process.terminate()
            process.wait(120)
            dashboard = reads.communicate(timeout=300)[0] if reads is not None else ""
            log = (work / "listener.log").read_text()
            drop()  # type: ignore[operator]
    sent = len(latencies)
    print(
        f"{args.connections} connections, {args.seconds:.0f} s: {sent:,} messages acknowledged, "
        f"{sent / wall:,.1f} messages/s ({sent * 5 / wall:,.0f} results/s)"
    )
    print(
        f"ACK latency ms: median {statistics.median(latencies) * 1000:.1f}, "
        f"p95 {percentile(latencies, 0.95) * 1000:.1f}, p99 {percentile(latencies, 0.99) * 1000:.1f}, "
        f"worst {max(latencies) * 1000:.1f}"
    )
    print("ACK codes: " + ", ".join(f"{code} {count:,}" for code, count in sorted(codes.items())))
    print(f"statuses: all recomputed {lag:.1f} s after the last ACK ({waited} patients were waiting then)")
    if dashboard:
        import json

        timings = json.loads(dashboard.strip().splitlines()[-1])
        quiet = json.loads(idle.strip().splitlines()[-1]) if idle.strip() else {}
        for name, values in quiet.items():
            if values:
                median = statistics.median(values) * 1000
                print(f"dashboard {name} read with the listener idle: median {median:.0f} ms")
        for name, values in timings.items():
            if values:
                print(
                    f"dashboard {name} read during the feed: "
                    f"median {statistics.median(values) * 1000:.0f} ms, "
                    f"worst {max(values) * 1000:.0f} ms ({len(values)} reads)"
                )
    passes = [
        line.split("status recomputed ", 1)[1] for line in log.splitlines() if "status recomputed" in line
    ]
    print(f"status passes during the run and after it: {len(passes)}")
    for line in passes:
        print(f"  recomputed {line}")


def _statuses_done(url: str) -> int:
    """Wait until no patient waits for its status; return how many were waiting at first."""
    from db.feed import waiting
    from services.config import Config
    from services.store import open_store

    store = open_store(Config(database_url=url))
    with store() as session:
        first = waiting(session)
    while True:
        with store() as session:
            if not waiting(session):
                return first
        time.sleep(0.1)


if __name__ == "__main__":
    main()
