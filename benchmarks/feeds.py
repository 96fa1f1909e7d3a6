"""Benchmark: reading and importing feeds, an HL7 v2 file and a FHIR NDJSON bulk export.

    python -m benchmarks.feeds                          # 10,000 ORU^R01 messages, 100,000 NDJSON resources
    python -m benchmarks.feeds --messages 1000 --resources 10000       # a quicker, smaller run
    python -m benchmarks.feeds --store-results 1000000  # into a store already holding 1,000,000 results

Generates an HL7 v2 file (ORU^R01 messages of one CBC panel each: five OBX, LOINC coded, 2,000 patients,
named as the canonical CSV of ``benchmarks.import_csv`` names its patients, so that an import into a store
of those results extends their histories and recomputes their status from them)
and an NDJSON file (2,000 Patients, then CBC Observations with their reference ranges), then prints for each
the parser alone (``parse_hl7``, ``parse_fhir`` on the whole text, best of ``--repeat``) and the import of
the file into a fresh SQLite store (or into one holding ``--store-results`` results of a canonical CSV
first), in results a second. Wall-clock and CPU seconds are both printed: on a shared machine the CPU time
is the steadier figure. Figures only: the targets are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

CODES = (
    ("6690-2", "Leukocytes", "10*3/uL", "4.0-11.0", 6.1, 4.0, 11.0),
    ("751-8", "Neutrophils", "10*3/uL", "1.8-7.7", 3.2, 1.8, 7.7),
    ("731-0", "Lymphocytes", "10*3/uL", "1.0-4.8", 1.9, 1.0, 4.8),
    ("718-7", "Hemoglobin", "g/dL", "12.0-16.0", 13.1, 12.0, 16.0),
    ("777-3", "Platelets", "10*3/uL", "150-450", 240, 150.0, 450.0),
)
START = datetime(2025, 1, 1, 8, 0)
PATIENTS = 2000


def hl7_file(path: Path, messages: int) -> int:
    """``messages`` ORU^R01 messages of five OBX each; returns the number of results."""
    with path.open("w", newline="") as out:
        for m in range(messages):
            patient = m % PATIENTS
            when = START + timedelta(days=m // PATIENTS, minutes=patient % 600)
            segments = [
                f"MSH|^~\\&|LIS|BENCH LAB|EHR|WARD|{when:%Y%m%d%H%M%S}||ORU^R01|M{m:08d}|P|2.5.1",
                f"PID|1||B{patient:06d}^^^^MR||Bench^P{patient}",
                f"OBR|1||ACC{m:09d}|57021-8^CBC^LN|||{when:%Y%m%d%H%M}+0000",
            ]
            for i, (code, name, unit, limits, value, _, _) in enumerate(CODES):
                value = round(value * (0.6 + ((m + i) % 9) / 10), 2)
                segments.append(f"OBX|{i + 1}|NM|{code}^{name}^LN||{value}|{unit}|{limits}||||F")
            out.write("\r".join(segments) + "\r\n")
    return messages * len(CODES)


def ndjson_file(path: Path, resources: int) -> int:
    """2,000 Patients, then CBC Observations up to ``resources`` lines; returns the number of results."""
    compact = {"separators": (",", ":")}
    with path.open("w") as out:
        for p in range(PATIENTS):
            patient = {
                "resourceType": "Patient",
                "id": f"p{p}",
                "identifier": [{"value": f"B{p:06d}"}],
                "name": [{"family": "Bench", "given": [f"P{p}"]}],
                "gender": "female",
                "birthDate": "1980-01-31",
            }
            out.write(json.dumps(patient, **compact) + "\n")  # type: ignore[arg-type]
        for i in range(resources - PATIENTS):
            panel, k = divmod(i, len(CODES))
            p = panel % PATIENTS
            when = START + timedelta(days=panel // PATIENTS, minutes=p % 600)
            code, _, unit, _, value, low, high = CODES[k]
            observation = {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/p{p}"},
                "effectiveDateTime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
                "valueQuantity": {
                    "value": round(value * (0.6 + ((panel + k) % 9) / 10), 2),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
                "referenceRange": [
                    {"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}
                ],
            }
            out.write(json.dumps(observation, **compact) + "\n")  # type: ignore[arg-type]
    return resources - PATIENTS


def parse(kind: str, path: Path, repeat: int) -> tuple[float, float, int]:
    """Best wall-clock and CPU seconds of the parser on the whole file, and the results it read."""
    from monitor.formats.fhir import parse_fhir
    from monitor.formats.hl7v2 import parse_hl7

    parser = parse_hl7 if kind == "hl7" else parse_fhir
    text = path.read_bytes().decode("utf-8")
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        parsed = parser(text)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), len(parsed.records) + len(parsed.others)


def store(folder: Path, results: int) -> str:
    """A fresh SQLite store, holding ``results`` results of a canonical CSV when asked."""
    url = f"sqlite:///{folder / 'feeds.db'}"
    fill(url, folder, results)
    return url


def fill(url: str, folder: Path, results: int) -> None:
    """The store at ``url`` (created when new) holding ``results`` results of a canonical CSV, written in
    ``folder`` and removed once imported."""
    from benchmarks.import_csv import SYNTHETIC_FUTURE, generate
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    factory = open_store(url, timezone="UTC")
    if results:
        canonical = folder / "store.csv"
        generate(canonical, results)
        options = ImportOptions(
            imported_by="benchmark", site_timezone="UTC", future_tolerance=SYNTHETIC_FUTURE
        )
        import_path(factory, canonical, options=options)
        canonical.unlink()


def import_file(url: str, path: Path) -> tuple[float, float, int]:
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    factory = open_store(url, timezone="UTC")
    wall, cpu = time.perf_counter(), time.process_time()
    summary = import_path(factory, path, options=ImportOptions(imported_by="benchmark", site_timezone="UTC"))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.error is None and not len(summary.rejected), summary
    return wall, cpu, summary.accepted


def figures(step: str, wall: float, cpu: float, results: int) -> str:
    return f"{step:<34}{wall:>9.3f}{cpu:>9.3f}{results:>10,}{results / wall:>16,.0f}{results / cpu:>15,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="HL7 v2 messages (five results each)")
    parser.add_argument(
        "--resources", type=int, default=100_000, help="NDJSON lines (2,000 of them Patients)"
    )
    parser.add_argument(
        "--store-results", type=int, default=0, help="results in the store before each import"
    )
    parser.add_argument("--repeat", type=int, default=3, help="parser runs, the best kept")
    parser.add_argument("--no-import", action="store_true", help="the parsers only")
    args = parser.parse_args()
    if args.resources <= PATIENTS:
        parser.error(f"--resources must be more than the {PATIENTS:,} Patients the file starts with")
    versions = f"Python {platform.python_version()}, pandas {pd.__version__}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {versions}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        files = {
            "hl7": (folder / "feed.hl7", hl7_file(folder / "feed.hl7", args.messages)),
            "ndjson": (folder / "feed.ndjson", ndjson_file(folder / "feed.ndjson", args.resources)),
        }
        print(
            f"{'step':<34}{'wall s':>9}{'cpu s':>9}{'results':>10}{'results/s wall':>16}{'results/s cpu':>15}"
        )
        for kind, (path, results) in files.items():
            wall, cpu, read = parse(kind, path, args.repeat)
            assert read == results, (kind, read, results)
            print(figures(f"parse {kind} ({path.stat().st_size / 1e6:.1f} MB)", wall, cpu, read))
        if args.no_import:
            return
        for kind, (path, results) in files.items():
            step = folder / kind
            step.mkdir()
            url = store(step, args.store_results)
            wall, cpu, accepted = import_file(url, path)
            assert accepted == results, (kind, accepted, results)
            print(figures(f"import {kind} (store of {args.store_results:,})", wall, cpu, accepted))


if __name__ == "__main__":
    main()
