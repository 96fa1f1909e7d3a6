"""The command line's printed reports: a patient's summary and a team's handover list, as PDF files."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from cli.app import _cli_user, _config, _viewer, cli, store_options, user_option, utc_time
from services import reports as printing
from services.accounts import Viewer
from services.audit import record_exports
from services.patients import find_patient
from services.reports import PAPERS, PrintingUnavailable, Report, TeamNotFound
from services.store import Store, open_store

_OUTPUT = click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The PDF file to write (replaced if it exists).",
)
_PAPER = click.option(
    "--paper",
    type=click.Choice(sorted(PAPERS)),
    default="a4",
    show_default=True,
    help="Paper size: A4 or US Letter.",
)


def _write(output: Path, made: Report) -> None:
    """The PDF written next to ``output`` and moved into place: a reader never sees half a file."""
    folder = output.resolve().parent
    if not folder.is_dir():
        raise click.BadParameter(f"no folder {folder}", param_hint="--output")
    try:
        _write_into(folder, output, made)
    except OSError as error:
        raise click.BadParameter(
            f"cannot write {output}: {error.strerror or error}", param_hint="--output"
        ) from None


def _write_into(folder: Path, output: Path, made: Report) -> None:
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(made.pdf)
        os.replace(name, output)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@cli.command()
@click.argument("patient_id")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@_OUTPUT
@_PAPER
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Chart, panels and events from this date (midnight in the site's zone) or time (ISO 8601; UTC "
    "unless it has an offset). "
    "Default: the timeline's window, the last 182 days of results.",
)
@user_option
@store_options
def report(
    database: str | None,
    patient_id: str,
    authority: str | None,
    output: Path,
    paper: str,
    since: str | None,
    user: str | None,
) -> None:
    """Print a patient's summary to a PDF: identifiers, latest counts with grades and limits, flags with
    their sentences and acknowledgement, the WBC/ANC chart, cycles, the last panels, events and notes.

    The print is audited as an export of the patient. With --user, it holds what that user may see (a
    patient outside their teams is not found).

    \b
    Example:
      python -m monitor report DEMO-0003 --output DEMO-0003.pdf --paper letter
    """
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    start = None if since is None else utc_time(since, "--since", dates_in=config.timezone)
    key = find_patient(store, viewer=viewer, patient_id=patient_id, authority=authority)
    now = datetime.now(UTC)
    made = _printed(
        lambda: printing.patient_summary(
            store,
            viewer=viewer,
            patient_key=key,
            timezone=config.timezone,
            now=now,
            printed_by=_printer(user),
            paper=paper,
            since=start,
            site=config.site_name,
        )
    )
    _audit_then_write(store, viewer, user, f"patient summary (PDF, {_pages(made.pages)})", made, output, now)
    click.echo(f"{output}: {patient_id}'s summary, {_pages(made.pages)}")


@cli.command()
@click.option("--team", "team", required=True, metavar="CODE", help="The team's code (see `teams`).")
@_OUTPUT
@_PAPER
@user_option
@store_options
def handover(database: str | None, team: str, output: Path, paper: str, user: str | None) -> None:
    """Print a team's handover list to a PDF (landscape): its patients most urgent first, one row each with
    the latest WBC, ANC and ALC and their grades, the last CBC, the cycle day, CBCs due and the flags.

    Only that team's patients are listed. The print is audited as an export of each patient on it.

    \b
    Example:
      python -m monitor handover --team oncology --output oncology-handover.pdf
    """
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    now = datetime.now(UTC)
    try:
        made = _printed(
            lambda: printing.handover(
                store,
                viewer=viewer,
                team=team,
                timezone=config.timezone,
                now=now,
                printed_by=_printer(user),
                paper=paper,
                site=config.site_name,
            )
        )
    except TeamNotFound as error:
        raise click.BadParameter(str(error), param_hint="--team") from None
    _audit_then_write(store, viewer, user, f"handover {team} (PDF)", made, output, now)
    count = len(made.patient_keys)
    click.echo(
        f"{output}: handover of {team}, {count} patient{'s' if count != 1 else ''}, {_pages(made.pages)}"
    )


def _printer(user: str | None) -> str:
    """Who printed, as the paper says it: the login that ran the command, and the account it answered as."""
    return _cli_user() + (f" (as {user})" if user else "")


def _printed(make: Callable[[], Report]) -> Report:
    """``make()``'s report; a machine that cannot print is a one-line error naming what to install."""
    try:
        return make()
    except PrintingUnavailable as error:
        raise click.ClickException(str(error)) from None


def _audit_then_write(
    store: Store, viewer: Viewer, user: str | None, what: str, made: Report, output: Path, now: datetime
) -> None:
    """The export recorded under the login that ran the command (one row per patient the report shows),
    then the file written: an export the trail does not hold must never exist."""
    if not output.resolve().parent.is_dir():  # refused before anything is recorded
        raise click.BadParameter(f"no folder {output.resolve().parent}", param_hint="--output")
    actor = dataclasses.replace(viewer, username=_cli_user())
    said = f"command line: {what}" + (f" (as {user})" if user else "")
    record_exports(store, viewer=actor, what=said, patient_keys=made.patient_keys, now=now)
    _write(output, made)


def _pages(count: int) -> str:
    return f"{count} page{'s' if count != 1 else ''}"
