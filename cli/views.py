"""The command line's views of patients: the list, a patient's results and cycles, and alerts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import click
import pandas as pd

from cli.app import (
    _cli_user,
    _config,
    _emit,
    _record_view,
    _viewer,
    cli,
    output_format,
    store_options,
    user_option,
    utc_time,
)
from monitor.analysis.changes import GRADED
from monitor.analysis.cycles import CYCLE_COLUMNS
from monitor.analysis.forecast import Forecast
from monitor.analysis.forecast.words import decision_support_caption, forecast_made, forecast_sentence
from monitor.analysis.status import LATEST_COLUMNS, STATUS_EXTRA_COLUMNS, latest_column
from monitor.formats.units import printed
from services.accounts import Viewer
from services.forecast import patient_forecast
from services.patients import find_patient, patient_cycles, patient_results
from services.store import Store, open_store
from services.worklist import alerts as find_alerts
from services.worklist import count_and_grade, record_list_view, worklist


def _record_list_view(store: Store, viewer: Viewer, user: str | None, keys: pd.Series, what: str) -> None:
    """Audit a list a command printed, one row per patient listed, under the login that ran it
    (``cli:LOGIN``), as ``_record_view`` does for one patient."""
    actor = dataclasses.replace(viewer, username=_cli_user())
    shown = f"command line: {what}" + (f" (as {user})" if user else "")
    record_list_view(store, viewer=actor, patient_keys=keys, what=shown, now=datetime.now(UTC))


PATIENT_COLUMNS = [
    "patient_id",
    "priority",
    "priority_reason",
    "assigning_authority",
    "name",
    "age",
    "sex",
    "teams",
    *LATEST_COLUMNS,
    # The latest haemoglobin and platelets with their CTCAE grades, and a critical flag of the lab's on a
    # latest result with its words (docs/clinical-basis.md, The lab's abnormal flags).
    *STATUS_EXTRA_COLUMNS,
    "wbc_grade",
    "anc_grade",
    "alc_grade",
    "preliminary",
    "pattern",
    "pattern_detail",
    "last_collected_at",
    "days_since_cbc",
    # The chemotherapy cycle now (day 0 = D1), when the next dose is expected and readiness for it (a
    # verdict only from readiness_from_day; analysis.cycles.readiness_as_of).
    "cycle",
    "cycle_day",
    "next_dose_day",
    "readiness_from_day",
    "ready_now",
    "readiness",
    # Febrile neutropenia now, any patient (null without a temperature or fever recorded, or when a recent
    # fever cannot be judged for want of an ANC), and its sentence.
    "febrile_neutropenia",
    "febrile_detail",
    # A CBC due now (a nadir window opening within cycles.due_lead_hours or missed, or grade 3-4 without a
    # recent count; analysis.due) and why.
    "cbc_due",
    "cbc_due_reason",
    # The nadir forecast of the cycle now (analysis.forecast; null outside a cycle or without a forecast):
    # the chance of a grade 4 nadir, the median nadir ANC and the window [first, last] of days since the
    # dose (the dose = day 0) a CBC best catches it, as the `forecast` command gives them.
    "p_grade4",
    "nadir_anc",
    "nadir_window",
    "n_panels",
    "flags",
    "explanations",
    "is_synthetic",
]


# The table a terminal shows by default: who, how urgent, the latest counts with their CTCAE grade, the
# last CBC, the cycle day, the flags and the finding that sets the priority (``--wide``: every column).
COMPACT_COLUMNS = [
    "patient_id",
    "name",
    "priority",
    "wbc",
    "anc",
    "alc",
    "last_cbc",
    "days",
    "cycle",
    "flags",
    "priority_reason",
]
# The longest a compact table's text cell runs before it is cut short with "...": a row stays about 180
# characters wide, whatever a flag list or a febrile neutropenia sentence holds.
COMPACT_WIDTHS = {"name": 24, "flags": 36, "priority_reason": 60}


def _cut(texts: pd.Series, width: int) -> pd.Series:
    """Text longer than ``width`` cut to it, ending in "..."; missing values stay missing."""
    text = texts.astype("string")
    return text.where(text.str.len().fillna(0).le(width), text.str.slice(0, width - 3) + "...")


def _compact(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The worklist as a terminal shows it by default (``COMPACT_COLUMNS``); the last CBC's date in the
    site's zone, the cycle day as C#D# (day 0 = D1)."""
    day = frame["cycle_day"].astype("Int64") + 1
    return pd.DataFrame(
        {
            "patient_id": frame["patient_id"],
            "name": _cut(frame["name"], COMPACT_WIDTHS["name"]),
            "priority": frame["priority"],
            **{analyte: count_and_grade(frame, analyte) for analyte in ("wbc", "anc", "alc")},
            "last_cbc": frame["last_collected_at"].dt.tz_convert(timezone).dt.strftime("%Y-%m-%d"),
            "days": frame["days_since_cbc"],
            "cycle": "C" + frame["cycle"].astype("Int64").astype("string") + "D" + day.astype("string"),
            "flags": _cut(frame["flags"].map(", ".join), COMPACT_WIDTHS["flags"]),
            "priority_reason": _cut(frame["priority_reason"], COMPACT_WIDTHS["priority_reason"]),
        },
        index=frame.index,
    )[COMPACT_COLUMNS]


