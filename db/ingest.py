"""The write side: canonical results into the store, idempotently, in bulk, one transaction per file.

Natural keys make a repeated import change nothing: a patient is (assigning authority, MRN); a panel is
(patient, collection time, lab, accession); a result is (panel, analyte) with a version number. A result
whose content differs from the current version becomes a new version and the old one is kept, no longer
current. A preliminary result that arrives after the final one is refused rather than allowed to hide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import String, bindparam, insert, inspect, select, update
from sqlalchemy.orm import Session

from db.audit import record
from db.frames import bulk_insert, new_ids, read_frame_in, to_records
from db.models import (
    ClinicalEvent,
    ImportBatch,
    Lab,
    OtherObservation,
    Panel,
    Patient,
    RejectedRecord,
    Result,
)
from db.status import BatchResults
from monitor.formats.derive import derive_absolute_counts
from monitor.formats.parsed import OTHER_FIELDS, cut_raw
from monitor.formats.records import RESULT_CONTENT, STATUS_RANK, each_distinct
from monitor.formats.storable import NUL, Limits, fit

PANEL_KEY = ["patient_key", "collected_at", "lab_id", "accession"]
# Content that, when it differs from the stored current version, makes a new version.
CONTENT = list(RESULT_CONTENT)


# No record refused: one empty frame shared by every count (only ever read or concatenated, never changed;
# a new frame for each would cost the live feed's few-message writes most of a millisecond).
_NO_REFUSALS = pd.DataFrame(columns=["location", "raw_text", "reason"])


@dataclass(slots=True)
class WriteCounts:
    """What became of the records handed to `write_results`."""

    accepted: int = 0
    derived: int = 0
    unchanged: int = 0
    superseded: int = 0
    rejected: pd.DataFrame = field(default_factory=lambda: _NO_REFUSALS)
    patient_keys: list[int] = field(default_factory=list)
    # The lowest id of the panels written when all that was written is new panels (`write_new_panels`):
    # nothing else of these patients' results changed. None after any other write.
    first_panel: int | None = None

    def add(self, other: WriteCounts) -> None:
        """Fold another write's counts into these."""
        self.first_panel = None  # counts folded together tell nothing of what the writes were
        self.accepted += other.accepted
        self.derived += other.derived
        self.unchanged += other.unchanged
        self.superseded += other.superseded
        self.rejected = pd.concat([self.rejected, other.rejected], ignore_index=True)
        self.patient_keys = sorted(set(self.patient_keys) | set(other.patient_keys))


def _length(model: type[object], name: str) -> int | None:
    """The longest text a column keeps (None: any length)."""
    kind = inspect(model).columns[name].type
    return kind.length if isinstance(kind, String) else None


def _lengths(fields: dict[str, tuple[type[object], str]]) -> dict[str, int]:
    found = {name: _length(model, column) for name, (model, column) in fields.items()}
    return {name: length for name, length in found.items() if length is not None}


# Where each field of a file's records is kept: its longest value is that column's (db.models), and
# a longer one is refused with the record (monitor.formats.storable).
_IDENTIFIERS: dict[str, tuple[type[object], str]] = {
    "patient_id": (Patient, "mrn"),
    "assigning_authority": (Patient, "assigning_authority"),
}
_SPECIMEN: dict[str, tuple[type[object], str]] = {
    **_IDENTIFIERS,
    "lab": (Lab, "code"),
    "accession": (Panel, "accession"),
}
_RESULT_FIELDS: dict[str, tuple[type[object], str]] = {
    **_SPECIMEN,
    "loinc": (Result, "loinc"),
    "value": (Result, "value_raw"),
    "unit": (Result, "unit_raw"),
    "ref_raw": (Result, "ref_raw"),
    "abnormal_flag": (Result, "abnormal_flag"),
}
_OTHER_FIELDS: dict[str, tuple[type[object], str]] = {
    **_SPECIMEN,
    **{name: (OtherObservation, name) for name in OTHER_FIELDS if name not in ("value", "unit", "name")},
    "value": (OtherObservation, "value_raw"),
    "unit": (OtherObservation, "unit_raw"),
}
_PATIENT_FIELDS: dict[str, tuple[type[object], str]] = {**_IDENTIFIERS, "name": (Patient, "name")}
_EVENT_FIELDS: dict[str, tuple[type[object], str]] = {**_IDENTIFIERS, "label": (ClinicalEvent, "label")}


