"""The code keeps its layers: the import contracts hold, and the dashboard's entry script calls no store."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_import_contract_holds() -> None:
    checked = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_entry_script_reaches_the_store_only_through_services() -> None:
    """dashboard.py is a script, not a package, so the contracts cannot see it: its imports are read here."""
    below = {name for name in _imported(ROOT / "dashboard.py") if name.split(".")[0] in {"db", "sqlalchemy"}}
    assert below == set()
