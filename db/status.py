"""The materialised per-patient status: recomputed for the patients a write touched, read by lists."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session, aliased

from db.forecasts import status_forecasts
from db.frames import (
    CHUNK,
    bulk_insert,
    chunks,
    conflict_insert,
    read_copied,
    read_frame,
    read_frame_in,
    to_records,
)
from db.models import ClinicalEvent, Panel, Patient, PatientStatus, ReferenceOverride, Result, StatusChange
from db.settings import lab_ranges, site_rules
from monitor.analysis.changes import (
    FEBRILE,
    FEBRILE_UNJUDGED,
    GRADED,
    REVISION_COLUMNS,
    critical_changes,
    status_changes,
)
from monitor.analysis.cycles import readiness_now, stored_readiness, treatment_cycles
from monitor.analysis.cycles.support import support_now
from monitor.analysis.due import nadir_status
from monitor.analysis.febrile import febrile_episodes, febrile_now, unjudged_now
from monitor.analysis.flags import LINEAGES, patient_flags
from monitor.analysis.grading import ctcae_grade, ctcae_high_grade, resolve_lower_limit
from monitor.analysis.patterns import panel_pattern
from monitor.analysis.rules import SiteRules
from monitor.analysis.status import (
    EXCLUDED_STATUSES,
    OTHER_LATEST,
    lab_critical,
    latest_column,
    latest_values,
    mark_preliminary,
    preliminary_analytes,
)
from monitor.analytes import CBC_ANALYTES

# Patients recomputed at a time: as many as hold about PANELS_PER_PASS panels (as the stored status last
# counted them; a patient new to the store counts one), at most CHUNK (one IN list per read). This bounds
# the memory the flags' history needs however long the histories, and keeps the number of reads low: each
# read of a pass may be a scan of the results on PostgreSQL, whose planner prefers that for a large share
# of the patients (a full recompute at 8 million results took 210 s in passes of 500 patients).
PANELS_PER_PASS = 200_000
# Results that count for the status: current, not withdrawn, with a value.
USABLE = (Result.is_current.is_(True), Result.status.not_in(EXCLUDED_STATUSES), Result.value.is_not(None))


# Columns of a result as the status reads it (``_result_rows``), for results an import still holds.
HISTORY_COLUMNS = (
    "patient_key",
    "panel_id",
    "lab_id",
    "collected_at",
    "analyte",
    "value",
    "comparator",
    "ref_low",
    "ref_high",
    "status",
    "abnormal_flag",
    "unit_raw",
)
# Results an import keeps in memory for the status at its end (about 160 MB at this many; measured with
# benchmarks/import_csv.py: 1.27 GB peak at 1,000,000 results instead of 1.11 GB, 24 s instead of 30 s);
# beyond this it reads them back instead, so that the peak stays under 1.5 GB for any file size.
HELD_RESULTS_LIMIT = 1_000_000


@dataclasses.dataclass(slots=True)
class BatchResults:
    """The results an import wrote into panels it created itself, kept so the status need not read them
    back from the store: a panel created by this batch holds only this batch's results.

    Rows of the same panel and analyte written again later in the file (a final after its preliminary)
    replace the earlier ones, as they did in the store. Past ``HELD_RESULTS_LIMIT`` rows nothing is held
    (``overflowed``) and the status reads everything from the store, as it does for any other write.
    """

    batch_id: int
    parts: list[pd.DataFrame] = dataclasses.field(default_factory=list)
    held: int = 0
    overflowed: bool = False

    def add(self, written: pd.DataFrame) -> None:
        if self.overflowed or written.empty:
            return
        self.held += len(written)
        if self.held > HELD_RESULTS_LIMIT:
            self.parts, self.overflowed = [], True
            return
        self.parts.append(written[list(HISTORY_COLUMNS)])

    def current(self) -> pd.DataFrame:
        """The current, usable results in this batch's panels."""
        held = pd.concat(self.parts, ignore_index=True).drop_duplicates(["panel_id", "analyte"], keep="last")
        return held[~held["status"].isin(EXCLUDED_STATUSES).to_numpy() & held["value"].notna().to_numpy()]


def refresh_patient_status(
    session: Session,
    patient_keys: Sequence[int],
    *,
    now: datetime,
    timezone: str,
    written: BatchResults | None = None,
) -> None:
    """Recompute and replace the status rows of ``patient_keys`` (every patient keeps a row).

    Reads only what the status needs: per-patient panel counts computed by the database and the
    WBC/ANC/ALC history the latest values, grades and flags are drawn from. ``timezone``: the site's zone,
    in which a cycle's days are counted. ``written``: an import's own results, which are taken from memory
    rather than read back (the panels that batch created are skipped in the reads).
    """
    held = None
    if written is not None and written.parts and not written.overflowed:
        held = (written.batch_id, written.current())
    for part in passes(session, list(patient_keys)):
        _refresh(session, part, now=now, timezone=timezone, held=held)


def stored_panels(session: Session, patient_keys: list[int]) -> pd.Series:
    """Each patient's panels as their stored status last counted them (a patient new to the store, or
    with none, counts one), indexed by ``patient_keys`` in their order."""
    known = read_frame_in(
        session,
        lambda part: select(PatientStatus.patient_id, PatientStatus.n_panels).where(
            PatientStatus.patient_id.in_(part)
        ),
        patient_keys,
    )
    panels = pd.Series(1, index=pd.Index(patient_keys), dtype="int64")
    stored = known.set_index("patient_id")["n_panels"].clip(lower=1)
    panels.loc[stored.index] = stored.to_numpy()
    return panels


