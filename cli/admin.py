"""The command line's administration: schema, demo cohort, site rules, lab ranges, accounts, teams."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime

import click
import pandas as pd

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
from monitor.analysis.rules import setting_rows
from services.accounts import (
    SYSTEM,
    AccountError,
    Viewer,
    add_user,
    assign_patient,
    disable_user,
    list_teams,
    list_users,
    remove_team,
    set_password,
    unlock_user,
)
from services.admin import (
    NO_ADMIN_HINT,
    has_active_admin,
    recompute_all,
    remove_demo,
    seed_demo,
    upgrade_schema,
)
from services.config import Config
from services.rules import lab_range_list, regimen_setting_warning, set_lab_range, set_setting, site_rules
from services.store import open_store


@cli.group()
def db() -> None:
    """Manage the database schema.

    \b
    Example:
      python -m monitor db upgrade
    """


@db.command("upgrade")
@store_options
def db_upgrade(database: str | None) -> None:
    """Create the store or bring it to the latest schema.

    \b
    Example:
      MONITOR_DATABASE_URL=postgresql+psycopg://monitor@db/monitor python -m monitor db upgrade
    """
    done = upgrade_schema(_config(database))
    click.echo(
        f"schema at {done.after}"
        + (" (already current)" if done.already_current else f" (was {done.before or 'empty'})")
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
@click.option(
    "--remove",
    is_flag=True,
    help="Remove the synthetic cohort with all its rows, and disable the demo accounts (before real use).",
)
@store_options
def demo(database: str | None, n_patients: int, seed: int, remove: bool) -> None:
    """Seed the synthetic demo cohort (idempotent: seeding again adds nothing), or remove it.

    The demo comes with accounts whose password, 'demo', is published: remove the cohort and them before
    the store holds real patients. The removal keeps the audit trail whole; the demo accounts stay as
    disabled names without a password, so that nobody can take over their place in the trail (seeding the
    demo again does not enable them).

    \b
    Examples:
      python -m monitor demo --patients 120 --seed 7
      python -m monitor demo --remove
    """
    config = _config(database)
    if remove:
        _remove_demo(config)
        return
    summary = seed_demo(
        open_store(config), patients=n_patients, seed=seed, now=datetime.now(UTC), timezone=config.timezone
    )
    if summary.already_seeded:
        click.echo(
            f"synthetic demo cohort already present ({n_patients} patients, seed {seed}); nothing added"
        )
    else:
        click.echo(
            f"synthetic demo cohort of {summary.patients} patients (simulated up to {summary.anchor}) and "
            f"{summary.showcase} showcase patients: {summary.results_added} results and "
            f"{summary.events_added} events added"
        )


def _remove_demo(config: Config) -> None:
    store = open_store(config)
    removed = remove_demo(store, now=datetime.now(UTC), by=_cli_user())
    click.echo(
        f"synthetic demo cohort removed: {removed.patients} patients, {removed.results} results and "
        f"{removed.events} events"
    )
    if removed.accounts:
        click.echo(f"demo accounts disabled, their passwords cleared: {', '.join(removed.accounts)}")
    if not has_active_admin(store):
        click.echo(f"note: {NO_ADMIN_HINT}", err=True)


@cli.command()
@store_options
def recompute(database: str | None) -> None:
    """Recompute every patient's status (grades, flags, pattern) under the current rules.

    Imports and settings changes recompute what they touch; this is for after a manual change to the
    store, or to check that the stored status is current. On a large SQLite store (400,000 panels or more)
    the status is computed by worker processes, one a core up to four.

    \b
    Example:
      python -m monitor recompute
    """
    config = _config(database)
    # One worker process a core computes the status (up to four): the store is read as committed.
    count = recompute_all(open_store(config), now=datetime.now(UTC), timezone=config.timezone, beside=True)
    click.echo(f"recomputed the status of {count} patients")


@cli.group()
def settings() -> None:
    """The site's rules: grading, flags and cycles, with defaults and sources.

    \b
    Example:
      python -m monitor settings show --format json
    """


def _administrator() -> Viewer:
    """The command line's user as the one changing the site's settings: the system itself (shell access to
    the store is admin), named by the login that ran the command (``cli:LOGIN``)."""
    return dataclasses.replace(SYSTEM, username=_cli_user())


@settings.command("show")
@output_format()
@store_options
def settings_show(database: str | None, fmt: str) -> None:
    """Every setting with its value, default and source, and in words: the rule at its value, its unit, and
    the primary source of its default (author, title, year, link) or a plain "no source" statement.

    The table gives the key, value, default, whether it changed, the rule in words and the source; JSON
    and CSV also give the group, unit, full citation and section of docs/clinical-basis.md.

    \b
    Example:
      python -m monitor settings show
    """
    rows = setting_rows(site_rules(_factory(database)))
    frame = pd.DataFrame(rows)
    if fmt == "table":
        frame = frame[["key", "value", "default", "changed", "setting", "source"]]
    for column in ("value", "default"):
        frame[column] = frame[column].map(lambda v: json.dumps(v) if fmt != "json" else v)
    _emit(frame, fmt)


@settings.command("set")
@click.argument("key")
@click.argument("value")
@store_options
def settings_set(database: str | None, key: str, value: str) -> None:
    """Set KEY (section.name, e.g. flags.persistent_min_days) to VALUE (JSON; 'default' restores it).

    The status of every patient is recomputed under the new rules in the same transaction.

    \b
    Examples:
      python -m monitor settings set flags.persistent_min_days 21
      python -m monitor settings set cycles.regimens.AC.anc_min 1.0
      python -m monitor settings set grading.ctcae_version '"5.0"'
      python -m monitor settings set flags.persistent_min_days default
    """
    try:
        parsed = None if value == "default" else json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare word, e.g. a CTCAE version typed without quotes
    config = _config(database)
    store = open_store(config)
    try:
        rules = set_setting(
            store, key, parsed, viewer=_administrator(), now=datetime.now(UTC), timezone=config.timezone
        )
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="KEY/VALUE") from error
    now_in_force = {row["key"].lower(): row["value"] for row in setting_rows(rules)}
    shown = json.dumps(now_in_force[key.lower()]) if key.lower() in now_in_force else "(a group)"
    click.echo(f"{key} = {shown}; patient status recomputed")
    warning = regimen_setting_warning(store, key) if parsed is not None else None
    if warning:
        click.echo(f"warning: {warning}", err=True)


@cli.group("lab-ranges")
def lab_ranges() -> None:
    """Reference ranges a lab publishes, used when a result comes without its own.

    \b
    Example:
      python -m monitor lab-ranges list
    """


@lab_ranges.command("list")
@output_format()
@store_options
def lab_ranges_list(database: str | None, fmt: str) -> None:
    """The configured lab ranges.

    \b
    Example:
      python -m monitor lab-ranges list --format csv
    """
    _emit(lab_range_list(_factory(database)), fmt)


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
) -> None:
    """Set LAB's range for ANALYTE to LOW-HIGH in canonical units (counts 10^9/L, haemoglobin g/dL).

    A range without --min-months/--max-months is an adult range (11 years or more) and does not apply to a
    patient whose age is unknown; --min-months 0 without --max-months makes it apply at every age.

    \b
    Example:
      python -m monitor lab-ranges set CITYLAB wbc 3.8 10.4 --source "City lab handbook 2026"
    """
    if low is None and not remove:
        raise click.BadParameter("give LOW (and HIGH), or --remove", param_hint="LOW")
    config = _config(database)
    store = open_store(config)
    try:
        set_lab_range(
            store,
            lab=lab,
            analyte=analyte,
            low=None if remove else low,
            high=None if remove else high,
            sex=sex,
            min_months=min_months,
            max_months=max_months,
            source=source,
            viewer=_administrator(),
            now=datetime.now(UTC),
            timezone=config.timezone,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    what = "removed" if remove else f"{low:g} - {'' if high is None else f'{high:g}'}"
    if min_months is None and max_months is None:
        band = "adults (11 years or more; --min-months 0 for every age)"
    else:
        start = min_months or 0
        band = (
            f"ages from {start:g} months"
            if max_months is None
            else f"ages {start:g} to {max_months:g} months"
        )
    click.echo(f"{lab} {analyte} for {band}{' ' + sex if sex else ''}: {what}; patient status recomputed")


@cli.group()
def users() -> None:
    """Accounts that sign in to the dashboard: viewer, clinician or admin, in care teams.

    \b
    Example:
      python -m monitor users add j.smith@example.org --role clinician --team oncology
    """


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

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if role != "admin" and not teams:
        raise click.BadParameter("a viewer or clinician needs at least one --team", param_hint="--team")
    store = _factory(database)
    try:
        add_user(
            store,
            viewer=_viewer(store, None),
            username=name,
            role=role,
            teams=teams,
            password=password,
            display_name=display_name,
            now=datetime.now(UTC),
        )
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name} added ({role}; teams: {', '.join(teams) or 'all, as admin'})")


@users.command("list")
@output_format()
@store_options
def users_list(database: str | None, fmt: str) -> None:
    """Every account with its role, teams and state (never a password or its hash).

    \b
    Example:
      python -m monitor users list --format json
    """
    store = _factory(database)
    _emit(list_users(store, viewer=_viewer(store, None)), fmt)


@users.command("disable")
@click.argument("name")
@store_options
def users_disable(database: str | None, name: str) -> None:
    """Disable an account: it can no longer sign in (its audit trail stays).

    \b
    Example:
      python -m monitor users disable nurse1
    """
    store = _factory(database)
    try:
        disable_user(store, viewer=_viewer(store, None), username=name, now=datetime.now(UTC))
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name} disabled")


@users.command("unlock")
@click.argument("name")
@store_options
def users_unlock(database: str | None, name: str) -> None:
    """Forget an account's recent failed sign-ins, so that nothing delays its next one (audited).

    \b
    Example:
      python -m monitor users unlock nurse1
    """
    store = _factory(database)
    try:
        cleared = unlock_user(store, viewer=_viewer(store, None), username=name, now=datetime.now(UTC))
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name}: {cleared} recent failed sign-ins forgotten")


@users.command("set-password")
@click.argument("name")
@store_options
def users_set_password(database: str | None, name: str) -> None:
    """Give an account a new password, asked for twice without showing it (or read from standard input);
    the password policy applies and the account's failed sign-ins are forgotten (audited, never the
    password).

    \b
    Example:
      python -m monitor users set-password nurse1
    """
    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    store = _factory(database)
    try:
        set_password(
            store, viewer=_viewer(store, None), username=name, password=password, now=datetime.now(UTC)
        )
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name}: password changed")


@users.command("remove-team")
@click.argument("name")
@click.argument("team")
@store_options
def users_remove_team(database: str | None, name: str, team: str) -> None:
    """Take an account out of a team: it no longer sees that team's patients, in an open dashboard too
    (audited).

    \b
    Example:
      python -m monitor users remove-team nurse1 oncology
    """
    store = _factory(database)
    try:
        remove_team(store, viewer=_viewer(store, None), username=name, team=team, now=datetime.now(UTC))
    except AccountError as error:
        raise click.BadParameter(str(error)) from error
    click.echo(f"user {name} removed from team {team}")


@cli.command()
@output_format()
@store_options
def teams(database: str | None, fmt: str) -> None:
    """The care teams with their numbers of patients and users.

    \b
    Example:
      python -m monitor teams --format csv
    """
    _emit(list_teams(_factory(database)), fmt)


@cli.command()
@click.argument("patient_id")
@click.argument("team")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@store_options
def assign(database: str | None, patient_id: str, team: str, authority: str | None) -> None:
    """Put a patient in a care team (created when new): its members may then see the patient.

    \b
    Example:
      python -m monitor assign MRN1001 oncology
    """
    store = _factory(database)
    added = assign_patient(
        store,
        viewer=_viewer(store, None),
        patient_id=patient_id,
        team=team,
        authority=authority,
        now=datetime.now(UTC),
    )
    click.echo(f"{patient_id} {'assigned to' if added else 'already in'} team {team}")
