"""The command line as other tools script it: names, shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from tests.conftest import DATA, ROOT


def monitor(
    *args: str, url: str, zone: str = "UTC", input: str | None = None, in_process: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor ARGS`` against the store at ``url``: what it printed, and its exit code.

    In this process by default (the command line's own ``main``, with its environment, streams and exit
    status, as the shim calls it): starting a new interpreter per command cost more than the commands
    themselves. ``in_process=False`` runs the real ``python -m monitor`` in a child process.
    """
    # The site's zone is pinned: days and dates in the expected outputs are counted in it.
    env = {"MONITOR_DATABASE_URL": url, "MONITOR_TIMEZONE": zone}
    if not in_process:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args],
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            timeout=300,
        )
    import db.session
    from cli import app, main

    engines: list[Any] = []  # closed after the command, as the end of its process would close them

    def tracked(*options: Any, **settings: Any) -> Any:
        engines.append(made := create_engine(*options, **settings))
        return made

    runner, code = CliRunner(), 0
    create_engine, db.session.create_engine = db.session.create_engine, tracked
    try:
        with runner.isolation(input=input, env=env) as (out, err, _):
            app._debug["on"] = False  # the --debug flag is remembered per process
            try:
                main(list(args))
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        db.session.create_engine = create_engine
        for engine in engines:
            engine.dispose()
    return subprocess.CompletedProcess(["python", "-m", "monitor", *args], code, stdout, stderr)


def test_a_shared_store_behind_the_code_is_refused_until_upgraded(db_url: str) -> None:
    listed = monitor("patients", url=db_url)
    if db_url.startswith("sqlite"):
        assert listed.returncode == 0  # the embedded store creates itself
    else:
        assert listed.returncode == 3
        assert "run: python -m monitor db upgrade" in listed.stderr


def test_a_mistyped_store_path_is_refused_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-folder" / "data" / "monitor.db"
    listed = monitor("patients", url=f"sqlite:///{typo}")
    assert listed.returncode == 3
    assert f"no folder {typo.parent.parent} to create the SQLite store's folder in" in listed.stderr
    assert not typo.parent.parent.exists()


def test_upgrade_demo_and_patients_list_the_synthetic_cohort(db_url: str) -> None:
    assert monitor("db", "upgrade", url=db_url).returncode == 0
    seeded = monitor("demo", url=db_url)
    assert seeded.returncode == 0, seeded.stderr
    listed = monitor("patients", "--format", "json", url=db_url)
    assert listed.returncode == 0, listed.stderr
    patients = json.loads(listed.stdout)
    assert len(patients) >= 60
    assert {"patient_id", "latest_wbc", "latest_anc", "last_collected_at"} <= set(patients[0])
    assert all(p["is_synthetic"] for p in patients)
    assert patients[0]["last_collected_at"].endswith("Z")
    again = monitor("demo", url=db_url)
    assert again.returncode == 0 and "nothing added" in again.stdout
    assert len(json.loads(monitor("patients", "--format", "json", url=db_url).stdout)) == len(patients)


def test_import_twice_then_a_bad_row_exit_codes_and_messages(upgraded: str) -> None:
    db_url = upgraded
    mistyped = monitor("import", str(DATA / "canonical-good.csv"), "--team", "oncolgy", url=db_url)
    assert mistyped.returncode == 2 and "no team 'oncolgy'" in mistyped.stderr
    first = monitor("import", str(DATA / "canonical-good.csv"), url=db_url)
    assert first.returncode == 0, first.stderr
    assert "9 accepted" in first.stdout
    assert "note: 2 of its patients are in no care team, so only administrators see them" in first.stderr
    second = monitor("import", str(DATA / "canonical-good.csv"), url=db_url)
    assert second.returncode == 0 and "unchanged" in second.stdout
    # A dry run of a file already imported says so (its session is rolled back: no stored object is read).
    checked = monitor("import", "--dry-run", str(DATA / "canonical-good.csv"), url=db_url)
    assert checked.returncode == 0, checked.stderr
    assert "canonical-good.csv: dry run (nothing stored): unchanged: identical to import #" in checked.stdout
    bad = monitor("import", str(DATA / "canonical-bad-row.csv"), url=db_url)
    assert bad.returncode == 1
    assert "canonical-bad-row.csv:4: rejected: unknown unit 'furlongs' for WBC" in bad.stderr
    assert "3 accepted" in bad.stdout