def passes(
    session: Session,
    patient_keys: list[int],
    *,
    per_pass: int | None = None,
    panels: pd.Series | None = None,
) -> list[list[int]]:
    """``patient_keys`` in passes of about ``per_pass`` panels (default ``PANELS_PER_PASS``) and at most
    ``CHUNK`` patients; ``panels``: their `stored_panels`, when the caller has read them already."""
    if len(patient_keys) <= 1:
        return [patient_keys] if patient_keys else []
    per_pass = PANELS_PER_PASS if per_pass is None else per_pass
    panels = stored_panels(session, patient_keys) if panels is None else panels
    by_panels = (panels.cumsum().to_numpy() - 1) // per_pass
    by_count = np.arange(len(patient_keys)) // CHUNK
    # A new pass wherever either the panel budget or the patient count rolls over.
    starts = np.flatnonzero(np.r_[True, (np.diff(by_panels) > 0) | (np.diff(by_count) > 0)])
    bounds = [*starts.tolist(), len(patient_keys)]
    return [patient_keys[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _refresh(
    session: Session,
    patient_keys: list[int],
    *,
    now: datetime,
    timezone: str,
    held: tuple[int, pd.DataFrame] | None,
) -> None:
    if not patient_keys:
        return
    rows = computed_status(session, patient_keys, now=now, timezone=timezone, held=held)
    store_status(session, patient_keys, rows, now=now, timezone=timezone)


def store_status(
    session: Session, patient_keys: list[int], rows: pd.DataFrame, *, now: datetime, timezone: str
) -> None:
    """Replace the status rows of ``patient_keys`` by ``rows`` (`computed_status`), recording what changed
    for the alerts."""
    write_status(
        session, patient_keys, prepared_status(session, patient_keys, rows, now=now, timezone=timezone)
    )


class Prepared(NamedTuple):
    """Status rows ready to replace the stored ones (``flags_changed_at`` and ``acknowledged_at`` carried
    forward or updated) and the changes against the stored ones to record (`prepared_status`)."""

    rows: pd.DataFrame
    changes: pd.DataFrame

    def of(self, patient_keys: Sequence[int]) -> Prepared:
        """The same for ``patient_keys`` only."""
        keys = list(patient_keys)
        rows = self.rows[self.rows["patient_id"].isin(keys).to_numpy()].reset_index(drop=True)
        if self.changes.empty:
            return Prepared(rows, self.changes)
        changes = self.changes[self.changes["patient_id"].isin(keys).to_numpy()].reset_index(drop=True)
        return Prepared(rows, changes)


def write_new_status(session: Session, prepared: Prepared) -> list[int]:
    """Insert the status rows of patients that had none (`prepared_status`), except where another writer's
    row has appeared since (it stands), with the changes of those inserted; return their keys."""
    if prepared.rows.empty:
        return []
    rows = prepared.rows[[column.name for column in PatientStatus.__table__.columns]]
    statement = (
        conflict_insert(session, PatientStatus)
        .on_conflict_do_nothing(index_elements=["patient_id"])
        .returning(PatientStatus.patient_id)
    )
    inserted = sorted(int(key) for key in session.scalars(statement, to_records(rows)))
    _insert_changes(session, prepared.of(inserted).changes)
    return inserted


def write_status(session: Session, patient_keys: list[int], prepared: Prepared) -> None:
    """Record the changes and replace the status rows of ``patient_keys`` (`prepared_status`)."""
    _insert_changes(session, prepared.changes)
    rows = prepared.rows[[column.name for column in PatientStatus.__table__.columns]]
    for part in chunks(list(patient_keys)):
        session.execute(delete(PatientStatus).where(PatientStatus.patient_id.in_(part)))
    bulk_insert(session, PatientStatus.__table__, rows)


def _insert_changes(session: Session, changes: pd.DataFrame) -> None:
    """Record status changes (`Prepared.changes`) for the alerts."""
    if not changes.empty:
        bulk_insert(
            session,
            StatusChange.__table__,
            changes[[c.name for c in StatusChange.__table__.columns if c.name != "id"]],
        )


class Inputs(NamedTuple):
    """What a status is computed from of each patient's results over all time, read once a pass (or kept
    between passes and extended: ``db.histories``)."""

    # patient_key, last_collected_at and n_panels: the panels with a usable CBC result.
    counts: pd.DataFrame
    # The usable current WBC, ANC and ALC results (``HISTORY_COLUMNS``).
    history: pd.DataFrame
    # The usable current temperatures.
    temperatures: pd.DataFrame
    # The latest usable haemoglobin and platelet result of each patient.
    others: pd.DataFrame


def latest_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The latest row of each patient and analyte in ``results`` (a `HISTORY_COLUMNS` frame), keeping its
    index: the latest drawn, and of two drawn at the same instant the later panel."""
    ordered = results.sort_values(["patient_key", "analyte", "collected_at", "panel_id"], kind="stable")
    return ordered.groupby(["patient_key", "analyte"]).tail(1)


def computed_status(
    session: Session,
    patient_keys: list[int],
    *,
    now: datetime,
    timezone: str,
    held: tuple[int, pd.DataFrame] | None = None,
    inputs: Inputs | None = None,
) -> pd.DataFrame:
    """The status rows of ``patient_keys`` as of ``now``, one a patient (``patient_id`` and the analysis'
    columns), read from the store and written nowhere: `store_status` writes them. ``inputs``: their
    results as `read_inputs` reads them, when the caller has them already."""
    inputs = read_inputs(session, patient_keys, held=held) if inputs is None else inputs
    counts, history, temperatures, others = inputs
    context = patient_context(session, list(patient_keys))
    # The limits that apply to each WBC, ANC and ALC, resolved once for what judges them against limits
    # (the flags, the latest grades, the pattern, the cycle support); ``history`` itself stays as read, for
    # the analyses that resolve their own.
    limited = with_limits(history, context)
    latest = latest_rows(history)
    summary = counts.set_index("patient_key").join(latest_values(latest))
    events = _treatment_events(session, list(patient_keys))
    febrile = _febrile_now(history, temperatures, events, context, now, timezone)
    flagged = _with_febrile_flag(_flagged(limited, context, now, timezone, events), febrile)
    summary = summary.join(_graded(limited.loc[latest.index], context)).join(flagged)
    # The latest haemoglobin and platelets, and the lab's critical flags on the latest results.
    summary = summary.join(_others_graded(others, context))
    summary = summary.join(lab_critical(pd.concat([latest, others], ignore_index=True)))
    # A flag whose lineage's latest result is preliminary says so (docs/clinical-basis.md, Preliminary
    # results); done here, outside monitor.analysis.flags, on the sentences it wrote.
    summary[["flags", "explanations"]] = mark_preliminary(
        summary[["flags", "explanations"]], preliminary_analytes(summary)
    )[["flags", "explanations"]]
    summary = summary.join(_pattern(session, limited, latest, context))
    summary = summary.join(_recent_wbc(history))
    summary = summary.join(_cycle_now(session, history, _chemotherapy(events), context, now, timezone))
    summary = summary.join(febrile)
    # The nadir forecast of the cycle now (copied from the stored row when its inputs did not change).
    forecasts = status_forecasts(
        session, summary["cycle"], history, events, rules=context.rules.cycles, now=now, timezone=timezone
    )
    summary = summary.join(forecasts)
    # Each patient's latest nadir window (the forecast's when there is one) and whether a count was drawn in
    # it (analysis.due: CBCs due).
    summary = summary.join(
        nadir_status(events, history, rules=context.rules.cycles, timezone=timezone, forecasts=forecasts)
    )
    summary = summary.reindex(list(patient_keys))
    # A column that no patient of this pass filled arrives as all-NaN floats: filled as text, or lists.
    for column in ("flags", "explanations"):
        summary[column] = [value if isinstance(value, list) else [] for value in summary[column]]
    summary["lab_critical"] = (
        summary["lab_critical"].astype(object).where(summary["lab_critical"].notna(), None)
    )
    for column, empty in (
        ("lab_critical_detail", ""),
        ("pattern_detail", ""),
        ("wbc_recent", "[]"),
        ("readiness", ""),
        ("febrile_detail", ""),
    ):
        summary[column] = summary[column].astype(object).fillna(empty)
    summary = _with_support(summary, limited, temperatures, events, context, now, timezone)
    summary["n_panels"] = summary["n_panels"].fillna(0).astype("int64")
    return summary.rename_axis("patient_id").reset_index().assign(computed_at=now)


def read_inputs(
    session: Session, patient_keys: list[int], *, held: tuple[int, pd.DataFrame] | None = None
) -> Inputs:
    """The `Inputs` of ``patient_keys`` read from the store; ``held``: an import's own results (batch id,
    rows), taken from memory instead (the reads skip the panels of that batch)."""
    usable = USABLE
    mine = pd.DataFrame(columns=list(HISTORY_COLUMNS))
    if held is not None:
        batch_id, results = held
        usable = (*USABLE, or_(Panel.batch_id.is_(None), Panel.batch_id != batch_id))
        mine = results[results["patient_key"].isin(patient_keys).to_numpy()]
    counts = read_frame_in(
        session,
        lambda part: (
            select(
                Panel.patient_id.label("patient_key"),
                func.max(Panel.collected_at).label("last_collected_at"),
                func.count(Panel.id).label("n_panels"),
            )
            .where(Panel.patient_id.in_(part), has_cbc(usable))
            .group_by(Panel.patient_id)
        ),
        list(patient_keys),
    )
    # One read of the WBC, ANC and ALC history serves the latest values, their grades and the flags.
    history = _history(session, list(patient_keys), usable)
    temperatures = _temperatures(session, list(patient_keys), usable)
    if not mine.empty:
        counts = _with_held_panels(counts, mine[mine["analyte"].isin(CBC_ANALYTES).to_numpy()])
        lineages = mine[mine["analyte"].isin(tuple(LINEAGES)).to_numpy()]
        history = pd.concat([history, lineages.astype(history.dtypes.to_dict())], ignore_index=True)
        held_temperatures = mine[mine["analyte"].eq("temp").to_numpy(dtype=bool)]
        if not held_temperatures.empty:
            temperatures = pd.concat([temperatures, held_temperatures], ignore_index=True)
    others = _latest_others(session, list(patient_keys), usable, mine)
    return Inputs(counts, history, temperatures, others)


def has_cbc(usable: tuple[Any, ...]) -> Any:
    """A panel has a usable CBC result: each panel found by one probe of its results (EXISTS), not by
    joining and counting every result (a quarter of the time on SQLite)."""
    return (
        select(Result.id)
        .where(Result.panel_id == Panel.id, Result.analyte.in_(CBC_ANALYTES), *usable)
        .exists()
    )


def _with_held_panels(counts: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """Panel counts and last collection times with the held panels added (they were not counted: the
    reads skip the panels the import created, so the two sets never overlap)."""
    panels = held.drop_duplicates("panel_id").groupby("patient_key")
    mine = pd.DataFrame({"last_collected_at": panels["collected_at"].max(), "n_panels": panels.size()})
    stored = counts.set_index("patient_key")
    both = stored.reindex(stored.index.union(mine.index))
    both["n_panels"] = both["n_panels"].fillna(0) + mine["n_panels"].reindex(both.index).fillna(0)
    both["last_collected_at"] = pd.concat(
        [stored["last_collected_at"], mine["last_collected_at"]], axis=1
    ).max(axis=1)
    return both.rename_axis("patient_key").reset_index()


def prepared_status(
    session: Session, patient_keys: list[int], rows: pd.DataFrame, *, now: datetime, timezone: str
) -> Prepared:
    """``rows`` (`computed_status`) compared with the stored status (read, nothing written: `write_status`
    writes it): what changed (flags appeared, cleared or withdrawn by the lab, grades up, preliminary results
    made final), for alerts, and ``rows`` with ``flags_changed_at`` and ``acknowledged_at`` carried forward or
    updated."""
    latest_at = [latest_column(a, "at") for a in GRADED]
    stored = read_frame_in(
        session,
        lambda part: select(
            PatientStatus.patient_id,
            PatientStatus.flags,
            PatientStatus.explanations,
            PatientStatus.flags_changed_at,
            PatientStatus.acknowledged_at,
            PatientStatus.computed_at,
            *(getattr(PatientStatus, f"latest_{a}_grade") for a in GRADED),
            *(getattr(PatientStatus, column) for column in latest_at),
            *(getattr(PatientStatus, latest_column(a, "status")) for a in GRADED),
            PatientStatus.lab_critical_detail,
        ).where(PatientStatus.patient_id.in_(part)),
        patient_keys,
        utc=["flags_changed_at", "acknowledged_at", "computed_at", *latest_at],
    )
    changes = status_changes(
        _comparable(stored), _comparable(rows), _revisions(session, stored), timezone=timezone
    )
    # A new critical result from the lab is a change too (docs/clinical-basis.md, The lab's abnormal flags).
    critical = critical_changes(
        stored.rename(columns={"patient_id": "patient_key"}),
        rows.rename(columns={"patient_id": "patient_key"}),
    )
    if not critical.empty:
        changes = pd.concat([changes, critical], ignore_index=True) if not changes.empty else critical
    kept = stored.set_index("patient_id")
    worse = changes.loc[changes["change"].isin(["appeared", "worsened"]).to_numpy(), "patient_key"].unique()

    def carried(column: str) -> pd.Series:
        return pd.Series(
            pd.to_datetime(kept[column], utc=True).reindex(rows["patient_id"]).array, index=rows.index
        )

    rows = rows.assign(
        flags_changed_at=carried("flags_changed_at").where(
            ~rows["patient_id"].isin(worse), pd.Timestamp(now)
        ),
        acknowledged_at=carried("acknowledged_at"),
    )
    if changes.empty:
        return Prepared(rows, changes)
    when = rows.set_index("patient_id")["last_collected_at"]
    changes = changes.rename(columns={"patient_key": "patient_id"})
    changes = changes.assign(recorded_at=now, collected_at=changes["patient_id"].map(when).to_numpy())
    return Prepared(rows, changes)


def _comparable(status: pd.DataFrame) -> pd.DataFrame:
    """Status rows as ``analysis.changes`` takes them: flags and explanations as tuples, grades, the latest
    results' collection times and statuses named."""
    return pd.DataFrame(
        {
            "patient_key": status["patient_id"].to_numpy(),
            "flags": status["flags"].astype(object).map(tuple).to_numpy(),
            "explanations": status["explanations"].astype(object).map(tuple).to_numpy(),
            **{f"{a}_grade": status[f"latest_{a}_grade"].to_numpy() for a in GRADED},
            **{f"{a}_at": pd.to_datetime(status[latest_column(a, "at")], utc=True).array for a in GRADED},
            **{f"{a}_status": status[latest_column(a, "status")].to_numpy() for a in GRADED},
        }
    )


def _revisions(session: Session, stored: pd.DataFrame) -> pd.DataFrame:
    """The WBC, ANC and ALC results revised (a newer version of the same panel and analyte stored) since
    each patient's status was last computed, with the version each replaced (``REVISION_COLUMNS``)."""
    known = stored.dropna(subset=["computed_at"])
    if known.empty:
        return pd.DataFrame(columns=list(REVISION_COLUMNS))
    since = known["computed_at"].min().to_pydatetime()
    now_, was = aliased(Result), aliased(Result)
    found = read_frame_in(
        session,
        lambda part: (
            select(
                Panel.patient_id.label("patient_key"),
                now_.analyte,
                Panel.collected_at,
                now_.created_at.label("revised_at"),
                now_.status,
                now_.value,
                now_.comparator,
                was.status.label("status_before"),
                was.value.label("value_before"),
                was.comparator.label("comparator_before"),
            )
            .join(now_, now_.panel_id == Panel.id)
            .join(
                was,
                (was.panel_id == now_.panel_id)
                & (was.analyte == now_.analyte)
                & (was.version == now_.version - 1),
            )
            .where(
                Panel.patient_id.in_(part),
                now_.is_current.is_(True),
                now_.version > 1,
                now_.analyte.in_(GRADED),
                now_.created_at > since,
            )
        ),
        [int(key) for key in known["patient_id"]],
        utc=["collected_at", "revised_at"],
    )
    if found.empty:
        return pd.DataFrame(columns=list(REVISION_COLUMNS))
    # Only what arrived after this patient's own last computation (the read used the earliest of them).
    computed = found["patient_key"].map(known.set_index("patient_id")["computed_at"])
    return found[(found["revised_at"] > computed).to_numpy(dtype=bool)].reset_index(drop=True)


class Context(NamedTuple):
    """What judging these patients' results needs besides the results: limits, ages, the site's rules."""

    overrides: pd.DataFrame
    people: pd.DataFrame
    lab_ranges: pd.DataFrame
    rules: SiteRules


def patient_context(session: Session, patient_keys: list[int]) -> Context:
    """Active patient-specific ranges (latest per analyte), birth dates with sex, lab ranges and rules."""
    overrides = read_frame_in(
        session,
        lambda part: select(
            ReferenceOverride.patient_id.label("patient_key"),
            ReferenceOverride.analyte,
            ReferenceOverride.low,
            ReferenceOverride.high,
            ReferenceOverride.set_at,
        ).where(ReferenceOverride.patient_id.in_(part), ReferenceOverride.is_active.is_(True)),
        patient_keys,
    )
    overrides = overrides.sort_values("set_at").drop_duplicates(["patient_key", "analyte"], keep="last")
    people = read_frame_in(
        session,
        lambda part: select(Patient.id.label("patient_key"), Patient.birth_date, Patient.sex).where(
            Patient.id.in_(part)
        ),
        patient_keys,
    )
    return Context(overrides, people, lab_ranges(session), site_rules(session))


def with_limits(results: pd.DataFrame, context: Context) -> pd.DataFrame:
    """``results`` with ``lln``, ``uln`` and ``range_source``: the limits that apply to each, and whose; and
    ``flag_limit``, the limit the low-count flags apply (a child's ANC: the paediatric neutropenia cut-off
    where it is below the interval's LLN; docs/clinical-basis.md, Paediatric neutropenia).

    ``results`` has ``lab_id`` when the labs' configured ranges are to be used.
    """
    lab = results["lab_id"] if "lab_id" in results else None
    resolved = resolve_lower_limit(
        results.assign(lab=lab) if lab is not None else results,
        overrides=context.overrides,
        lab_ranges=context.lab_ranges if lab is not None else None,
        birth_dates=context.people,
    )
    return results.assign(
        lln=resolved["lln"],
        uln=resolved["uln"],
        range_source=resolved["range_source"],
        flag_limit=resolved["flag_limit"],
    )


def _result_rows() -> Select[Any]:
    """Results with their panel's patient, time and lab: what limits, grades and flags are computed from."""
    return select(
        Panel.patient_id.label("patient_key"),
        Panel.id.label("panel_id"),
        Panel.lab_id,
        Panel.collected_at,
        Result.analyte,
        Result.value,
        Result.comparator,
        Result.ref_low,
        Result.ref_high,
        Result.status,
        Result.abnormal_flag,
        Result.unit_raw,
    ).join(Result, Result.panel_id == Panel.id)


def _history(session: Session, patient_keys: list[int], usable: tuple[Any, ...]) -> pd.DataFrame:
    """The usable current WBC, ANC and ALC results of these patients, with their panel and time."""
    return _read_results(
        session,
        lambda part: _result_rows().where(
            Panel.patient_id.in_(part), Result.analyte.in_(tuple(LINEAGES)), *usable
        ),
        patient_keys,
    )


# The columns of ``_result_rows`` by how ``_read_results`` builds them (the rest are text).
_WHOLE = ("patient_key", "panel_id", "lab_id")
_NUMBERS = ("value", "ref_low", "ref_high")
_TIMES = ("collected_at",)


def _read_results(session: Session, build: Any, keys: Sequence[Any]) -> pd.DataFrame:
    """``read_frame_in`` for the columns of ``_result_rows`` (with the same dtypes), faster on many rows.

    The driver's rows become one NumPy structured array (one conversion in C, instead of a frame built
    from Python tuples), then columns: numbers as float64, text as pandas infers it, and each distinct
    collection time parsed once (the results of a panel share theirs). A history of 600,000 results
    is framed in about a quarter of the time.
    """
    parts = [_read_result_rows(session, build(part)) for part in chunks(list(keys))]
    if not parts:
        return read_frame(session, build([]))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _no_results(names: list[str]) -> pd.DataFrame:
    """No rows, in the dtypes ``read_frame`` gives the columns of ``_result_rows`` when it finds none."""

    def dtype(name: str) -> str:
        if name in _WHOLE:
            return "int64"
        if name in _NUMBERS:
            return "float64"
        return "datetime64[us, UTC]" if name in _TIMES else "str"

    return pd.DataFrame({name: pd.Series(dtype=dtype(name)) for name in names})


def _read_result_rows(session: Session, statement: Select[Any]) -> pd.DataFrame:
    names = list(statement.selected_columns.keys())
    if session.connection().dialect.name == "postgresql" and set(names) <= {*HISTORY_COLUMNS, "value_raw"}:
        copied = read_copied(session, statement, whole=_WHOLE, numbers=_NUMBERS, times=_TIMES)
        return copied if not copied.empty else _no_results(names)
    result = session.connection().execute(statement)
    names = list(result.keys())
    try:
        rows = result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()
    if not set(names) <= set(HISTORY_COLUMNS) | {"value_raw"}:
        return read_frame(session, statement)
    if not rows:
        return _no_results(names)
    whole = [name in _WHOLE for name in names]
    packed = np.array(rows, dtype=[(name, "i8" if w else "O") for name, w in zip(names, whole, strict=True)])
    columns: dict[str, Any] = {}
    for name in names:
        values = packed[name]
        if name in _WHOLE:
            columns[name] = values
        elif name in _NUMBERS:
            columns[name] = values.astype("float64")
        elif name in _TIMES:
            codes, distinct = pd.factorize(values)
            moments = pd.to_datetime(pd.Series(distinct, dtype=object), utc=True, format="ISO8601")
            columns[name] = moments.astype("datetime64[us, UTC]").array.take(codes, allow_fill=True)
        else:
            # Text with few distinct values (analytes, statuses, units): its dtype inferred from those
            # (as a frame of the rows would infer it from all of them), the column taken from them.
            codes, distinct = pd.factorize(values)
            words = pd.Series(np.append(distinct.astype(object), None)).array
            columns[name] = words.take(np.where(codes < 0, len(distinct), codes))
    return pd.DataFrame(columns)


def _treatment_events(session: Session, patient_keys: list[int]) -> pd.DataFrame:
    """The chemotherapy, fever, G-CSF and medication events of these patients (``start_at`` UTC), read once
    per pass: the flags' trend leaves the cycles out, the cycle now is judged from them, a fever written in
    an event counts for febrile neutropenia where no temperature was measured near it (``analysis.febrile``),
    and G-CSF (kind gcsf, or a medication naming one) decides the prophylaxis support
    (``analysis.cycles.support``)."""
    return read_frame_in(
        session,
        lambda part: select(
            ClinicalEvent.patient_id.label("patient_key"),
            ClinicalEvent.kind,
            ClinicalEvent.start_at,
            ClinicalEvent.end_at,
            ClinicalEvent.label,
            ClinicalEvent.details,
        ).where(
            ClinicalEvent.patient_id.in_(part),
            ClinicalEvent.kind.in_(("chemotherapy", "fever", "gcsf", "medication")),
        ),
        patient_keys,
        utc=["start_at", "end_at"],
    )


def _chemotherapy(events: pd.DataFrame) -> pd.DataFrame:
    """The chemotherapy events among ``events``."""
    return events[events["kind"].eq("chemotherapy").to_numpy(dtype=bool)]


def _flagged(
    limited: pd.DataFrame, context: Context, now: datetime, timezone: str, events: pd.DataFrame
) -> pd.DataFrame:
    """Flags and their explanations from each patient's WBC, ANC and ALC history with its limits
    (``with_limits``; monitor.analysis.flags):
    days counted in the site's ``timezone``, the trend outside the chemotherapy cycles of ``events``, a high
    WBC or ANC expected while the G-CSF of ``events`` acts (docs/clinical-basis.md, High counts)."""
    if limited.empty:
        return pd.DataFrame(columns=["flags", "explanations"], index=pd.Index([], name="patient_key"))
    flagged = patient_flags(
        limited,
        as_of=pd.Timestamp(now),
        timezone=timezone,
        rules=context.rules.flags,
        events=events,
        cycle_rules=context.rules.cycles,
    )
    return pd.DataFrame(
        {
            "flags": [list(flags) for flags in flagged["flags"]],
            "explanations": [list(sentences) for sentences in flagged["explanations"]],
        },
        index=pd.Index(flagged["patient_key"], name="patient_key"),
    )


# What ``_graded`` adds of each latest WBC, ANC and ALC.
_GRADED_FIELDS = ("lln", "uln", "range_source", "grade", "high_grade")


def _graded(latest: pd.DataFrame, context: Context) -> pd.DataFrame:
    """Per patient, the limits that apply to the latest WBC, ANC and ALC (``latest`` carries them:
    ``with_limits``), their source, the grade and the grade of a high count (Leukocytosis, Lymphocyte count
    increased).

    The limits are resolved in order: an active patient-specific override (e.g. a Duffy-null ANC range),
    the range reported with the result, a population default for the patient's age and sex.
    """
    columns = [f"latest_{a}_{field}" for a in GRADED for field in _GRADED_FIELDS]
    if latest.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    graded = latest.copy()
    graded["grade"] = ctcae_grade(
        graded[["analyte", "value", "lln", "comparator"]], rules=context.rules.grading
    )
    graded["high_grade"] = ctcae_high_grade(
        graded[["analyte", "value", "comparator"]], rules=context.rules.grading
    )
    wide = graded.pivot_table(
        index="patient_key", columns="analyte", values=list(_GRADED_FIELDS), aggfunc="first"
    )
    out = pd.DataFrame(index=pd.Index(sorted(latest["patient_key"].unique()), name="patient_key"))
    for analyte in GRADED:
        for field in _GRADED_FIELDS:
            source = wide[(field, analyte)] if (field, analyte) in wide.columns else None
            out[f"latest_{analyte}_{field}"] = source if source is not None else None
    return out[columns]


def latest_others(session: Session, patient_keys: list[int]) -> pd.DataFrame:
    """The latest usable haemoglobin and platelet result of each patient, with its time and status
    (``HISTORY_COLUMNS``; a printed handover dates and marks them)."""
    return _latest_others(session, patient_keys, USABLE, pd.DataFrame(columns=list(HISTORY_COLUMNS)))


def _latest_others(
    session: Session, patient_keys: list[int], usable: tuple[Any, ...], held: pd.DataFrame
) -> pd.DataFrame:
    """The latest usable haemoglobin and platelet result of each patient (``HISTORY_COLUMNS``): the
    newest collection time per patient and analyte is found by the database, then that panel's rows read;
    ``held``, an import's own results, joins them.

    Most patients' latest panel holds both: the rows of each patient's newest panels are read first (the
    newest time per patient is one index range each), and only the patients missing either there are
    searched through all their results.
    """

    def last_panels(part: list[int]) -> Select[Any]:
        # The conditions past USABLE are on panels (an import's own, read from memory instead): the newest
        # of the other panels.
        last = (
            select(Panel.patient_id.label("key"), func.max(Panel.collected_at).label("at"))
            .where(Panel.patient_id.in_(part), *usable[len(USABLE) :])
            .group_by(Panel.patient_id)
            .subquery()
        )
        return (
            _result_rows()
            .join(last, (last.c.key == Panel.patient_id) & (last.c.at == Panel.collected_at))
            .where(Result.analyte.in_(OTHER_LATEST), *usable)
        )

    def newest(part: list[int]) -> Select[Any]:
        found = (
            select(
                Panel.patient_id.label("key"),
                Result.analyte.label("code"),
                func.max(Panel.collected_at).label("at"),
            )
            .join(Result, Result.panel_id == Panel.id)
            .where(Panel.patient_id.in_(part), Result.analyte.in_(OTHER_LATEST), *usable)
            .group_by(Panel.patient_id, Result.analyte)
            .subquery()
        )
        return (
            _result_rows()
            .join(
                found,
                (found.c.key == Panel.patient_id)
                & (found.c.code == Result.analyte)
                & (found.c.at == Panel.collected_at),
            )
            .where(*usable)
        )

    first = _read_results(session, last_panels, patient_keys)
    found = first.groupby("patient_key")["analyte"].nunique()
    complete = found.index[found.to_numpy() == len(OTHER_LATEST)]
    done = set(complete.tolist())
    rest = [key for key in patient_keys if key not in done]
    stored = first[first["patient_key"].isin(complete).to_numpy(dtype=bool)]
    if rest:
        stored = pd.concat([stored, _read_results(session, newest, rest)], ignore_index=True)
    mine = held[held["analyte"].isin(OTHER_LATEST).to_numpy(dtype=bool)] if not held.empty else held
    both = pd.concat([stored, mine], ignore_index=True) if not mine.empty else stored
    both = both.reindex(columns=list(HISTORY_COLUMNS))
    if both.empty:
        return both
    return latest_rows(both).reset_index(drop=True)


def _others_graded(others: pd.DataFrame, context: Context) -> pd.DataFrame:
    """Per patient, ``latest_hgb`` (g/dL), ``latest_plt`` (10^9/L) and their CTCAE grades (Anemia, Platelet
    count decreased; a haemoglobin reported in mmol/L or g/L graded against that unit's column)."""
    columns = ["latest_hgb", "latest_hgb_grade", "latest_plt", "latest_plt_grade"]
    out = pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    if others.empty:
        return out
    limited = with_limits(others, context)
    grade = ctcae_grade(
        limited[["analyte", "value", "lln", "comparator", "unit_raw"]].astype({"unit_raw": object}),
        rules=context.rules.grading,
    )
    graded = limited.assign(grade=grade.astype("float64"))
    out = pd.DataFrame(index=pd.Index(sorted(others["patient_key"].unique()), name="patient_key"))
    for analyte in OTHER_LATEST:
        mine = graded[graded["analyte"].eq(analyte).to_numpy(dtype=bool)].set_index("patient_key")
        out[f"latest_{analyte}"] = mine["value"].astype("float64")
        out[f"latest_{analyte}_grade"] = mine["grade"].astype("Int64")
    return out[columns]


def _pattern(
    session: Session,
    limited: pd.DataFrame,
    latest: pd.DataFrame,
    context: Context,
) -> pd.DataFrame:
    """The pattern of each patient's latest panel with a WBC (``monitor.analysis.patterns``).

    The white-cell counts of that panel, with their limits, are in ``limited`` already; only its haemoglobin
    and platelets are read, by panel, with the value and unit as the lab printed them (graded and shown in
    that unit).
    """
    empty = pd.DataFrame(columns=["pattern", "pattern_detail"], index=pd.Index([], name="patient_key"))
    panels = latest.loc[latest["analyte"].eq("wbc").to_numpy(dtype=bool), ["patient_key", "panel_id"]]
    if panels.empty:
        return empty
    others = _read_results(
        session,
        lambda part: (
            _result_rows()
            .add_columns(Result.value_raw)
            .where(Panel.id.in_(part), Result.analyte.in_(("hgb", "plt")), *USABLE)
        ),
        [int(key) for key in panels["panel_id"]],
    )
    white = limited[limited["panel_id"].isin(panels["panel_id"]).to_numpy(dtype=bool)]
    if others.empty:
        return panel_pattern(white)
    return panel_pattern(pd.concat([white, with_limits(others, context)], ignore_index=True))


# Points in the worklist's sparkline.
RECENT_WBC = 12


def _recent_wbc(history: pd.DataFrame) -> pd.DataFrame:
    """The last ``RECENT_WBC`` WBC values of each patient, oldest first, as JSON lists."""
    wbc = history[history["analyte"].eq("wbc").to_numpy(dtype=bool)]
    wbc = wbc.sort_values(["patient_key", "collected_at", "panel_id"], kind="stable")
    recent = wbc.groupby("patient_key").tail(RECENT_WBC).groupby("patient_key")["value"].agg(list)
    return pd.DataFrame({"wbc_recent": recent.map(json.dumps)})


def _cycle_now(
    session: Session,
    history: pd.DataFrame,
    events: pd.DataFrame,
    context: Context,
    now: datetime,
    timezone: str,
) -> pd.DataFrame:
    """For patients in a chemotherapy cycle now: the cycle, its start, when the next dose is expected (its
    day and the day readiness is judged from, in the site's zone) and the verdict judged now (none before
    that window: ``analysis.cycles.readiness_now``). ``readiness`` keeps the verdict, with what the
    expected day rests on in front when not the regimen (``analysis.cycles.stored_readiness``); the
    sentence is made when shown, on the day shown (``analysis.cycles.readiness_as_of``)."""
    columns = ["cycle", "cycle_start", "next_dose_day", "readiness_from_day", "ready_now", "readiness"]
    empty = pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    if events.empty:
        return empty
    rules = context.rules.cycles
    since = now - timedelta(days=rules.readiness_window_days + 1)  # whole calendar days, any zone
    treated = [int(key) for key in events["patient_key"].unique()]
    platelets = read_frame_in(
        session,
        lambda part: (
            select(
                Panel.patient_id.label("patient_key"),
                Panel.collected_at,
                Result.analyte,
                Result.value,
                Result.comparator,
                Result.status,
            )
            .join(Result, Result.panel_id == Panel.id)
            .where(
                Panel.patient_id.in_(part),
                Panel.collected_at >= since,
                Result.analyte == "plt",
                Result.is_current.is_(True),
            )
        ),
        treated,
    )
    anc = history[history["analyte"].eq("anc").to_numpy(dtype=bool) & history["patient_key"].isin(treated)]
    counts = pd.concat([anc, platelets], ignore_index=True) if not platelets.empty else anc
    found = readiness_now(counts, events, as_of=pd.Timestamp(now), rules=rules, timezone=timezone)
    if found.empty:
        return empty
    stored = stored_readiness(found["planned_note"], found["verdict"])
    return found.assign(readiness=stored).set_index("patient_key")[columns]


def _temperatures(session: Session, patient_keys: list[int], usable: tuple[Any, ...]) -> pd.DataFrame:
    """The usable current temperatures (°C) of these patients: what febrile neutropenia is judged from."""
    return _read_results(
        session,
        lambda part: _result_rows().where(Panel.patient_id.in_(part), Result.analyte == "temp", *usable),
        patient_keys,
    )


def _febrile_now(
    history: pd.DataFrame,
    temperatures: pd.DataFrame,
    events: pd.DataFrame,
    context: Context,
    now: datetime,
    timezone: str,
) -> pd.DataFrame:
    """Per patient, febrile neutropenia now (``analysis.febrile``, IDSA 2010 and CTCAE v5.0, any patient,
    in a chemotherapy cycle or not): True during an episode, with its sentence in ``febrile_detail``;
    null with the words in ``febrile_detail`` and ``febrile_until`` when the latest recent fever cannot be
    judged for want of an ANC (``analysis.febrile.unjudged_now``; it stops counting then); False for a
    patient with a temperature or fever event recorded and neither; absent (null) for one with no
    temperature or fever event (docs/clinical-basis.md, Febrile neutropenia)."""
    columns = ["febrile_neutropenia", "febrile_detail", "febrile_until"]
    fevers = events[events["kind"].eq("fever").to_numpy(dtype=bool)]
    judged = pd.Index(pd.concat([temperatures["patient_key"], fevers["patient_key"]]).unique())
    if judged.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    anc = history[history["analyte"].eq("anc").to_numpy(dtype=bool) & history["patient_key"].isin(judged)]
    results = pd.concat([anc, temperatures], ignore_index=True) if not temperatures.empty else anc
    rules, as_of = context.rules.febrile, pd.Timestamp(now)
    found = febrile_now(febrile_episodes(results, fevers, rules=rules, timezone=timezone, as_of=as_of))
    current = found[found["current"].astype(bool).to_numpy()]
    unjudged = unjudged_now(results, fevers, rules=rules, timezone=timezone, as_of=as_of)
    unjudged = unjudged[~unjudged.index.isin(current.index)]
    out = pd.DataFrame(
        {"febrile_neutropenia": False, "febrile_detail": "", "febrile_until": pd.NaT},
        index=pd.Index(judged.astype("int64"), name="patient_key"),
    )
    out["febrile_until"] = pd.to_datetime(out["febrile_until"], utc=True)
    out["febrile_neutropenia"] = out["febrile_neutropenia"].astype(object)
    out.loc[unjudged.index, "febrile_neutropenia"] = None
    out.loc[unjudged.index, "febrile_detail"] = unjudged["sentence"].astype(str).to_numpy()
    out.loc[unjudged.index, "febrile_until"] = pd.to_datetime(unjudged["until"], utc=True).to_numpy()
    out.loc[current.index, "febrile_neutropenia"] = True
    out.loc[current.index, "febrile_detail"] = current["sentence"].astype(str).to_numpy()
    out.loc[current.index, "febrile_until"] = pd.to_datetime(current["until"], utc=True).to_numpy()
    return out[columns]


def _with_febrile_flag(flagged: pd.DataFrame, febrile: pd.DataFrame) -> pd.DataFrame:
    """``flagged`` with ``febrile_neutropenia`` first among the flags of the patients in an episode now
    (``febrile_unjudged`` of those whose recent fever cannot be judged), its sentence first among the
    explanations (``analysis.flags.FLAGS`` order)."""
    current = febrile[febrile["febrile_neutropenia"].eq(True).to_numpy(dtype=bool)]
    unjudged = febrile["febrile_neutropenia"].isna() & febrile["febrile_detail"].ne("")
    current = pd.concat([current, febrile[unjudged.to_numpy(dtype=bool)]])
    if current.empty:
        return flagged
    names = np.where(current["febrile_neutropenia"].eq(True).to_numpy(dtype=bool), FEBRILE, FEBRILE_UNJUDGED)
    out = flagged.reindex(flagged.index.union(current.index))
    for column, first in (
        ("flags", pd.Series(names, index=current.index)),
        ("explanations", current["febrile_detail"]),
    ):
        lists = [value if isinstance(value, list) else [] for value in out[column]]
        heads = first.reindex(out.index)
        out[column] = [
            [head, *rest] if isinstance(head, str) else rest for head, rest in zip(heads, lists, strict=True)
        ]
    return out.rename_axis("patient_key")


def _with_support(
    summary: pd.DataFrame,
    limited: pd.DataFrame,
    temperatures: pd.DataFrame,
    events: pd.DataFrame,
    context: Context,
    now: datetime,
    timezone: str,
) -> pd.DataFrame:
    """``summary`` with the cycle decision support that applies now appended to each patient's flags and
    explanations (``analysis.cycles.support.support_now``: G-CSF prophylaxis for the current cycle,
    secondary prophylaxis or dose reduction for it or the next), so they appear, clear, alert and are
    acknowledged as the other flags are."""
    treated = events.loc[events["kind"].eq("chemotherapy").to_numpy(dtype=bool), "patient_key"].unique()
    if len(treated) == 0:
        return summary
    mine = events[events["patient_key"].isin(treated).to_numpy(dtype=bool)]
    lineage, patient = limited["analyte"], limited["patient_key"]
    counted = limited[lineage.eq("anc").to_numpy(dtype=bool) & patient.isin(treated).to_numpy(dtype=bool)]
    # The cycles' febrile neutropenia from the temperatures as well (secondary prophylaxis follows it).
    temps = temperatures[temperatures["patient_key"].isin(treated).to_numpy(dtype=bool)]
    if not temps.empty:
        counted = pd.concat([counted, temps], ignore_index=True)
    rules = context.rules.cycles
    people = context.people[["patient_key", "birth_date"]]
    cycles = treatment_cycles(
        counted,
        mine,
        rules=rules,
        timezone=timezone,
        febrile=context.rules.febrile,
        birth_dates=people,
    )
    found = support_now(cycles, as_of=pd.Timestamp(now), rules=rules, timezone=timezone, birth_dates=people)
    if found.empty:
        return summary
    grouped = found.groupby("patient_key")
    flags, sentences = grouped["flag"].agg(list), grouped["sentence"].agg(list)
    keys = summary.index
    summary["flags"] = [list(f) + flags.get(k, []) for k, f in zip(keys, summary["flags"], strict=True)]
    summary["explanations"] = [
        list(e) + sentences.get(k, []) for k, e in zip(keys, summary["explanations"], strict=True)
    ]
    return summary


def refresh_all_status(session: Session, *, now: datetime, timezone: str, workers: int = 1) -> int:
    """Recompute every patient's status (after new rules, or a schema change that adds to it); return how
    many.

    ``workers`` > 1: on SQLite, the passes are computed by that many processes reading the store as
    committed (`db.status_pool`), for a transaction that has written nothing the status depends on (the
    command line's recompute); a store other processes cannot open (SQLite in memory) is recomputed here,
    and so is PostgreSQL, whose server the workers would share the cores with (`db.status_pool` has the
    figures)."""
    keys = [int(key) for key in session.scalars(select(Patient.id).order_by(Patient.id))]
    if workers > 1 and len(keys) > 1:
        from db.status_pool import beside_allowed, refresh_beside  # it imports this module

        if beside_allowed(session):
            refresh_beside(session, keys, now=now, timezone=timezone, workers=workers)
            return len(keys)
    refresh_patient_status(session, keys, now=now, timezone=timezone)
    return len(keys)