def _compact_text(table: pd.DataFrame) -> str:
    """The compact table as text: its words left-aligned under left-aligned headers, "-" where empty."""
    shown = table.astype(object).where(table.notna(), "-")
    for column in ("name", "flags", "priority_reason"):
        text = shown[column].astype(str)
        shown[column] = text.str.ljust(max(int(text.str.len().max()), len(column)))
    return "\n".join(line.rstrip() for line in shown.to_string(index=False, justify="left").splitlines())


@cli.command()
@output_format()
@click.option(
    "--wide",
    is_flag=True,
    help="Print every column in the table, in full (csv and json always carry every column); by default "
    "the table has the columns that fit a terminal.",
)
@user_option
@store_options
def patients(database: str | None, fmt: str, wide: bool, user: str | None) -> None:
    """List patients most urgent first (the worklist's order) with their latest WBC and ANC and last CBC.

    priority is the tier (1 = most urgent: ANC grade 4 or febrile neutropenia) and priority_reason the
    finding that put the patient there (docs/clinical-basis.md, Worklist priority).

    Flags: leukopenia, neutropenia, lymphopenia; leukocytosis, neutrophilia, lymphocytosis (above the
    upper limit or graded high by CTCAE; not while G-CSF acts, below grade 3); for the WBC new_onset,
    persistent, chronic, worsening, significant_drop, recovering; for the ANC and ALC anc_new_onset,
    anc_persistent, anc_worsening, anc_significant_drop and the same with alc_. Each comes with its
    sentence in explanations.

    p_grade4, nadir_anc and nadir_window: the nadir forecast of the cycle now (see `forecast`; nadir_window
    in calendar days since the dosing day, [9, 11] being D10-D12).

    The table shows, by default, the columns that fit a terminal: the latest WBC, ANC and ALC with their
    CTCAE grade ("0.4 G4"), the last CBC's date in the site's zone and the days since, the cycle day
    (C#D#), the flags and the priority reason (long text cut short with "..."); --wide prints every
    column in full, as csv and json carry them.

    \b
    Examples:
      python -m monitor patients
      python -m monitor patients --wide
      python -m monitor patients --format json
    """
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    frame = worklist(store, viewer=viewer, timezone=config.timezone, now=datetime.now(UTC))
    _record_list_view(store, viewer, user, frame["patient_key"], f"patient list ({len(frame)} patients)")
    frame["priority"] = frame["tier"]
    # The JSON contract: grades as wbc_grade/anc_grade/alc_grade, explanations as flag -> sentence.
    for analyte in ("wbc", "anc", "alc"):
        frame[f"{analyte}_grade"] = frame[f"latest_{analyte}_grade"]
    frame["nadir_window"] = [
        None if pd.isna(first) or pd.isna(last) else [int(first), int(last)]
        for first, last in zip(frame["nadir_window_first"], frame["nadir_window_last"], strict=True)
    ]
    frame["explanations"] = [
        dict(zip(flags, sentences, strict=True))
        for flags, sentences in zip(frame["flags"], frame["explanations"], strict=True)
    ]
    if fmt == "table" and not wide:
        click.echo(_compact_text(_compact(frame, config.timezone)) if len(frame) else "(none)")
        return
    _emit(
        frame[PATIENT_COLUMNS],
        fmt,
        utc_columns=(*(latest_column(analyte, "at") for analyte in GRADED), "last_collected_at"),
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
@output_format()
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
    store = open_store(_config(database))
    viewer = _viewer(store, user)
    key = find_patient(store, viewer=viewer, patient_id=patient_id, authority=authority)
    frame = patient_results(store, viewer=viewer, patient_key=key, history=history)
    _record_view(store, viewer, user, key, "results")
    columns = RESULT_COLUMNS + (HISTORY_COLUMNS if history else [])
    if fmt == "table":  # for people: values rounded as labs print them, and as the lab sent them
        frame = _as_printed(frame)
        columns += [] if history else ["reported"]
    _emit(frame[columns], fmt, utc_columns=("collected_at",) + (("superseded_at",) if history else ()))


def _as_printed(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as sent ("<0.1" for a censored one) and limits, rounded as labs print them (a haemoglobin
    converted from mmol/L is 9.99, never 9.990332), and ``reported``: the value and unit as the lab sent
    them, where the unit was converted."""
    converted = frame["unit_raw"].notna() & frame["unit_raw"].ne(frame["unit"])
    sent = frame["value_raw"].astype("string") + " " + frame["unit_raw"].astype("string")
    return frame.assign(
        value=frame["comparator"].fillna("").astype("string") + printed(frame["value"], frame["analyte"]),
        ref_low=printed(frame["ref_low"], frame["analyte"]),
        ref_high=printed(frame["ref_high"], frame["analyte"]),
        reported=sent.where(converted.to_numpy(dtype=bool), ""),
    )


# Every column of monitor.analysis.cycles.treatment_cycles but the internal key and the computed end.
CYCLE_OUTPUT = [column for column in CYCLE_COLUMNS if column not in ("patient_key", "end")]


@cli.command()
@click.argument("patient_id")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@output_format()
@user_option
@store_options
def cycles(database: str | None, patient_id: str, authority: str | None, fmt: str, user: str | None) -> None:
    """A patient's chemotherapy cycles: nadir, recovery, G-CSF and readiness at the next start.

    Each cycle's delay and the G-CSF and dose-modification support (decision support naming its rule and
    source) are columns in json and csv, and sentences under the table.

    Days are calendar days in the site's zone from the start's date (day 0; D1 in the C#D# notation).
    The trend across cycles, and the cycle now with readiness for the planned next dose, are printed
    after the table (not in csv or json; `patients --format json` has the cycle now).

    \b
    Example:
      python -m monitor cycles DEMO-0003 --format json
    """
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    key = find_patient(store, viewer=viewer, patient_id=patient_id, authority=authority)
    found = patient_cycles(
        store, viewer=viewer, patient_key=key, timezone=config.timezone, now=datetime.now(UTC)
    )
    _record_view(store, viewer, user, key, "cycles")
    if fmt != "table":
        _emit(found.cycles[CYCLE_OUTPUT], fmt, utc_columns=("start", "next_start"))
        return
    # The delays and the decision support are sentences: printed under the table, one per line.
    _emit(found.table.drop(columns=["delay", "support"], errors="ignore"), fmt)
    for said in (*found.table.get("delay", ()), *found.table.get("support", ())):
        for sentence in str(said).split(" | ") if said else ():
            click.echo(sentence)
    for sentence in found.trend:
        click.echo(sentence)
    if found.now:
        click.echo(f"Now: {found.now}")


@cli.command()
@click.option(
    "--since",
    default=None,
    help="ISO 8601 date or time (UTC unless it has an offset); default: 24 hours ago.",
)
@output_format("text", "json")
@user_option
@store_options
def alerts(database: str | None, since: str | None, fmt: str, user: str | None) -> None:
    """Patients whose flags appeared or whose grades rose since a time, most urgent first.

    Patients come in the worklist's order (priority tier, then grades), then the most recent change.

    Only changes that still hold are listed (a flag that came and went is not an alert). A flag the lab
    took back by correcting or withdrawing a result is listed too ("leukopenia withdrawn: WBC 2.5 corrected
    to 5.0 by the lab on DATE"), and so is a preliminary result made final. Monitoring gaps
    (monitoring_gap) are listed when raised since the time: "CBC due: C3 nadir window D8-D15 opens DATE; no
    count since DATE" from cycles.due_lead_hours before a window with no count in it opens, and "nadir window
    missed" when it closed without one (see `python -m monitor due`).

    \b
    Examples:
      python -m monitor alerts
      python -m monitor alerts --since 2026-11-27T08:00:00Z --format json
    """
    now = datetime.now(UTC)
    start = now - timedelta(hours=24) if since is None else utc_time(since, "--since")
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    frame = find_alerts(store, viewer=viewer, since=start, timezone=config.timezone, now=now)
    listed = f"alerts since {start:%Y-%m-%dT%H:%M}Z ({len(frame)} patients)"
    _record_list_view(store, viewer, user, frame["patient_key"], listed)
    frame = frame.drop(columns="patient_key")
    if fmt == "json":
        _emit(frame, fmt)
        return
    if frame.empty:
        click.echo(f"no new or worsened flags since {start:%Y-%m-%d %H:%M} UTC")
        return
    for row in frame.itertuples(index=False):  # one block per patient (a short list)
        grade = "no grade" if pd.isna(row.grade) else f"grade {row.grade}"
        name = "" if pd.isna(row.name) else f"  {row.name}"  # a patient sent without a name has none
        click.echo(f"{row.patient_id}{name}  ({grade}; flags: {', '.join(row.flags) or 'none'})")
        for sentence in [*row.changes, *row.monitoring_gap]:
            click.echo(f"  - {sentence}")


@cli.command()
@click.argument("patient_id")
@click.option("--authority", default=None, help="Assigning authority, when an MRN is used by several.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="ISO 8601 date or time (UTC unless it has an offset): forecast as made then; default: now.",
)
@output_format("table", "json")
@user_option
@store_options
def forecast(
    database: str | None,
    patient_id: str,
    authority: str | None,
    as_of: str | None,
    fmt: str,
    user: str | None,
) -> None:
    """The nadir forecast of a patient's latest chemotherapy cycle started at or before --as-of, from the
    ANC results collected before it: the Friberg myelosuppression model fitted to the patient's own counts.

    nadir_anc is the median forecast nadir (x10^9/L) and nadir_anc_low/nadir_anc_high its 80 % interval
    (the model's count, without the laboratory's own error); nadir_day the day of the nadir and
    recovery_day the first day the median forecast is back at the site's recovery ANC (1.5) (elapsed days
    since the cycle's dose, the dose being day 0; null when not within the cycle); nadir_window the first
    and last calendar day (site zone) since the dosing day on which a CBC best catches the nadir ([9, 11]
    is D10-D12); p_grade4 the probability that the nadir is below 0.5 (CTCAE grade 4; 1 once a grade 4
    was measured in the cycle, observed_nadir_anc). Without a forecast (not enough data, G-CSF, weekly
    cycles, no chemotherapy) the figures are null and reason says why; the exit status is 0 either way.
    Decision support, never an order (docs/clinical-basis.md, Nadir forecast).

    \b
    Examples:
      python -m monitor forecast DEMO-0003 --format json
      python -m monitor forecast DEMO-0003 --as-of 2026-11-20T08:00:00Z
    """
    when = datetime.now(UTC) if as_of is None else utc_time(as_of, "--as-of")
    config = _config(database)
    store = open_store(config)
    viewer = _viewer(store, user)
    key = find_patient(store, viewer=viewer, patient_id=patient_id, authority=authority)
    found = patient_forecast(store, viewer=viewer, patient_key=key, timezone=config.timezone, as_of=when)
    _record_view(store, viewer, user, key, "nadir forecast")
    if fmt == "json":
        click.echo(json.dumps({"patient_id": patient_id, **found.as_dict()}, indent=1, ensure_ascii=False))
        return
    for line in forecast_lines(patient_id, found, config.timezone):
        click.echo(line)


def forecast_lines(patient_id: str, found: Forecast, timezone: str) -> list[str]:
    """The forecast in words for people, as the pages say it (``analysis.forecast.words``): the cycle, the
    sentence, the model and what it is."""
    started = (
        ""
        if found.cycle_start is None
        else f" started {found.cycle_start.tz_convert(timezone):%Y-%m-%d %H:%M} ({timezone})"
    )
    head = f"{patient_id}: C{found.cycle}{started}" if found.cycle is not None else patient_id
    if not forecast_made(found):
        return [head, forecast_sentence(found), f"Model: {found.model}"]
    return [
        head,
        forecast_sentence(found),
        f"Model: {found.model}; {found.n_anc_used} ANC results used. Days: D1 is the dosing day.",
        decision_support_caption(),
    ]
