"""The benchmark command runs (at a toy scale) and prints every figure beside its baseline and target.

Speed itself is not asserted here: the figures are read from the command's output (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NUMBER = r"\s+[\d,]+\.?\d*"


def _printed(*module_and_arguments: str) -> str:
    """What ``python -m`` of a benchmark prints, once it has run to its end."""
    run = subprocess.run(
        [sys.executable, "-m", *module_and_arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_the_benchmark_command_prints_every_figure_with_its_baseline_ratio_and_target() -> None:
    out = _printed("benchmarks", "--patients", "20", "--panels", "300")
    assert re.search(r"^machine: .*\d+ cores, Python 3\.\d+.*SQLite .*pandas .*DuckDB", out, re.M)
    assert "cohort: 21 patients, 1,300 panels, 10,400 results" in out
    for step, baseline, target in (
        ("import (SQLite)", "sqlite3 executemany, bare", 3),
        ("status recompute (SQLite)", "one DuckDB query", 5),
    ):
        row = rf"^{re.escape(step)}{NUMBER}{NUMBER}{NUMBER}\s+{re.escape(baseline)}{NUMBER}{NUMBER}"
        assert re.search(row + rf"\s+ratio <= {target}: (met|MISSED)$", out, re.M), (step, out)
    for page, target in (("worklist, rerun", "< 1 s"), ("patient page of BENCH-LONG, rerun", "< 0.5 s")):
        assert re.search(rf"^{re.escape(page)}{NUMBER}\s+{re.escape(target)}: (met|MISSED)$", out, re.M), out
    assert re.search(r"^peak memory of the pages step: \d+ MB; largest of any step: \d+ MB", out, re.M)


def test_the_import_benchmark_prints_both_stores_beside_their_floors() -> None:
    postgres = os.environ.get("MONITOR_TEST_POSTGRES_URL")
    if not postgres:
        pytest.skip("MONITOR_TEST_POSTGRES_URL is not set")
    out = _printed("benchmarks.import_csv", "--results", "2000", "--postgres", postgres)
    for step in (
        "raw sqlite3, bare table (baseline)",
        "COPY into a bare table (baseline)",
        "COPY into the store's schema",
        "python -m monitor import",
    ):
        assert re.search(rf"^{re.escape(step)}{NUMBER}{NUMBER}{NUMBER}$", out, re.M), (step, out)
    assert re.search(
        r"^ratio import / bare-table baseline:\s+[\d.]+\s+\(target <= 3: (met|MISSED)\)$", out, re.M
    )
    assert re.search(r"^ratio import / bare COPY:\s+[\d.]+\s+\(target <= 3: (met|MISSED)\)$", out, re.M)


def test_the_status_pass_benchmark_finds_both_ways_store_the_same_rows() -> None:
    out = _printed("benchmarks.status_pass", "--store-results", "5000", "--patients", "10")
    assert re.search(
        r"^first pass, 10 patients read whole and kept: [\d.]+ s \([\d,]+ rows kept", out, re.M
    ), out
    assert re.search(r"^  read whole: +[\d.]+ s$", out, re.M), out
    assert re.search(r"^  extended from kept: +[\d.]+ s \(10 extended, 0 read whole;", out, re.M), out
    assert "  the same status rows both ways: True" in out
