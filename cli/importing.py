"""The command line's imports: reading result and event files into the store, and past imports."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.app import (
    _cli_user,
    _config,
    _emit,
    _factory,
    _viewer,
    cli,
    output_format,
    store_options,
)
from monitor.timestamps import is_timezone
from services.imports import (
    FORMAT_NAMES,
    ImportOptions,
    ImportSummary,
    NoSuchImport,
    import_history,
    import_path,
    refused_records,
)
from services.store import open_store

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


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
    type=click.Choice(["auto", *FORMAT_NAMES]),
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
    if timezone and not is_timezone(timezone):
        raise click.BadParameter(f"{timezone!r} is not an IANA time zone", param_hint="--timezone")
    # The site's zone is the default for times without an offset: a bad one is refused before any file is
    # read.
    config = _config(database)
    factory = open_store(config)
    options = ImportOptions(
        imported_by=_cli_user(),
        format=None if fmt == "auto" else fmt,
        timezone=timezone,
        column_map=column_map,
        dry_run=dry_run,
        again=again,
        teams=teams,
        site_timezone=config.timezone,
        future_tolerance=config.future_tolerance,
    )
    worst = 0
    summaries = []
    for path in paths:
        with click.progressbar(length=1, label=f"importing {path.name}", file=sys.stderr) as bar:

            def report(done: int, total: int, bar: ProgressBar[int] = bar) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summaries.append(import_path(factory, path, options=options, progress=report))
    for summary in summaries:
        worst = max(worst, summary.exit_code)
        _print_summary(summary)
    for warning in dict.fromkeys(warning for summary in summaries for warning in summary.warnings):
        click.echo(f"warning: {warning}", err=True)
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
@output_format()
@store_options
def imports(database: str | None, batch: int | None, limit: int, fmt: str) -> None:
    """Past imports, newest first, with what became of their records; or one import's refused records.

    \b
    Example:
      python -m monitor imports
      python -m monitor imports --refused 12 --format csv > refused-12.csv
    """
    factory = _factory(database)
    viewer = _viewer(factory, None)  # the system itself, named by the login that looked
    if batch is None:
        _emit(import_history(factory, viewer=viewer, limit=limit), fmt, utc_columns=("imported_at",))
        return
    try:
        refused = refused_records(factory, batch, viewer=viewer, now=datetime.now(UTC), where="command line")
    except NoSuchImport as error:
        raise click.BadParameter(
            f"{error} (python -m monitor imports lists them)", param_hint="--refused"
        ) from None
    if fmt == "table":
        # One line per record on a terminal: the raw text is cut (csv and json keep it whole).
        refused = refused.assign(
            raw_text=refused["raw_text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 80)
        )
    _emit(refused, fmt)


def _counted(number: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_summary(summary: ImportSummary) -> None:
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
    elif summary.brought_events:
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
    for location, reason in zip(summary.rejected["location"], summary.rejected["reason"], strict=True):
        where = str(location)
        where = where.removeprefix("line ") if where.startswith("line ") else f" {where}"
        click.echo(f"{name}:{where}: rejected: {reason}", err=True)
