"""The command line's audit trail: prove its hash chain; give the application its PostgreSQL role."""

from __future__ import annotations

import dataclasses
import sys

import click

from cli.admin import db
from cli.app import _cli_user, _factory, cli, store_options
from services.accounts import SYSTEM
from services.audit import RoleError, grant_app_role, verify_trail

# The exit status of ``audit verify`` when a row breaks the chain (cli/app.py lists every status).
CHAIN_BROKEN = 5


@cli.group()
def audit() -> None:
    """The audit trail: who saw or changed what, when.

    \b
    Example:
      python -m monitor audit verify
    """


@audit.command("verify")
@store_options
def audit_verify(database: str | None) -> None:
    """Recompute the trail's hash chain and name the first row that breaks it.

    Exit status 0 when every row follows from the one before it, 5 when one does not (3 when the store
    cannot be read). Note the last line's hash somewhere else (a ticket, the operations log): a later run
    that no longer reaches it shows that rows were removed from the end or the trail rewritten whole.

    \b
    Example:
      python -m monitor audit verify
    """
    viewer = dataclasses.replace(SYSTEM, username=_cli_user())
    state = verify_trail(_factory(database), viewer=viewer)
    if state.intact:
        if state.last_id is None or state.last_at is None:
            click.echo("audit trail intact: no rows yet")
            return
        click.echo(
            f"audit trail intact: {state.rows:,} rows verified; the last, row {state.last_id} at "
            f"{state.last_at:%Y-%m-%dT%H:%M:%SZ}, has the hash {state.head}"
        )
        return
    first = state.breaks[0]
    click.echo(
        f"audit trail broken: row {first.id} at {first.at:%Y-%m-%dT%H:%M:%SZ}: {first.problem} "
        f"({state.broken:,} of {state.rows:,} rows break the chain)"
    )
    for more in state.breaks[1:]:
        click.echo(f"  also row {more.id} at {more.at:%Y-%m-%dT%H:%M:%SZ}: {more.problem}")
    if state.broken > len(state.breaks):
        click.echo(f"  and {state.broken - len(state.breaks):,} more")
    sys.exit(CHAIN_BROKEN)


@db.command("grant-app-role")
@click.argument("role")
@store_options
def db_grant_app_role(database: str | None, role: str) -> None:
    """Give ROLE, the PostgreSQL role the dashboards and commands run as, what they need: every right on
    the data, and on the audit trail only SELECT and INSERT. Run as the schema's owner (the role that runs
    db upgrade), once, and again after each upgrade.

    \b
    Example:
      python -m monitor db grant-app-role monitor_app --database postgresql+psycopg://monitor_owner@db/monitor
    """
    try:
        statements = grant_app_role(_factory(database), role)
    except RoleError as error:
        raise click.BadParameter(str(error), param_hint="ROLE") from error
    click.echo("\n".join(f"{statement};" for statement in statements))