def field_limits() -> Limits:
    """The longest value the store keeps of each field of a file's records, read from its columns.

    (An observation's name outside the CBC is cut to fit where it is written, as it always was.)
    """
    return Limits(
        records=_lengths(_RESULT_FIELDS),
        others=_lengths(_OTHER_FIELDS),
        patients=_lengths(_PATIENT_FIELDS),
        events=_lengths(_EVENT_FIELDS),
        location=_length(RejectedRecord, "location"),
    )


def new_batch(
    session: Session,
    *,
    file_name: str,
    sha256: str,
    fmt: str,
    imported_by: str,
    now: datetime,
    timezone: str | None = None,
) -> ImportBatch:
    # An upload's name is the browser's: kept whole when it fits, else cut; never a NUL in it.
    file_name = fit(pd.Series([file_name.replace(NUL, "\ufffd")]), _length(ImportBatch, "file_name")).iloc[0]
    batch = ImportBatch(
        file_name=file_name,
        content_sha256=sha256,
        format=fmt,
        timezone=timezone,
        imported_by=imported_by,
        imported_at=now,
        accepted=0,
        unchanged=0,
        superseded=0,
        rejected=0,
    )
    session.add(batch)
    session.flush()
    # In the import's own transaction: the trail shows an import exactly when it landed.
    details = {"batch": batch.id, "file": file_name, "format": fmt}
    record(session, at=now, username=imported_by, action="import", details=details)
    return batch


def keep_rejected(session: Session, batch_id: int, rejected: pd.DataFrame) -> None:
    """Store refused records verbatim with their reasons, for review: the text as received cut to
    ``RAW_TEXT_LIMIT`` characters with a note saying so, the location to what its column keeps."""
    if rejected.empty:
        return
    rows = rejected.reindex(columns=["location", "raw_text", "reason"]).fillna("").astype(str)
    # PostgreSQL text cannot hold NUL: keep it visible as an escape instead.
    rows = rows.apply(lambda column: column.str.replace(NUL, "\\x00", regex=False))
    rows["raw_text"] = rows["raw_text"].map(cut_raw)
    rows["reason"] = rows["reason"].map(cut_raw)
    rows["location"] = fit(rows["location"], _length(RejectedRecord, "location"))
    bulk_insert(session, RejectedRecord.__table__, rows.assign(batch_id=batch_id))


def _with_defaults(frame: pd.DataFrame, defaults: dict[str, object]) -> pd.DataFrame:
    """``frame`` with each missing column added, holding its default."""
    return frame.assign(**{name: value for name, value in defaults.items() if name not in frame})


def ensure_labs(session: Session, labs: pd.DataFrame) -> dict[str, int]:
    """Lab id per code, adding unknown labs (``labs``: ``code``, optional ``name``, ``is_synthetic``)."""
    labs = labs.drop_duplicates("code")
    known = read_frame_in(
        session, lambda part: select(Lab.code, Lab.id).where(Lab.code.in_(part)), labs["code"].tolist()
    )
    missing = labs[~labs["code"].isin(known["code"])]
    if not missing.empty:
        rows = _with_defaults(missing, {"name": None, "is_synthetic": False})[
            ["code", "name", "is_synthetic"]
        ]
        rows["name"] = rows["name"].where(rows["name"].notna(), rows["code"])
        session.execute(insert(Lab), to_records(rows))
        known = read_frame_in(
            session, lambda part: select(Lab.code, Lab.id).where(Lab.code.in_(part)), labs["code"].tolist()
        )
    return dict(zip(known["code"], known["id"], strict=True))


