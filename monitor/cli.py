"""The command line, a contract other tools script against: ``python -m monitor COMMAND``.

Exit codes: 0 success; 1 an import refused some records (the rest landed); 2 unusable input or usage;
3 the store could not be used (unreachable, out of date); 4 an internal error (a bug: please report it).
Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import pandas as pd

from monitor.cycles import CYCLE_COLUMNS
from monitor.parsed import FORMATS

F = TypeVar("F", bound=Callable[..., Any])
_debug = {"on": False}


def _set_debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    _debug["on"] = _debug["on"] or value
    return value


def store_options(command: F) -> F:
    """``--database`` and ``--debug``, on every command."""
    command = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show the full traceback on errors.",
    )(command)
    return click.option(
        "--database",
        "database",
        metavar="URL",
        envvar="MONITOR_DATABASE_URL",
        help="Database URL (default: $MONITOR_DATABASE_URL, else data/monitor.db).",
    )(command)


def user_option(command: F) -> F:
    """``--user NAME``: answer as that user would see it (their teams only); default: every patient."""
    return click.option(
        "--user",
        "user",
        metavar="NAME",
        default=None,
        help="Show only what this user may see (their teams' patients). Default: every patient.",
    )(command)


def _cli_user() -> str:
    """Who ran a command, as the audit trail and the import batches name them."""
    return f"cli:{getpass.getuser()}"


def _viewer(session: Any, user: str | None) -> Any:
    """The ``Viewer`` for ``--user``; without it the system itself (shell access to the store is admin),
    named in the audit trail by the login that ran the command, as imports are."""
    import dataclasses

    from db.accounts import SYSTEM, AccountError, viewer_named

    if user is None:
        return dataclasses.replace(SYSTEM, username=_cli_user())
    try:
        return viewer_named(session, user)
    except AccountError as error:
        raise click.BadParameter(str(error), param_hint="--user") from error


def _factory(database: str | None) -> Any:
    from db.store import open_store

    return open_store(database)


def _emit(frame: pd.DataFrame, fmt: str, *, utc_columns: tuple[str, ...] = ()) -> None:
    """Print a frame as JSON (a list of objects), CSV or an aligned table; times in UTC, ISO 8601."""
    if fmt == "json":
        records = json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))
        click.echo(json.dumps(records, indent=1, ensure_ascii=False))
        return
    out = frame.copy()
    for column in utc_columns:
        out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "csv":
        from monitor.exports import spreadsheet_safe

        click.echo(spreadsheet_safe(out).to_csv(index=False), nl=False)
    elif out.empty:
        click.echo("(none)")
    else:
        click.echo(out.astype(object).where(out.notna(), "-").to_string(index=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show the full traceback on errors.",
)
def cli() -> None:
    """Leukopenia monitoring: CBC results over time, for care teams and oncology units.

    \b
    Example:
      python -m monitor db upgrade
      python -m monitor demo
      python -m monitor patients --format json
    """


@cli.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@store_options
def db_upgrade(database: str | None) -> None:
    """Create the store or bring it to the latest schema.

    \b
    Example:
      MONITOR_DATABASE_URL=postgresql+psycopg://monitor@db/monitor python -m monitor db upgrade
    """
    from db.config import database_url
    from db.migrate import current_revision, upgrade
    from db.session import make_engine

    engine = make_engine(database_url(database))
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    click.echo(
        f"schema at {after}" + (" (already current)" if before == after else f" (was {before or 'empty'})")
    )


@cli.command()
@click.option(
    "--patients",
    "n_patients",
    default=60,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many synthetic patients.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same cohort).")
@store_options
def demo(database: str | None, n_patients: int, seed: int) -> None:
    """Seed the synthetic demo cohort (idempotent: seeding again adds nothing).

    \b
    Example:
      python -m monitor demo --patients 120 --seed 7
    """
    from db.demo import seed_demo

    factory = _factory(database)
    with factory.begin() as session:
        summary = seed_demo(session, patients=n_patients, seed=seed, today=datetime.now(UTC).date())
    if summary.already_seeded:
        click.echo(
            f"synthetic demo cohort already present ({n_patients} patients, seed {seed}); nothing added"
        )
    else:
        click.echo(
            f"synthetic demo cohort of {summary.patients} patients (simulated up to {summary.anchor}): "
            f"{summary.results_added} results and {summary.events_added} events added"
        )


def _column_map(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        source, equals, target = value.partition("=")
        if not equals or not source.strip() or not target.strip():
            raise click.BadParameter(f"{value!r} is not SOURCE=TARGET (e.g. MRN=patient_id)")
        mapping[source.strip()] = target.strip()
    return mapping


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="The files' format; auto detects it from the content.",
)
@click.option(
    "--timezone",
    default=None,
    metavar="TZ",
    help="IANA zone for times without an offset (e.g. Europe/London). HL7, FHIR and events files default "
    "to the site's zone, MONITOR_TIMEZONE (UTC when unset); the canonical CSV refuses such times unless a "
    "zone is given.",
)
@click.option(
    "--map",
    "column_map",
    multiple=True,
    callback=_column_map,
    metavar="SOURCE=TARGET",
    help="Rename a CSV export's column before reading it (repeatable), e.g. --map MRN=patient_id.",
)
@click.option(
    "--dry-run", is_flag=True, help="Report what would land and what would be refused; store nothing."
)
@click.option(
    "--again",
    is_flag=True,
    help="Read files imported before once more (content already stored is otherwise reported as "
    "unchanged): records refused then for a reason since put right, such as a patient not yet in the "
    "store or a CSV time needing --timezone, can land; what is stored stays as it is.",
)
@click.option(
    "--team",
    "teams",
    multiple=True,
    metavar="CODE",
    help="Put every patient the files' results name in this existing care team (repeatable), so that its "
    "members see them; a patient in no team is seen by administrators only.",
)
@store_options
def import_(
    database: str | None,
    paths: tuple[Path, ...],
    fmt: str,
    timezone: str | None,
    column_map: dict[str, str],
    dry_run: bool,
    again: bool,
    teams: tuple[str, ...],
) -> None:
    """Import result files: HL7 v2 ORU^R01, FHIR R4 (JSON or NDJSON), CSV (canonical long, wide, or a
    lab export with --map), and clinical events CSV.

    Prints, per file, the records accepted, unchanged and refused (with line or message and reason); the
    refused records are kept in the store with their reasons (the Import page lists them). A file whose
    exact content was imported before is reported as unchanged without being read (--again reads it).
    Exit status: 0 all accepted, 1 some refused (the rest landed), 2 a file not imported (unreadable,
    or an option refused), 3 the store could not be used, 4 an internal error.

    \b
    Example:
      python -m monitor import results-2026-11.csv feed-0001.hl7 --timezone Europe/London
      python -m monitor import export.csv --map MRN=patient_id --map "Drawn at=collected_at" --dry-run
    """
    from db.config import display_timezone, is_timezone
    from db.importer import import_path

    if timezone and not is_timezone(timezone):
        raise click.BadParameter(f"{timezone!r} is not an IANA time zone", param_hint="--timezone")
    try:
        display_timezone()  # the default for times without an offset: refused before any file is read
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    factory = _factory(database)
    user = _cli_user()
    worst = 0
    chosen = None if fmt == "auto" else fmt
    summaries = []
    for path in paths:
        with click.progressbar(length=1, label=f"importing {path.name}", file=sys.stderr) as bar:

            def report(done: int, total: int, bar: Any = bar) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summaries.append(
                import_path(
                    factory,
                    path,
                    imported_by=user,
                    fmt=chosen,
                    timezone=timezone,
                    column_map=column_map,
                    dry_run=dry_run,
                    again=again,
                    teams=teams,
                    progress=report,
                )
            )
    for summary in summaries:
        worst = max(worst, summary.exit_code)
        _print_summary(summary)
    sys.exit(worst)


@cli.command()
@click.option(
    "--refused",
    "batch",
    type=int,
    default=None,
    metavar="IMPORT",
    help="List the records import number IMPORT refused, verbatim with their reasons (they hold patient "
    "data: the view is audited).",
)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Imports to list.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@store_options
def imports(database: str | None, batch: int | None, limit: int, fmt: str) -> None:
    """Past imports, newest first, with what became of their records; or one import's refused records.

    \b
    Example:
      python -m monitor imports
      python -m monitor imports --refused 12 --format csv > refused-12.csv
    """
    from datetime import UTC, datetime

    from db.models import ImportBatch
    from db.queries import audit_view, batch_rejections, import_batches

    factory = _factory(database)
    with factory() as session:
        if batch is None:
            _emit(import_batches(session, limit=limit), fmt, utc_columns=("imported_at",))
            return
        if session.get(ImportBatch, batch) is None:
            raise click.BadParameter(
                f"there is no import #{batch} (python -m monitor imports lists them)", param_hint="--refused"
            )
        refused = batch_rejections(session, batch)
        viewer = _viewer(session, None)
        audit_view(
            session, viewer, None, f"command line: refused records of import {batch}", now=datetime.now(UTC)
        )
        session.commit()
    if fmt == "table":
        # One line per record on a terminal: the raw text is cut (csv and json keep it whole).
        refused = refused.assign(
            raw_text=refused["raw_text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 80)
        )
    _emit(refused, fmt)


def _counted(number: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_summary(summary: Any) -> None:
    name = summary.file_name
    prefix = f"{name}: dry run (nothing stored)" if summary.dry_run else name
    if summary.error:
        click.echo(f"{name}: not imported: {summary.error}", err=True)
        return
    if summary.identical_to is not None:
        batch = summary.identical_to
        click.echo(
            f"{prefix}: unchanged: identical to import #{batch.id} of "
            f"{batch.imported_at:%Y-%m-%d %H:%M} UTC ({_counted(summary.unchanged, 'record')}, nothing new"
            + (
                f"; {len(summary.rejected)} refused then, listed below: --again reads it once more "
                "after their cause is put right)"
                if len(summary.rejected)
                else ")"
            )
        )
    elif summary.format == "events":
        click.echo(
            f"{prefix}: {summary.events} events added, {summary.unchanged} unchanged, "
            f"{len(summary.rejected)} rejected"
        )
    else:
        extras = [
            f"{summary.derived} of them derived from percentages" if summary.derived else "",
            f"{_counted(summary.others, 'observation')} outside the CBC kept" if summary.others else "",
            f"{summary.pending} pending (no result yet) skipped" if summary.pending else "",
        ]
        click.echo(
            f"{prefix} ({summary.format}): {summary.accepted} accepted, {summary.superseded} superseding "
            f"earlier versions, {summary.unchanged} unchanged, {len(summary.rejected)} rejected"
            + "".join(f"; {extra}" for extra in extras if extra)
        )
    if summary.assigned:
        click.echo(f"{prefix}: {summary.assigned} patient memberships added to the teams asked for")
    if summary.teamless:
        click.echo(
            f"{name}: note: {summary.teamless} of its patients {'is' if summary.teamless == 1 else 'are'} in "
            "no care team, so only administrators see them (import with --team CODE, or python -m monitor "
            "assign)",
            err=True,
        )
    for row in summary.rejected.itertuples(index=False):
        where = row.location.removeprefix("line ") if row.location.startswith("line ") else f" {row.location}"
        click.echo(f"{name}:{where}: rejected: {row.reason}", err=True)


PATIENT_COLUMNS = [
    "patient_id",
    "assigning_authority",
    "name",
    "age",
    "sex",
    "teams",
    "latest_wbc",
    "latest_wbc_comparator",
    "latest_wbc_at",
    "latest_wbc_lln",
    "latest_wbc_range_source",
    "latest_wbc_grade",
    "latest_anc",
    "latest_anc_comparator",
    "latest_anc_at",
    "latest_anc_lln",
    "latest_anc_range_source",
    "latest_anc_grade",
    "latest_alc",
    "latest_alc_comparator",
    "latest_alc_at",
    "latest_alc_lln",
    "latest_alc_range_source",
    "latest_alc_grade",
    "wbc_grade",
    "anc_grade",
    "alc_grade",
    "pattern",
    "pattern_detail",
    "last_collected_at",
    "days_since_cbc",
    "n_panels",
    "flags",
    "explanations",
    "is_synthetic",
]


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@user_option
@store_options
def patients(database: str | None, fmt: str, user: str | None) -> None:
    """List patients with their latest WBC and ANC and last CBC.

    \b
    Example:
      python -m monitor patients --format json
    """
    from db.queries import patient_list

    factory = _factory(database)
    with factory() as session:
        frame = patient_list(session, viewer=_viewer(session, user))
    # The issue-4 contract: grades as wbc_grade/anc_grade/alc_grade, explanations as flag -> sentence.
    for analyte in ("wbc", "anc", "alc"):
        frame[f"{analyte}_grade"] = frame[f"latest_{analyte}_grade"]
    frame["explanations"] = [
        dict(zip(flags, sentences, strict=True))
        for flags, sentences in zip(frame["flags"], frame["explanations"], strict=True)
    ]
    _emit(
        frame[PATIENT_COLUMNS],
        fmt,
        utc_columns=("latest_wbc_at", "latest_anc_at", "latest_alc_at", "last_collected_at"),
    )


RESULT_COLUMNS = [
    "collected_at",
    "analyte",
    "value",
    "comparator",
    "unit",
    "ref_low",
    "ref_high",
    "status",
    "derived",
    "lab",
    "accession",
]
HISTORY_COLUMNS = ["version", "is_current", "superseded_at", "value_raw", "unit_raw"]


@cli.command()
@click.argument("patient_id")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--history", is_flag=True, help="Include superseded versions of corrected results.")
@user_option
@store_options
def results(
    database: str | None, patient_id: str, authority: str | None, fmt: str, history: bool, user: str | None
) -> None:
    """A patient's current results, oldest first (canonical units).

    \b
    Example:
      python -m monitor results DEMO-0001 --format csv --history
    """
    from db.queries import find_patient, patient_results

    factory = _factory(database)
    with factory() as session:
        viewer = _viewer(session, user)
        patient = find_patient(session, patient_id, viewer=viewer, authority=authority)
        frame = patient_results(session, patient.id, viewer=viewer, history=history)
        _audit_view(session, viewer, patient.id, "results")
    columns = RESULT_COLUMNS + (HISTORY_COLUMNS if history else [])
    _emit(frame[columns], fmt, utc_columns=("collected_at",) + (("superseded_at",) if history else ()))


# Every column of monitor.cycles.treatment_cycles but the internal key and the computed end.
CYCLE_OUTPUT = [column for column in CYCLE_COLUMNS if column not in ("patient_key", "end")]


@cli.command()
@click.argument("patient_id")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@user_option
@store_options
def cycles(database: str | None, patient_id: str, authority: str | None, fmt: str, user: str | None) -> None:
    """A patient's chemotherapy cycles: nadir, recovery, G-CSF and readiness at the next start.

    Days are calendar days in the site's zone from the start's date (day 0; D1 in the C#D# notation).
    The trend across cycles is printed after the table (not in csv or json).

    \b
    Example:
      python -m monitor cycles DEMO-0003 --format json
    """
    from db.config import display_timezone
    from db.queries import find_patient, patient_cycles
    from db.settings import site_rules
    from monitor.cycles import cycle_table, cycle_trend

    factory = _factory(database)
    with factory() as session:
        viewer = _viewer(session, user)
        patient = find_patient(session, patient_id, viewer=viewer, authority=authority)
        frame = patient_cycles(session, patient.id, viewer=viewer)
        _audit_view(session, viewer, patient.id, "cycles")
        rules = site_rules(session).cycles
    if fmt != "table":
        _emit(frame[CYCLE_OUTPUT], fmt, utc_columns=("start", "next_start"))
        return
    _emit(cycle_table(frame, timezone=display_timezone()), fmt)
    if not frame.empty:
        trend = cycle_trend(frame, rules=rules)
        for sentence in trend["trend"]:
            if sentence:
                click.echo(sentence)


@cli.command()
@click.option(
    "--since",
    default=None,
    help="ISO 8601 date or time (UTC unless it has an offset); default: 24 hours ago.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@user_option
@store_options
def alerts(database: str | None, since: str | None, fmt: str, user: str | None) -> None:
    """Patients whose flags appeared or whose grades rose since a time, most severe first.

    Only changes that still hold are listed (a flag that came and went is not an alert).

    \b
    Examples:
      python -m monitor alerts
      python -m monitor alerts --since 2026-11-27T08:00:00Z --format json
    """
    from datetime import UTC, datetime, timedelta

    from db.queries import alerts as find_alerts

    if since is None:
        start = datetime.now(UTC) - timedelta(hours=24)
    else:
        try:
            parsed = pd.Timestamp(since)
        except ValueError as error:
            raise click.BadParameter(
                f"not an ISO 8601 date or time: {since!r}", param_hint="--since"
            ) from error
        start = (
            parsed.tz_localize("UTC") if parsed.tzinfo is None else parsed.tz_convert("UTC")
        ).to_pydatetime()
    factory = _factory(database)
    with factory() as session:
        frame = find_alerts(session, since=start, viewer=_viewer(session, user))
    if fmt == "json":
        _emit(frame, fmt)
        return
    if frame.empty:
        click.echo(f"no new or worsened flags since {start:%Y-%m-%d %H:%M} UTC")
        return
    for row in frame.itertuples(index=False):  # one block per patient (a short list)
        grade = "no grade" if pd.isna(row.grade) else f"grade {row.grade}"
        click.echo(f"{row.patient_id}  {row.name or ''}  ({grade}; flags: {', '.join(row.flags) or 'none'})")
        for sentence in row.changes:
            click.echo(f"  - {sentence}")


@cli.command()
@store_options
def recompute(database: str | None) -> None:
    """Recompute every patient's status (grades, flags, pattern) under the current rules.

    Imports and settings changes recompute what they touch; this is for after a manual change to the
    store, or to check that the stored status is current.

    \b
    Example:
      python -m monitor recompute
    """
    from datetime import UTC, datetime

    from db.status import refresh_all_status

    factory = _factory(database)
    with factory.begin() as session:
        count = refresh_all_status(session, now=datetime.now(UTC))
    click.echo(f"recomputed the status of {count} patients")


@cli.group()
def settings() -> None:
    """The site's rules: grading, flags and cycles, with defaults and sources."""


@settings.command("show")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@store_options
def settings_show(database: str | None, fmt: str) -> None:
    """Every setting with its value, default and source.

    \b
    Example:
      python -m monitor settings show
    """
    from db.settings import site_rules
    from monitor.rules import setting_rows

    factory = _factory(database)
    with factory() as session:
        rows = setting_rows(site_rules(session))
    frame = pd.DataFrame(rows)
    for column in ("value", "default"):
        frame[column] = frame[column].map(lambda v: json.dumps(v) if fmt != "json" else v)
    _emit(frame, fmt)


@settings.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--by", default=None, help="Who makes the change (default: the login name).")
@store_options
def settings_set(database: str | None, key: str, value: str, by: str | None) -> None:
    """Set KEY (section.name, e.g. flags.persistent_min_days) to VALUE (JSON; 'default' restores it).

    The status of every patient is recomputed under the new rules in the same transaction.

    \b
    Examples:
      python -m monitor settings set flags.persistent_min_days 21
      python -m monitor settings set cycles.regimens.AC.anc_min 1.0
      python -m monitor settings set grading.ctcae_version '"5.0"'
      python -m monitor settings set flags.persistent_min_days default
    """
    import getpass
    from datetime import UTC, datetime

    from db.settings import save_site_rules, site_rules
    from monitor.rules import set_value, setting_rows

    try:
        parsed = None if value == "default" else json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare word, e.g. a CTCAE version typed without quotes
    factory = _factory(database)
    with factory.begin() as session:
        current = site_rules(session)
        try:
            overrides = set_value(current.overrides, key, parsed)
            rules = save_site_rules(session, overrides, by=by or getpass.getuser(), now=datetime.now(UTC))
        except (ValueError, TypeError) as error:
            raise click.BadParameter(str(error), param_hint="KEY/VALUE") from error
    now_in_force = {row["key"]: row["value"] for row in setting_rows(rules)}
    shown = json.dumps(now_in_force[key]) if key in now_in_force else "(a group)"
    click.echo(f"{key} = {shown}; patient status recomputed")


@cli.group("lab-ranges")
def lab_ranges() -> None:
    """Reference ranges a lab publishes, used when a result comes without its own."""


@lab_ranges.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@store_options
def lab_ranges_list(database: str | None, fmt: str) -> None:
    """The configured lab ranges."""
    from db.settings import lab_range_list

    factory = _factory(database)
    with factory() as session:
        frame = lab_range_list(session)
    _emit(frame, fmt)


@lab_ranges.command("set")
@click.argument("lab")
@click.argument("analyte")
@click.argument("low", type=float, required=False)
@click.argument("high", type=float, required=False)
@click.option("--sex", type=click.Choice(["F", "M"]), default=None)
@click.option("--min-months", type=float, default=None, help="Age band start in completed months.")
@click.option("--max-months", type=float, default=None, help="Age band end (exclusive).")
@click.option("--source", default="site configuration", show_default=True, help="Where the range is from.")
@click.option("--remove", is_flag=True, help="Remove the range for this lab, analyte, sex and band.")
@click.option("--by", default=None, help="Who makes the change (default: the login name).")
@store_options
def lab_ranges_set(
    database: str | None,
    lab: str,
    analyte: str,
    low: float | None,
    high: float | None,
    sex: str | None,
    min_months: float | None,
    max_months: float | None,
    source: str,
    remove: bool,
    by: str | None,
) -> None:
    """Set LAB's range for ANALYTE to LOW-HIGH in canonical units (counts 10^9/L, haemoglobin g/dL).

    A range without --min-months/--max-months is an adult range (11 years or more) and does not apply to a
    patient whose age is unknown; --min-months 0 without --max-months makes it apply at every age.

    \b
    Example:
      python -m monitor lab-ranges set CITYLAB wbc 3.8 10.4 --source "City lab handbook 2026"
    """
    import getpass
    from datetime import UTC, datetime

    from db.settings import set_lab_range

    if low is None and not remove:
        raise click.BadParameter("give LOW (and HIGH), or --remove", param_hint="LOW")
    factory = _factory(database)
    with factory.begin() as session:
        try:
            set_lab_range(
                session,
                lab=lab,
                analyte=analyte,
                low=None if remove else low,
                high=None if remove else high,
                sex=sex,
                min_months=min_months,
                max_months=max_months,
                source=source,
                by=by or getpass.getuser(),
                now=datetime.now(UTC),
            )
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
    what = "removed" if remove else f"{low:g} - {'' if high is None else f'{high:g}'}"
    if min_months is None and max_months is None:
        band = "adults (11 years or more; --min-months 0 for every age)"
    else:
        band = f"ages {min_months or 0:g} to {'' if max_months is None else f'{max_months:g}'} months"
    click.echo(f"{lab} {analyte} for {band}{' ' + sex if sex else ''}: {what}; patient status recomputed")


@cli.group()
def users() -> None:
    """Accounts that sign in to the dashboard: viewer, clinician or admin, in care teams."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "clinician", "admin"]), required=True)
@click.option("--team", "teams", multiple=True, help="A team code (repeatable); created when new.")
@click.option("--display-name", default="", help="The name shown in the dashboard.")
@store_options
def users_add(database: str | None, name: str, role: str, teams: tuple[str, ...], display_name: str) -> None:
    """Add an account. The password is asked for (or read from standard input), never an argument.

    \b
    Example:
      python -m monitor users add jsmith --role clinician --team oncology
      printf '%s\\n' "$PASSWORD" | python -m monitor users add jsmith --role viewer --team oncology
    """
    from datetime import UTC, datetime

    from db.accounts import AccountError, create_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if role != "admin" and not teams:
        raise click.BadParameter("a viewer or clinician needs at least one --team", param_hint="--team")
    factory = _factory(database)
    try:
        with factory.begin() as session:
            create_user(
                session,
                username=name,
                role=role,
                teams=teams,
                password=password,
                display_name=display_name,
                now=datetime.now(UTC),
                by=_login_name(),
            )
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name} added ({role}; teams: {', '.join(teams) or 'all, as admin'})")


@users.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@store_options
def users_list(database: str | None, fmt: str) -> None:
    """Every account with its role, teams and state (never a password or its hash)."""
    from db.accounts import user_list

    factory = _factory(database)
    with factory() as session:
        _emit(user_list(session), fmt)


@users.command("disable")
@click.argument("name")
@store_options
def users_disable(database: str | None, name: str) -> None:
    """Disable an account: it can no longer sign in (its audit trail stays)."""
    from datetime import UTC, datetime

    from db.accounts import AccountError, disable_user

    factory = _factory(database)
    try:
        with factory.begin() as session:
            disable_user(session, name, now=datetime.now(UTC), by=_login_name())
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name} disabled")


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@store_options
def teams(database: str | None, fmt: str) -> None:
    """The care teams with their numbers of patients and users."""
    from db.accounts import team_list

    factory = _factory(database)
    with factory() as session:
        _emit(team_list(session), fmt)


@cli.command()
@click.argument("patient_id")
@click.argument("team")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@store_options
def assign(database: str | None, patient_id: str, team: str, authority: str | None) -> None:
    """Put a patient in a care team (created when new): its members may then see the patient."""
    from datetime import UTC, datetime

    from db.accounts import SYSTEM, assign_patient
    from db.queries import find_patient

    factory = _factory(database)
    with factory.begin() as session:
        patient = find_patient(session, patient_id, viewer=SYSTEM, authority=authority)
        added = assign_patient(session, patient.id, team, now=datetime.now(UTC), by=_login_name())
    click.echo(f"{patient_id} {'assigned to' if added else 'already in'} team {team}")


def _login_name() -> str:
    import getpass

    return f"{getpass.getuser()} (command line)"


def _audit_view(session: Any, viewer: Any, patient_key: int, what: str) -> None:
    """A patient shown on the terminal is a view like any other: audited (in its own transaction)."""
    from datetime import UTC, datetime

    from db.queries import audit_view

    audit_view(session, viewer, patient_key, f"command line: {what}", now=datetime.now(UTC))
    session.commit()


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error  # a driver's own message, without SQLAlchemy's links
    text = " ".join(str(cause).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: list[str] | None = None) -> None:
    """Run the command line; errors become one line on stderr and an exit status."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.demo import DemoConflict
    from db.migrate import StoreOutOfDate
    from db.queries import PatientNotFound

    try:
        cli.main(args=argv, prog_name="python -m monitor", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(2)
    except click.ClickException as error:
        error.show()
        sys.exit(2)
    except (PatientNotFound, DemoConflict) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (StoreOutOfDate, SQLAlchemyError, OSError) as error:
        if _debug["on"]:
            raise
        click.echo(f"error: the store could not be used: {_one_line(error)}", err=True)
        sys.exit(3)
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if _debug["on"]:
            raise
        click.echo(f"internal error: {type(error).__name__}: {_one_line(error)} (run with --debug)", err=True)
        sys.exit(4)
    sys.exit(0)
