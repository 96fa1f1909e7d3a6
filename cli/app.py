"""The command line, a contract other tools script against: ``python -m monitor COMMAND``.

Exit codes: 0 success; 1 an import refused some records (the rest landed); 2 unusable input or usage;
3 the store could not be used (unreachable, out of date, an empty or damaged file, a schema newer than the
code); 4 an internal error (a bug: please report it); 5 the audit trail's hash chain is broken
(``audit verify``).
Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
import pandas as pd

from monitor.exports import spreadsheet_safe
from services.accounts import SYSTEM, AccountError, viewer_named
from services.admin import DemoConflict
from services.audit import command_line_actor, record_view
from services.config import Config, ConfigError
from services.patients import PatientNotFound
from services.store import STORE_ERRORS, Store, StoreUnusable, open_store

if TYPE_CHECKING:
    from services.accounts import Viewer

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


def output_format(*choices: str) -> Callable[[F], F]:
    """``--format``: how a listing is printed; the first choice is the default (``table`` unless given).

    Every listing command takes it, so ``--format json`` gives the same shape everywhere: a list of
    objects, times ISO 8601 in UTC."""
    options = choices or ("table", "csv", "json")

    def decorate(command: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(options)),
            default=options[0],
            show_default=True,
            help="How to print: " + ", ".join(options) + ".",
        )(command)

    return decorate


def _cli_user() -> str:
    """Who ran a command, as the audit trail, the import batches and every change name them: ``cli:`` and
    the login that ran it (no command lets its caller name someone else)."""
    return command_line_actor(getpass.getuser())


def _viewer(store: Store, user: str | None) -> Viewer:
    """The ``Viewer`` for ``--user``; without it the system itself (shell access to the store is admin),
    named in the audit trail by the login that ran the command, as imports are."""

    if user is None:
        return dataclasses.replace(SYSTEM, username=_cli_user())
    try:
        return viewer_named(store, username=user)
    except AccountError as error:
        raise click.BadParameter(str(error), param_hint="--user") from error


def _record_view(store: Store, viewer: Viewer, user: str | None, patient_key: int | None, what: str) -> None:
    """Audit what a command showed, always under the login that ran it (``cli:LOGIN``): with ``--user`` the
    command answers as that account would see it, and the trail says so, but the account did not look."""
    actor = dataclasses.replace(viewer, username=_cli_user())
    shown = f"command line: {what}" + (f" (as {user})" if user else "")
    record_view(store, viewer=actor, patient_key=patient_key, what=shown, now=datetime.now(UTC))


def _config(database: str | None) -> Config:
    """The site's configuration for this command (``--database`` wins over ``MONITOR_DATABASE_URL``); a
    setting that cannot be used is a usage error naming it, before anything is read or written."""
    try:
        return Config.from_environment(database=database)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def _factory(database: str | None) -> Store:
    return open_store(_config(database))


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
      python -m monitor forecast DEMO-0013
    """


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error  # a driver's own message, without SQLAlchemy's links
    text = " ".join(str(cause).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: list[str] | None = None) -> None:
    """Run the command line; errors become one line on stderr and an exit status."""
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
    except StoreUnusable as error:  # its message names the store, what is wrong and what to do: shown whole
        if _debug["on"]:
            raise
        click.echo(f"error: the store could not be used: {error}", err=True)
        sys.exit(3)
    except (*STORE_ERRORS, OSError) as error:
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


def utc_time(value: str, option: str, *, dates_in: str = "UTC") -> datetime:
    """An option's ISO 8601 date or time as a UTC time; a usage error else. A time without an offset is UTC;
    a bare date (2026-09-01) is midnight in ``dates_in`` (a report's --since: the site's day)."""
    try:
        parsed = pd.Timestamp(value)
    except ValueError as error:
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}", param_hint=option) from error
    if pd.isna(parsed):
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}", param_hint=option)
    if parsed.tzinfo is None:
        bare_date = len(value.strip()) == 10
        parsed = parsed.tz_localize(dates_in if bare_date else "UTC")
    return parsed.tz_convert("UTC").to_pydatetime()