def test_imports_lists_past_imports_and_one_imports_refusals_audited(upgraded: str) -> None:
    from sqlalchemy import create_engine, text

    monitor("import", str(DATA / "canonical-good.csv"), url=upgraded)
    monitor("import", str(DATA / "canonical-bad-row.csv"), url=upgraded)
    listed = json.loads(monitor("imports", "--format", "json", url=upgraded).stdout)
    assert [(b["file_name"], b["accepted"], b["rejected"]) for b in listed] == [
        ("canonical-bad-row.csv", 3, 1),
        ("canonical-good.csv", 9, 0),
    ]
    bad = listed[0]["id"]
    refused = monitor("imports", "--refused", str(bad), "--format", "json", url=upgraded)
    assert refused.returncode == 0, refused.stderr
    (row,) = json.loads(refused.stdout)
    assert (row["location"], row["reason"]) == ("line 4", "unknown unit 'furlongs' for WBC")
    assert row["raw_text"].startswith("MRN3003,")  # verbatim, for review
    engine = create_engine(upgraded)
    with engine.connect() as connection:
        who, details = connection.execute(
            text("SELECT username, details FROM audit_log WHERE action = 'view' ORDER BY id DESC")
        ).first()
    engine.dispose()
    assert f"command line: refused records of import {bad}" in details
    assert who.startswith("cli:") and who != "cli:"  # the login that looked, as for imports
    unknown = monitor("imports", "--refused", "999", url=upgraded)
    assert unknown.returncode == 2 and "there is no import #999" in unknown.stderr


def test_results_json_carries_the_contract_fields(upgraded: str) -> None:
    db_url = upgraded
    monitor("import", str(DATA / "canonical-good.csv"), url=db_url)
    out = monitor("results", "MRN1001", "--format", "json", url=db_url)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    expected = {
        "collected_at",
        "analyte",
        "value",
        "unit",
        "ref_low",
        "ref_high",
        "status",
        "derived",
        "lab",
        "accession",
    }
    assert expected <= set(rows[0])
    assert [r["collected_at"] for r in rows] == sorted(r["collected_at"] for r in rows)
    assert rows[-1]["collected_at"] == "2026-03-16T08:40:00Z"
    assert {r["unit"] for r in rows if r["analyte"] == "wbc"} == {"10^9/L"}


def test_an_hl7_time_without_an_offset_is_the_sites_local_time(upgraded: str, tmp_path: Path) -> None:
    """OBR-7 20260310073000 from a New York site: 07:30 EDT is 11:30 UTC, as the Import page reads it."""
    feed = DATA / "hl7" / "local-codes-percentages.hl7"
    new_york = monitor("import", str(feed), url=upgraded, zone="America/New_York")
    assert new_york.returncode == 0, new_york.stderr
    rows = json.loads(monitor("results", "H123456", "--format", "json", url=upgraded).stdout)
    assert {row["collected_at"] for row in rows} == {"2026-03-10T11:30:00Z"}
    # --timezone names the sender's zone when it is not the site's.
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    named = monitor("import", str(feed), "--timezone", "UTC", url=elsewhere, zone="America/New_York")
    assert named.returncode == 0, named.stderr
    rows = json.loads(monitor("results", "H123456", "--format", "json", url=elsewhere).stdout)
    assert {row["collected_at"] for row in rows} == {"2026-03-10T07:30:00Z"}
    half_typed = monitor("import", str(feed), "--timezone", "Europe", url=elsewhere)
    assert half_typed.returncode == 2 and "'Europe' is not an IANA time zone" in half_typed.stderr
    # A misspelt site zone is refused before any file is read, in one line.
    wrong = monitor("import", str(feed), url=elsewhere, zone="America/New_Yrok")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "MONITOR_TIMEZONE='America/New_Yrok' is not an IANA time zone" in wrong.stderr


