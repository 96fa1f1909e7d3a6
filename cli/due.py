"""The command line's list of CBCs due: nadir windows opening soon or missed, and grade 3-4 patients
without a recent count."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from cli.app import _config, _emit, _viewer, cli, output_format, store_options, user_option
from cli.views import _record_list_view
from services.due import DUE_LIST_COLUMNS, cbcs_due
from services.store import open_store


@cli.command()
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="List the nadir windows whose first day is at most this many calendar days away (site zone).",
)
@output_format()
@user_option
@store_options
def due(database: str | None, days: int, fmt: str, user: str | None) -> None:
    """CBCs due: nadir windows opening in the next DAYS days (or open) with no count in them yet, windows
    that closed without a count, and patients outside chemotherapy with a CTCAE grade 3-4 finding and no
    CBC for more than the site's due_severe_days (settings cycles.due_severe_days).

    A chemotherapy cycle's nadir window is the regimen's (cycles.regimens.NAME.nadir_window_days) or the
    site default, days 7 to 14 after the dose: D8 to D15, D1 being the dosing day; it ends at the next dose
    when that comes first. A CBC is a panel with a WBC or an ANC. Window dates are calendar days in the
    site's zone; last_collected_at is the last CBC, in UTC. Grade 4 patients without a recent count come
    first, then missed windows, then windows due by their first day, then the grade 3 patients
    (docs/clinical-basis.md, CBCs due). Decision support:
    each line names its rule, never an order.

    \b
    Examples:
      python -m monitor due
      python -m monitor due --days 7 --user alice --format json
    """
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    frame = cbcs_due(store, viewer=viewer, timezone=config.timezone, now=datetime.now(UTC), days=days)
    listed = f"CBCs due in {days} days ({frame['patient_key'].nunique()} patients)"
    _record_list_view(store, viewer, user, frame["patient_key"], listed)
    frame = frame.drop(columns="patient_key")
    if fmt == "table" and frame.empty:
        click.echo(f"no CBC due in the next {days} days and no nadir window missed")
        return
    _emit(frame[[c for c in DUE_LIST_COLUMNS if c != "patient_key"]], fmt, utc_columns=("last_collected_at",))