def ensure_patients(session: Session, patients: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """Patient keys for (assigning_authority, patient_id) pairs, adding patients not yet known.

    ``patients`` may carry ``name``, ``birth_date``, ``sex``, ``is_synthetic`` for new patients. A known
    patient's demographics are never changed, only completed: a birth date or sex the store lacks is taken
    from the file (so that age-specific rules, e.g. paediatric neutropenia, can apply to a patient first
    seen without one).
    """
    pairs = patients.drop_duplicates(["assigning_authority", "patient_id"])

    def lookup() -> pd.DataFrame:
        found = read_frame_in(
            session,
            lambda part: select(Patient.assigning_authority, Patient.mrn, Patient.id).where(
                Patient.mrn.in_(part)
            ),
            pairs["patient_id"].unique().tolist(),
        )
        found = found.rename(columns={"mrn": "patient_id", "id": "patient_key"})
        return pairs[["assigning_authority", "patient_id"]].merge(
            found, on=["assigning_authority", "patient_id"], how="left"
        )

    keyed = lookup()
    _complete_demographics(session, pairs, keyed)
    missing = pairs[keyed["patient_key"].isna().to_numpy()]
    if not missing.empty:
        defaults = {"name": None, "birth_date": None, "sex": None, "is_synthetic": False}
        rows = _with_defaults(missing, defaults)[["assigning_authority", "patient_id", *defaults]]
        rows = rows.rename(columns={"patient_id": "mrn"})
        born = pd.to_datetime(rows["birth_date"].replace("", None), errors="coerce", format="mixed")
        rows["birth_date"] = born.dt.date.where(born.notna(), None)
        rows["sex"] = rows["sex"].where(rows["sex"].isin(["F", "M", "O", "U"]), None)
        rows["name"] = rows["name"].replace("", None)
        bulk_insert(session, Patient.__table__, rows.assign(created_at=now))
        keyed = lookup()
    keyed["patient_key"] = keyed["patient_key"].astype("int64")
    return keyed


def _complete_demographics(session: Session, pairs: pd.DataFrame, keyed: pd.DataFrame) -> None:
    """Fill a known patient's missing birth date and sex from the file; never overwrite a stored one."""
    known = keyed["patient_key"].notna().to_numpy()
    if not known.any():
        return
    given = pairs[known].assign(patient_key=keyed.loc[known, "patient_key"].astype("int64").to_numpy())
    if "birth_date" in given:
        born = pd.to_datetime(given["birth_date"].replace("", None), errors="coerce", format="mixed")
        given = given.assign(birth_date=born.dt.date.where(born.notna(), None))
    for column, valid in (("birth_date", None), ("sex", ("F", "M", "O", "U"))):
        if column not in given:
            continue
        values = given[column]
        usable = values.notna() & (values.isin(valid) if valid else True)
        rows = given.loc[usable.to_numpy(dtype=bool), ["patient_key", column]]
        if rows.empty:
            continue
        table = Patient.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("key"), table.c[column].is_(None))
            .values({column: bindparam("value")}),
            [{"key": int(k), "value": v} for k, v in zip(rows["patient_key"], rows[column], strict=True)],
        )


def _stored_panels(session: Session, patient_keys: list[int], *conditions: Any) -> pd.DataFrame:
    return read_frame_in(
        session,
        lambda part: select(
            Panel.id.label("panel_id"),
            Panel.patient_id.label("patient_key"),
            Panel.collected_at,
            Panel.lab_id,
            Panel.accession,
            Panel.batch_id.label("panel_batch"),
        ).where(Panel.patient_id.in_(part), *conditions),
        patient_keys,
        utc=["collected_at"],
    )


def _attach_panels(session: Session, results: pd.DataFrame, batch_id: int | None) -> pd.DataFrame:
    """``results`` with ``panel_id``: existing panels found by natural key, new ones inserted in bulk.

    Only the panels that can match are read: those of these patients within the time span of these
    results, and after the insert only the panels it added.
    """
    reported = results["reported_at"] if "reported_at" in results else pd.Series(pd.NaT, index=results.index)
    specimens = results.assign(reported_at=reported).drop_duplicates(PANEL_KEY)[[*PANEL_KEY, "reported_at"]]
    patient_keys = specimens["patient_key"].unique().tolist()
    span = (
        Panel.collected_at >= specimens["collected_at"].min().to_pydatetime(),
        Panel.collected_at <= specimens["collected_at"].max().to_pydatetime(),
    )
    matched = specimens.merge(_stored_panels(session, patient_keys, *span), on=PANEL_KEY, how="left")
    # A panel created just now has no stored results: callers need not look for any.
    matched["new_panel"] = matched["panel_id"].isna()
    new = matched["new_panel"].to_numpy(dtype=bool)
    if new.any():
        # Numbered here, so that nothing is read back: the store's own numbering (new_ids).
        ids = new_ids(session, Panel.__table__, int(new.sum()))
        matched.loc[new, "panel_id"] = ids
        matched.loc[new, "panel_batch"] = batch_id
        rows = matched.loc[new, [*PANEL_KEY, "reported_at"]]
        rows = rows.rename(columns={"patient_key": "patient_id"}).assign(id=ids, batch_id=batch_id)
        bulk_insert(session, Panel.__table__, rows)
    matched["panel_id"] = matched["panel_id"].astype("int64")
    return results.merge(
        matched[[*PANEL_KEY, "panel_id", "new_panel", "panel_batch"]], on=PANEL_KEY, how="left"
    )


