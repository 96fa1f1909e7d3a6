"""The Makefile's first run: installing takes minutes, so it says what it is doing while it does it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def _install_steps() -> list[str]:
    """What ``make`` would run to install into .venv on a fresh machine (a dry run: nothing is run)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", ".venv/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.strip() for line in dry_run.stdout.splitlines() if line.strip()]


def test_the_first_install_announces_each_step_before_it_runs() -> None:
    steps = _install_steps()
    slow = [n for n, line in enumerate(steps) if " -m venv " in line or " -m pip install " in line]

    assert len(slow) == 3  # the environment, pip, the requirements
    for n in slow:
        assert n > 0 and steps[n - 1].startswith("echo "), f"no word before: {steps[n]}"
    assert steps[-1].startswith("echo ") and "ready" in steps[-1]


def test_pip_shows_its_progress_while_the_requirements_install() -> None:
    installs = [line for line in _install_steps() if " -m pip install " in line]

    assert installs
    for line in installs:
        assert "--quiet" not in line.split() and "-q" not in line.split(), line