def test_results_history_shows_superseded_versions(upgraded: str, tmp_path: Path) -> None:
    db_url = upgraded
    monitor("import", str(DATA / "canonical-good.csv"), url=db_url)
    fix = tmp_path / "fix.csv"
    fix.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "MRN1001,2026-03-02T08:15:00Z,wbc,5.9,10^9/L,4.0,11.0,CENTRAL,ACC-1,corrected\n"
    )
    assert monitor("import", str(fix), url=db_url).returncode == 0
    current = json.loads(monitor("results", "MRN1001", "--format", "json", url=db_url).stdout)
    history = json.loads(monitor("results", "MRN1001", "--format", "json", "--history", url=db_url).stdout)
    assert len(history) == len(current) + 1
    wbc = [
        (r["value"], r["status"], r["is_current"])
        for r in history
        if r["accession"] == "ACC-1" and r["analyte"] == "wbc"
    ]
    assert wbc == [(5.6, "final", False), (5.9, "corrected", True)]


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the command line, as the words that name it."""
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


def test_every_command_and_group_documents_an_example_and_every_command_the_database_option() -> None:
    from cli import cli

    runner = CliRunner()
    commands = _commands(cli)
    assert ("db", "upgrade") in commands and ("users", "disable") in commands
    for words in commands:
        shown = runner.invoke(cli, [*words, "--help"])
        assert shown.exit_code == 0, words
        assert "Example" in shown.output, f"{' '.join(words)} --help has no example"
        command = cli
        for word in words:
            command = command.commands[word]
        if not isinstance(command, click.Group):
            assert "--database URL" in shown.output, words


def test_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    unknown = monitor("results", "NOBODY", url=url)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no patient with identifier 'NOBODY'"
    unreachable = monitor("patients", "--database", "postgresql+psycopg://nobody@127.0.0.1:9/none", url=url)
    assert unreachable.returncode == 3
    assert len(unreachable.stderr.strip().splitlines()) == 1 and "Traceback" not in unreachable.stderr
    usage = monitor("import", url=url)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    missing = monitor("import", str(tmp_path / "absent.csv"), url=url)
    assert missing.returncode == 2 and "absent.csv" in missing.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = monitor(
        "patients",
        "--debug",
        "--database",
        "postgresql+psycopg://nobody@127.0.0.1:9/none",
        url=f"sqlite:///{tmp_path / 'x.db'}",
        in_process=False,  # the traceback is the interpreter's, printed as the process ends
    )
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_results_as_a_table_print_values_as_the_lab_printed_them(upgraded: str, tmp_path: Path) -> None:
    feed = tmp_path / "hb.csv"
    feed.write_text(
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "HB9,2026-03-05T08:00:00Z,hgb,6.2,mmol/L,7.4,9.9,NORTH,H-9,final\n"
        "HB9,2026-03-05T08:00:00Z,anc,<0.1,10^9/L,1.8,7.7,NORTH,H-9,final\n"
    )
    assert monitor("import", str(feed), url=upgraded).returncode == 0
    shown = monitor("results", "HB9", url=upgraded)
    assert shown.returncode == 0, shown.stderr
    hgb = next(line for line in shown.stdout.splitlines() if " hgb " in line).split()
    # 6.2 mmol/L is 9.99 g/dL (never 9.990332), its limits 11.92-15.95, and the lab's own words beside it.
    assert hgb[2:3] + hgb[4:7] == ["9.99", "g/dL", "11.92", "15.95"] and hgb[-2:] == ["6.2", "mmol/L"]
    anc = next(line for line in shown.stdout.splitlines() if " anc " in line).split()
    assert anc[2] == "<0.1"


def test_patients_and_alerts_audit_a_view_of_every_patient_they_list(upgraded: str) -> None:
    """A list printed on the command line is a view of each patient in it, as the worklist is."""
    from sqlalchemy import create_engine, text

    from cli import cli
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    import_path(
        open_store(upgraded, timezone="UTC"),
        DATA / "canonical-good.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC"),
    )
    runner = CliRunner()
    listed = runner.invoke(cli, ["patients", "--format", "json", "--database", upgraded])
    alerted = runner.invoke(cli, ["alerts", "--format", "json", "--database", upgraded])
    assert listed.exit_code == 0 and alerted.exit_code == 0, (listed.output, alerted.output)
    patients = {row["patient_id"] for row in json.loads(listed.output)}
    alerts = {row["patient_id"] for row in json.loads(alerted.output)}
    assert len(patients) >= 2 and alerts and "patient_key" not in json.loads(alerted.output)[0]
    engine = create_engine(upgraded)
    with engine.connect() as connection:
        views = connection.execute(
            text(
                "SELECT a.username, p.mrn, a.details FROM audit_log a "
                "LEFT JOIN patient p ON p.id = a.patient_id "
                "WHERE a.action = 'view'"
            )
        ).all()
    engine.dispose()
    assert all(who.startswith("cli:") for who, _, _ in views)
    assert {mrn for _, mrn, details in views if "patient list" in details} == patients
    assert {mrn for _, mrn, details in views if "alerts since" in details} == alerts


def test_a_csv_missing_a_required_column_is_named_with_the_format_detected_as_when_it_is_named(
    tmp_path: Path, upgraded: str
) -> None:
    export = tmp_path / "no-unit.csv"
    export.write_text("patient_id,collected_at,analyte,value\nP1,2026-03-02T08:15:00Z,wbc,5.6\n")
    detected = monitor("import", str(export), url=upgraded)
    named = monitor("import", str(export), "--format", "csv", url=upgraded)
    assert detected.returncode == named.returncode == 2
    lacks = (
        "no-unit.csv: not imported: the header lacks unit "
        "(expected patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status)"
    )
    assert lacks in detected.stderr.splitlines() and lacks in named.stderr.splitlines()


def test_the_future_tolerance_of_imports_comes_from_the_environment(
    tmp_path: Path, upgraded: str, monkeypatch
) -> None:
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    export = tmp_path / "ahead.csv"
    export.write_text(f"patient_id,collected_at,analyte,value,unit\nP1,{ahead},wbc,5.6,10^9/L\n")
    refused = monitor("import", str(export), "--dry-run", url=upgraded)
    assert refused.returncode == 1
    assert f"ahead.csv:2: rejected: collected_at '{ahead}' is in the future (more than 1 hour after" in (
        refused.stderr
    )
    monkeypatch.setenv("MONITOR_FUTURE_TOLERANCE_MINUTES", "180")
    assert monitor("import", str(export), url=upgraded).returncode == 0
    monkeypatch.setenv("MONITOR_FUTURE_TOLERANCE_MINUTES", "an hour")
    wrong = monitor("import", str(export), url=upgraded)
    assert wrong.returncode == 2
    assert "MONITOR_FUTURE_TOLERANCE_MINUTES='an hour' is not a whole number of minutes" in wrong.stderr