def key_specimens(
    session: Session,
    frame: pd.DataFrame,
    *,
    batch_id: int | None,
    now: datetime,
    patients: pd.DataFrame | None = None,
    labs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``frame`` (rows naming patient, lab, collection time, accession) with ``patient_key``, ``lab_id``
    and ``panel_id``, creating the patients, labs and panels not yet stored."""
    lab_ids = ensure_labs(
        session, labs if labs is not None else pd.DataFrame({"code": frame["lab"].unique()})
    )
    people = pd.concat(
        [patients if patients is not None else None, frame[["assigning_authority", "patient_id"]]]
    )
    keys = ensure_patients(session, people, now=now)
    keyed = frame.merge(keys, on=["assigning_authority", "patient_id"], how="left")
    keyed["lab_id"] = _mapped(keyed["lab"], lab_ids).astype("int64")
    return _attach_panels(session, keyed, batch_id)


def _mapped(values: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    """``values.map(mapping)`` as numbers, looked up once per distinct value (a piece holds a few labs and
    statuses in hundreds of thousands of rows); NaN where unmapped or missing."""
    return each_distinct(values, lambda distinct: distinct.map(mapping).astype("float64"))


def _current_versions(session: Session, panel_ids: list[int]) -> pd.DataFrame:
    return read_frame_in(
        session,
        lambda part: select(
            Result.id.label("current_id"),
            Result.panel_id,
            Result.analyte,
            Result.version.label("current_version"),
            Result.derived.label("current_derived"),
            *(getattr(Result, column).label(f"current_{column}") for column in CONTENT),
        ).where(Result.panel_id.in_(part), Result.is_current.is_(True)),
        panel_ids,
    )


def _same_content(frame: pd.DataFrame) -> pd.Series:
    same = pd.Series(True, index=frame.index)
    for column in CONTENT:
        mine, theirs = frame[column], frame[f"current_{column}"]
        same &= (mine == theirs).fillna(False) | (mine.isna() & theirs.isna())
    return same


def write_results(
    session: Session,
    results: pd.DataFrame,
    *,
    batch_id: int | None,
    now: datetime,
    patients: pd.DataFrame | None = None,
    labs: pd.DataFrame | None = None,
    held: BatchResults | None = None,
) -> WriteCounts:
    """Store canonical results (``monitor.formats.records.RESULT_COLUMNS``); the caller owns the transaction.

    ``patients`` and ``labs`` optionally describe new patients and labs more fully than the results do.
    ``held`` collects the results written into panels its batch created, for the status at the end.
    """
    counts = WriteCounts()
    if results.empty:
        if patients is not None and not patients.empty:
            ensure_patients(session, patients, now=now)
        return counts
    frame = key_specimens(session, results, batch_id=batch_id, now=now, patients=patients, labs=labs)
    frame = frame.merge(
        _current_versions(session, frame.loc[~frame["new_panel"], "panel_id"].unique().tolist()),
        on=["panel_id", "analyte"],
        how="left",
    )

    stored = frame["current_id"].notna()
    # A reported count always wins over one derived from a percentage (docs/clinical-basis.md, ANC derived
    # from a differential).
    derived_over_reported = frame["derived"].astype(bool) & ~frame["current_derived"].astype(
        "boolean"
    ).fillna(True).astype(bool)
    unchanged = stored & (_same_content(frame) | derived_over_reported)
    # A stored result moves forward only (preliminary -> final -> corrected -> withdrawn); a correction may
    # follow a correction. Anything else is stale or contradictory: refused, and the stored one kept.
    rank_now = _mapped(frame["status"], STATUS_RANK)
    rank_stored = _mapped(frame["current_status"], STATUS_RANK)
    current_derived = frame["current_derived"].astype("boolean").fillna(False).astype(bool)
    reported_over_derived = ~frame["derived"].astype(bool) & current_derived
    follows = (rank_now > rank_stored) | (frame["status"] == "corrected") | reported_over_derived
    refused = stored & ~unchanged & ~follows
    if refused.any():
        stale = frame[refused]
        counts.rejected = stale[["location", "raw_text"]].assign(
            reason="a "
            + stale["status"].astype(str)
            + " result differs from the "
            + stale["current_status"].astype(str)
            + " one already stored ("
            + stale["current_value"].astype("string").fillna("no value")
            + "); only a correction can change it, so the stored result is kept"
        )
    replacing = stored & ~unchanged & ~refused
    fresh = frame[~stored | replacing]

    if replacing.any():
        session.execute(
            update(Result),
            [
                {"id": int(i), "is_current": False, "superseded_at": now}
                for i in frame.loc[replacing, "current_id"]
            ],
        )
    if not fresh.empty:
        version = fresh["current_version"].fillna(0).astype("int64") + 1
        stored_columns = [
            c.name for c in Result.__table__.columns if c.name in fresh.columns and c.name != "id"
        ]
        rows = fresh[stored_columns].assign(
            version=version, is_current=True, batch_id=batch_id, created_at=now
        )
        # The store's share goes on while the next piece of the file is read (db.frames.bulk_insert).
        bulk_insert(session, Result.__table__, rows, behind=True)
        if held is not None:
            held.add(fresh[(fresh["panel_batch"] == held.batch_id).to_numpy()])

    counts.accepted = int((~stored).sum())
    counts.derived = int(fresh["derived"].sum())
    counts.superseded = int(replacing.sum())
    counts.unchanged = int(unchanged.sum())
    counts.patient_keys = sorted(fresh["patient_key"].unique().tolist())
    return counts


def write_generations(
    session: Session,
    results: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    batch_id: int,
    now: datetime,
    held: BatchResults,
) -> WriteCounts:
    """Write a file's results generation by generation (a preliminary, then its final, ...), derived
    counts last; patient status is left for the caller to refresh once (``held`` collects what it needs).

    Counts are derived from the latest generation of each value in the file.
    """
    if results.empty:
        return write_results(session, results, batch_id=batch_id, now=now, patients=patients)
    latest_first = results.sort_values("generation", ascending=False, kind="stable")
    derived = derive_absolute_counts(latest_first).assign(generation=int(results["generation"].max()))
    everything = pd.concat([results, derived], ignore_index=True) if len(derived) else results
    total = WriteCounts()
    for _, part in everything.groupby("generation", sort=True):
        counts = write_results(
            session,
            part.drop(columns="generation"),
            batch_id=batch_id,
            now=now,
            patients=patients,
            held=held,
        )
        total.add(counts)
    return total


OTHER_CONTENT = list(OTHER_FIELDS)


def write_others(session: Session, others: pd.DataFrame, *, batch_id: int | None, now: datetime) -> int:
    """Store observations outside the CBC as received; return how many were new."""
    if others.empty:
        return 0
    others = others.assign(collected_at=pd.to_datetime(others["collected_at"], utc=True, errors="coerce"))
    others = others[others["collected_at"].notna()].copy()
    if others.empty:
        return 0
    others["collected_at"] = others["collected_at"].astype("datetime64[us, UTC]")
    others["lab"] = others["lab"].where(others["lab"] != "", "unspecified")
    keyed = key_specimens(session, others, batch_id=batch_id, now=now)
    digest = pd.util.hash_pandas_object(keyed[OTHER_CONTENT].astype(str), index=False)
    keyed["content_hash"] = digest.map("{:016x}".format)
    keyed = keyed.drop_duplicates(["panel_id", "content_hash"])
    stored = read_frame_in(
        session,
        lambda part: select(OtherObservation.panel_id, OtherObservation.content_hash).where(
            OtherObservation.panel_id.in_(part)
        ),
        keyed["panel_id"].unique().tolist(),
    )
    new = keyed.merge(stored, on=["panel_id", "content_hash"], how="left", indicator=True)
    new = new[new["_merge"] == "left_only"]
    if new.empty:
        return 0
    rows = new[["panel_id", *OTHER_CONTENT, "content_hash"]].rename(
        columns={"value": "value_raw", "unit": "unit_raw"}
    )
    rows["name"] = rows["name"].str.slice(0, _length(OtherObservation, "name"))
    bulk_insert(session, OtherObservation.__table__, rows.assign(batch_id=batch_id, created_at=now))
    return len(rows)


def write_new_panels(
    session: Session,
    results: list[dict[str, Any]],
    patients: list[dict[str, str]],
    *,
    batch_id: int,
    now: datetime,
    labs: dict[str, int] | None = None,
) -> WriteCounts | None:
    """Write a few results (``RESULT_COLUMNS`` dicts) that all belong to panels new to the store, row by row:
    the live feed's write of a message or two, as `write_results` would write them at a fraction of its
    fixed cost. None, having written nothing but the patients and labs they name, when any of their panels
    is already stored (a repeat, a correction: `write_generations` then decides what changes).

    ``patients`` (``PATIENT_COLUMNS`` dicts) describe new patients and complete known ones as
    `ensure_patients` does. ``labs``: lab ids by code known to be stored (labs are never removed), looked
    up only when a code is missing, and completed here.
    """
    labs = {} if labs is None else labs
    codes = sorted({row["lab"] for row in results})
    if any(code not in labs for code in codes):
        labs.update(_lab_ids(session, codes))
    times = [row["collected_at"] for row in results]
    patient_keys, stored = _patients_and_panels(
        session, patients, results, span=(min(times), max(times)), now=now
    )
    specimens = panels_of(results, patient_keys, labs)
    if any(found in specimens for found in stored):
        return None
    # Written through the columns' own types (as `bulk_insert` writes them: the same stored values).
    ids = new_ids(session, Panel.__table__, len(specimens)).tolist()
    panel_rows, result_rows = new_panel_rows(
        results, specimens, ids, patient_keys, labs, batch_id=batch_id, now=now
    )
    session.execute(insert(Panel.__table__), panel_rows)
    session.execute(insert(Result.__table__), result_rows)
    counts = WriteCounts()
    counts.accepted = len(results)
    counts.patient_keys = sorted({key[0] for key in specimens})
    counts.first_panel = min(ids)
    return counts


def panels_of(
    results: list[dict[str, Any]], patient_keys: dict[tuple[str, str], int], labs: dict[str, int]
) -> dict[tuple[int, datetime, int, str], datetime | None]:
    """The panels of ``results`` (``RESULT_COLUMNS`` dicts) by natural key (`PANEL_KEY`), in the order they
    first appear, each with its report time (its first result's)."""
    specimens: dict[tuple[int, datetime, int, str], datetime | None] = {}
    for row in results:
        specimens.setdefault(_specimen(row, patient_keys, labs), row["reported_at"])
    return specimens


def new_panel_rows(
    results: list[dict[str, Any]],
    specimens: dict[tuple[int, datetime, int, str], datetime | None],
    ids: list[int],
    patient_keys: dict[tuple[str, str], int],
    labs: dict[str, int],
    *,
    batch_id: int,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of new panels (``specimens``, as `panels_of` gives them, numbered ``ids``) and of their
    ``results``, each the first version of its result."""
    panel_ids = dict(zip(specimens, ids, strict=True))
    panels = [
        {
            "id": panel_ids[key],
            "patient_id": key[0],
            "collected_at": key[1],
            "lab_id": key[2],
            "accession": key[3],
            "reported_at": reported,
            "batch_id": batch_id,
        }
        for key, reported in specimens.items()
    ]
    stored_columns = [name for name in _RESULT_STORED if name in results[0]]
    rows = [
        {
            **{name: row[name] for name in stored_columns},
            "panel_id": panel_ids[_specimen(row, patient_keys, labs)],
            "version": 1,
            "is_current": True,
            "superseded_at": None,
            "batch_id": batch_id,
            "created_at": now,
        }
        for row in results
    ]
    return panels, rows


# A result's columns that a canonical record carries (its panel, version and batch are the writer's).
_RESULT_STORED = [
    c.name
    for c in Result.__table__.columns
    if c.name not in ("id", "panel_id", "version", "is_current", "superseded_at", "batch_id", "created_at")
]


def _specimen(
    row: dict[str, Any], patient_keys: dict[tuple[str, str], int], lab_ids: dict[str, int]
) -> tuple[int, datetime, int, str]:
    """A result's panel by its natural key (`PANEL_KEY`)."""
    return (
        patient_keys[(row["assigning_authority"], row["patient_id"])],
        row["collected_at"],
        lab_ids[row["lab"]],
        row["accession"],
    )


def _lab_ids(session: Session, codes: list[str]) -> dict[str, int]:
    """Lab id per code, as `ensure_labs` gives it (which adds a lab not yet known)."""
    found = {
        str(code): int(key)
        for code, key in session.execute(select(Lab.code, Lab.id).where(Lab.code.in_(codes)))
    }
    if len(found) < len(codes):
        return ensure_labs(session, pd.DataFrame({"code": codes}))
    return found


def _patients_and_panels(
    session: Session,
    patients: list[dict[str, str]],
    results: list[dict[str, Any]],
    *,
    span: tuple[datetime, datetime],
    now: datetime,
) -> tuple[dict[tuple[str, str], int], set[tuple[Any, ...]]]:
    """Patient key per (assigning authority, identifier), as `ensure_patients` gives them (new patients
    added, a known patient's missing birth date and sex filled in, nothing else of theirs changed), and
    the natural keys (`PANEL_KEY`) of their panels collected within ``span``: one query for both."""
    described = {(p["assigning_authority"].strip(), p["patient_id"].strip()): p for p in patients}
    named = {(row["assigning_authority"], row["patient_id"]) for row in results}
    wanted = sorted(named | set(described))
    found: dict[tuple[str, str], int] = {}
    panels: set[tuple[Any, ...]] = set()
    statement = (
        select(
            Patient.assigning_authority,
            Patient.mrn,
            Patient.id,
            Panel.collected_at,
            Panel.lab_id,
            Panel.accession,
        )
        .select_from(Patient)
        .outerjoin(
            Panel,
            (Panel.patient_id == Patient.id)
            & (Panel.collected_at >= span[0])
            & (Panel.collected_at <= span[1]),
        )
        .where(Patient.mrn.in_(sorted({mrn for _, mrn in wanted})))
    )
    for authority, mrn, key, collected_at, lab_id, accession in session.execute(statement):
        found[(str(authority), str(mrn))] = int(key)
        if collected_at is not None:
            panels.add((int(key), collected_at, int(lab_id), str(accession)))
    if any(pair not in found for pair in wanted):
        keyed = ensure_patients(
            session,
            pd.DataFrame(
                [
                    described.get(pair, {"assigning_authority": pair[0], "patient_id": pair[1]})
                    for pair in wanted
                ]
            ),
            now=now,
        )
        keys = {
            (str(a), str(p)): int(k)
            for a, p, k in keyed[["assigning_authority", "patient_id", "patient_key"]].itertuples(index=False)
        }
        return keys, panels
    table = Patient.__table__
    for column, given in demographics(patients).items():
        if given:
            session.execute(
                update(table)
                .where(table.c.id == bindparam("key"), table.c[column].is_(None))
                .values({column: bindparam("value")}),
                [{"key": found[pair], "value": value} for pair, value in given.items()],
            )
    return {pair: found[pair] for pair in wanted}, panels


def demographics(patients: list[dict[str, str]]) -> dict[str, dict[tuple[str, str], Any]]:
    """What ``patients`` (``PATIENT_COLUMNS`` dicts) tell of each one's birth date and sex, by column and
    (assigning authority, identifier): what completes a stored patient who has none."""
    described = {(p["assigning_authority"].strip(), p["patient_id"].strip()): p for p in patients}
    return {
        "birth_date": {
            pair: date.fromisoformat(p["birth_date"]) for pair, p in described.items() if p["birth_date"]
        },
        "sex": {pair: p["sex"] for pair, p in described.items() if p["sex"] in ("F", "M", "O", "U")},
    }
