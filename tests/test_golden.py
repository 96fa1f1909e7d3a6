"""Behaviour kept across changes of the code's shape: the command line's answers over the demo cohort.

The synthetic demo cohort is seeded at a fixed moment (the clock is stopped there for the whole test), then
``patients``, ``results``, ``cycles``, ``alerts``, ``settings show`` and the import of the shared sample
files are run exactly as a user types them (``python -m monitor ...``), and each answer is compared with
the one kept in ``tests/golden/``. A difference is a change of behaviour: if it is meant, regenerate the
files with ``MONITOR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py`` and name the
change in the commit.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from tests.conftest import DATA

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MONITOR_UPDATE_GOLDEN") == "1"
# The demo's "today" and every status computed then; a Wednesday morning in UTC.
FROZEN = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)

# Patients chosen to cover the cohort's stories: chemotherapy with G-CSF, a Duffy-null count, marrow
# failure, a nutritional cause, a healthy control (the demo's identifiers are stable for seed 7).
RESULT_PATIENTS = ("DEMO-0001", "DEMO-0007", "DEMO-0019", "DEMO-0033", "DEMO-0052")
CYCLE_PATIENTS = ("DEMO-0001", "DEMO-0002", "DEMO-0003", "DEMO-0010")
SAMPLES = (
    "external/nist-lri-cbc.hl7",
    "external/fhir-converter-lab-oru-1.hl7",
    "external/us-core-observation-cbc-leukocytes.json",
)


def run_monitor(*args: str, database: str) -> str:
    """``python -m monitor ARGS`` in this process: its exit status, standard output and error, as text."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["monitor", *args]
    os.environ["MONITOR_DATABASE_URL"] = database
    status = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_module("monitor", run_name="__main__", alter_sys=False)
    except SystemExit as done:
        status = int(done.code or 0)
    finally:
        sys.argv = argv
    command = f"$ python -m monitor {' '.join(args)}"
    return f"{command}\nexit {status}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Every golden command's answer, run once over one store seeded at the frozen moment."""
    database = f"sqlite:///{tmp_path_factory.mktemp('golden') / 'monitor.db'}"
    saved = {key: os.environ.get(key) for key in ("MONITOR_DATABASE_URL", "MONITOR_TIMEZONE")}
    os.environ["MONITOR_TIMEZONE"] = "UTC"
    found: dict[str, str] = {}
    try:
        with time_machine.travel(FROZEN, tick=False):
            run_monitor("db", "upgrade", database=database)
            run_monitor("demo", database=database)
            found["patients.json"] = run_monitor("patients", "--format", "json", database=database)
            found["patients.txt"] = run_monitor("patients", database=database)
            for patient in RESULT_PATIENTS:
                found[f"results-{patient}.csv"] = run_monitor(
                    "results", patient, "--format", "csv", database=database
                )
            for patient in CYCLE_PATIENTS:
                found[f"cycles-{patient}.json"] = run_monitor(
                    "cycles", patient, "--format", "json", database=database
                )
            found["alerts.json"] = run_monitor(
                "alerts", "--since", "2026-10-01", "--format", "json", database=database
            )
            found["alerts.txt"] = run_monitor("alerts", "--since", "2026-10-01", database=database)
            found["settings.json"] = run_monitor("settings", "show", "--format", "json", database=database)
            for sample in SAMPLES:
                path = DATA / sample
                name = path.name
                found[f"import-{name}.txt"] = run_monitor("import", str(path), database=database).replace(
                    str(path.parent), "DATA"
                )
            found["patients-after-import.json"] = run_monitor(
                "patients", "--format", "json", database=database
            )
        yield found
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


NAMES = (
    ["patients.json", "patients.txt"]
    + [f"results-{patient}.csv" for patient in RESULT_PATIENTS]
    + [f"cycles-{patient}.json" for patient in CYCLE_PATIENTS]
    + ["alerts.json", "alerts.txt", "settings.json"]
    + [f"import-{Path(sample).name}.txt" for sample in SAMPLES]
    + ["patients-after-import.json"]
)


@pytest.mark.parametrize("name", NAMES)
def test_the_command_line_answers_as_kept_in_the_golden_files(answers: dict[str, str], name: str) -> None:
    kept = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        kept.write_text(answers[name], encoding="utf-8")
    assert answers[name] == kept.read_text(encoding="utf-8"), f"{name} differs from the golden file"
