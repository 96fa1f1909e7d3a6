"""Each patient's result history kept between status recomputes by a long-lived process (the live feed's
status process, ``services.status_worker``), so that a status is extended with the panels a feed added
rather than read again from the whole history.

What is kept is what `db.status.read_inputs` reads of all time: the panels with a usable CBC result, the
WBC, ANC and ALC results, the temperatures and the latest haemoglobin and platelets. The status itself is
computed from them by the same code as any other (`db.status.computed_status`), so an extended status is
the status a whole read gives.

A patient's kept history is used only when both hold:

- the mark that makes them wait (``status_pending``) says that adding new panels is all that was done to
  their results since (``first_panel``, the lowest id of those panels; `db.feed.mark_pending`). A
  correction, a repeat or anything else of the file importer's way leaves it null;
- their stored status is the one computed here from what is kept (same ``computed_at``). Every other
  writer (an import, a patient's page, new rules, a recompute from the command line) recomputes the status
  of the patients it changes, so a status computed elsewhere means the history may have changed.

Then the panels from ``first_panel`` on are read (for a pass, from the lowest of its patients') and replace
what was kept of them: a panel whose id is below ``first_panel`` is one the kept history read as it is
now. Anything else is read whole and kept. A failed pass keeps nothing (`Staged` is kept only after the
commit). Past ``ROWS_KEPT`` rows, the patients recomputed longest ago are let go (read whole next time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import false, select, update
from sqlalchemy.orm import Session

from db.frames import chunks, read_frame_in
from db.models import Panel, PatientStatus, Result
from db.status import (
    USABLE,
    Inputs,
    Prepared,
    _history,
    _latest_others,
    _read_results,
    _result_rows,
    _temperatures,
    computed_status,
    has_cbc,
    latest_rows,
    passes,
    prepared_status,
    write_new_status,
    write_status,
)
from monitor.analysis.status import OTHER_LATEST

# Rows kept at most, over all patients and kinds: a store of 1,000,000 results keeps about 820,000 (its
# WBC, ANC and ALC results and its panels) in about 75 MB (`benchmarks.status_pass`), so this many take
# about 200 MB (a result's row takes about 160 bytes, a panel's about 30).
ROWS_KEPT = 2_000_000


@dataclasses.dataclass(slots=True)
class Staged:
    """What a pass computed, to be kept once its transaction commits (`Histories.keep`)."""

    keys: list[int]
    kept: dict[str, pd.DataFrame]
    computed_at: datetime
    extended: int
    whole: int
    # Patients whose stored status another writer replaced during the pass: not written, still waiting.
    contested: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class Histories:
    """The kept histories, by kind (``panels``: patient_key, panel_id, collected_at; ``history``,
    ``temperatures``, ``others``: rows as `db.status.read_inputs` reads them), and when each patient's status
    was computed from them."""

    rows_kept: int = ROWS_KEPT
    frames: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    computed_at: dict[int, pd.Timestamp] = dataclasses.field(default_factory=dict)
    # Statuses extended and read whole since this process started (for its log and the tests).
    extended: int = 0
    whole: int = 0

    def refresh(
        self,
        session: Session,
        waiting: Sequence[tuple[int, int | None]],
        *,
        now: datetime,
        timezone: str,
    ) -> Staged:
        """Recompute and store the status of the ``waiting`` patients (each with the ``first_panel`` of its
        mark), extending the kept histories where they serve; return what to keep after the commit.

        Every status is computed and compared with the stored one before any is written, so that the
        write (which on SQLite holds the store's one write lock) is short. A patient whose stored status
        another writer replaced while this pass computed is left to it (`Staged.contested`: not written,
        not kept, and still waiting)."""
        keys = [int(key) for key, _ in waiting]
        stored = _stored_status(session, keys)
        # The patients whose kept history serves, each with the lowest id of the panels added since.
        extendable = {
            int(key): int(first)
            for key, first in waiting
            if first is not None
            and key in self.computed_at
            and key in stored
            and stored[key][0] == self.computed_at[key]
        }
        whole = [key for key in keys if key not in extendable]
        computed: list[tuple[list[int], Prepared, dict[str, pd.DataFrame]]] = []
        for part in passes(session, whole):
            inputs, frames = _read_whole(session, part)
            computed.append((part, self._prepared(session, part, inputs, now, timezone), frames))
        for part in passes(session, list(extendable)):
            inputs, frames = self._extended(session, part, min(extendable[key] for key in part))
            computed.append((part, self._prepared(session, part, inputs, now, timezone), frames))
        claimed = set(_still_as_read(session, keys, stored))
        for part, prepared, _ in computed:
            mine = [key for key in part if key in claimed]
            if not mine:
                continue
            ready = prepared.of(mine)
            replacing = [key for key in mine if key in stored]
            write_status(session, replacing, ready.of(replacing))
            fresh = [key for key in mine if key not in stored]
            if fresh:
                claimed -= set(fresh) - set(write_new_status(session, ready.of(fresh)))
        kept = (
            {kind: _concat([_of(frames[kind], claimed) for _, _, frames in computed]) for kind in _KINDS}
            if computed
            else {}
        )
        return Staged(
            [key for key in keys if key in claimed],
            kept,
            now,
            extended=sum(key in claimed for key in extendable),
            whole=sum(key in claimed for key in whole),
            contested=[key for key in keys if key not in claimed],
        )

    @staticmethod
    def _prepared(
        session: Session, part: list[int], inputs: Inputs, now: datetime, timezone: str
    ) -> Prepared:
        """The statuses of ``part`` computed from ``inputs``, compared with the stored ones (reads only)."""
        rows = computed_status(session, part, now=now, timezone=timezone, inputs=inputs)
        return prepared_status(session, part, rows, now=now, timezone=timezone)

    def forget(self, keys: Sequence[int]) -> None:
        """Let go of these patients' histories (read whole next time)."""
        gone = {int(key) for key in keys}
        for key in gone:
            self.computed_at.pop(key, None)
        for kind, frame in self.frames.items():
            self.frames[kind] = frame[~frame["patient_key"].isin(list(gone)).to_numpy()].reset_index(
                drop=True
            )

    def keep(self, staged: Staged) -> None:
        """Keep what a committed pass computed (its patients' histories replace what was kept of them); let
        go of the patients it left to another writer."""
        if staged.contested:
            self.forget(staged.contested)
        if not staged.keys:
            return
        for kind in _KINDS:
            before = self.frames.get(kind)
            fresh = staged.kept.get(kind)
            parts = [] if fresh is None else [fresh]
            if before is not None and not before.empty:
                parts.insert(0, before[~before["patient_key"].isin(staged.keys).to_numpy()])
            if parts:
                self.frames[kind] = _concat(parts)
        moment = pd.Timestamp(staged.computed_at)
        for key in staged.keys:
            self.computed_at.pop(key, None)
            self.computed_at[key] = moment  # the last computed last (the order patients are let go in)
        self.extended += staged.extended
        self.whole += staged.whole
        self._within_limit()

    def rows(self) -> int:
        """Rows kept, over all patients and kinds."""
        return sum(len(frame) for frame in self.frames.values())

    def megabytes(self) -> float:
        """The memory the kept rows take (their texts, few and shared between rows, counted once a row as a
        reference)."""
        return sum(int(frame.memory_usage(index=True).sum()) for frame in self.frames.values()) / 1e6

    def _extended(
        self, session: Session, part: list[int], first: int
    ) -> tuple[Inputs, dict[str, pd.DataFrame]]:
        """The inputs of ``part``: what is kept of their panels below ``first``, and their panels from
        ``first`` on read from the store."""
        fresh = _read_from(session, part, first)
        frames: dict[str, pd.DataFrame] = {}
        for kind in _KINDS:
            before = self.frames.get(kind)
            parts = []
            if before is not None and not before.empty:
                mine = before["patient_key"].isin(part).to_numpy() & (before["panel_id"].to_numpy() < first)
                parts.append(before[mine])
            parts.append(fresh[kind])
            frames[kind] = _concat(parts)
        frames["others"] = _latest(frames["others"])
        return _inputs(frames), frames

    def _within_limit(self) -> None:
        """Let go of the patients recomputed longest ago while more than ``rows_kept`` rows are kept."""
        total = self.rows()
        if total <= self.rows_kept:
            return
        by_patient = pd.concat([frame["patient_key"] for frame in self.frames.values()]).value_counts()
        gone: list[int] = []
        for key in self.computed_at:  # oldest first
            if total <= self.rows_kept:
                break
            total -= int(by_patient.get(key, 0))
            gone.append(key)
        self.forget(gone)


# The kinds kept, in the order of `Inputs` (``panels`` stands for its counts).
_KINDS = ("panels", "history", "temperatures", "others")


def _still_as_read(session: Session, keys: list[int], read: dict[int, tuple[pd.Timestamp, Any]]) -> list[int]:
    """The patients of ``keys`` whose stored status is still the one ``read`` when the pass began (computed
    and acknowledged then, or still none), with no other writer able to replace or acknowledge a stored one
    until this pass commits.

    On PostgreSQL the stored rows are locked (``FOR UPDATE``, in the patients' order) and then read by a
    statement of their own, which sees whatever committed while the locks were waited for; on SQLite the
    store's write lock is taken first (by an UPDATE that changes nothing). A patient with no stored status
    has no row to lock: `write_new_status` inserts theirs only where no other writer's has appeared. Every
    writer that changes a patient's results recomputes their status in the same transaction, so a status
    replaced means results this pass may not have read; an acknowledgement made meanwhile covered the flags
    its author saw, which this pass's may not be (it is left to the next pass, which dates any new or worse
    flag after it)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(PatientStatus).where(false()).values(computed_at=PatientStatus.computed_at))
    else:
        for part in chunks(keys):
            session.execute(
                select(PatientStatus.patient_id)
                .where(PatientStatus.patient_id.in_(part))
                .order_by(PatientStatus.patient_id)
                .with_for_update()
            ).all()
    now_stored = _stored_status(session, keys)
    return [key for key in keys if _same(now_stored.get(key), read.get(key))]


def _same(one: tuple[pd.Timestamp, Any] | None, other: tuple[pd.Timestamp, Any] | None) -> bool:
    """Two (computed, acknowledged) pairs are the same (NaT equal to NaT)."""
    if one is None or other is None:
        return one is other
    return one[0] == other[0] and (one[1] == other[1] or (pd.isna(one[1]) and pd.isna(other[1])))


def _of(frame: pd.DataFrame, keys: set[int]) -> pd.DataFrame:
    """The rows of ``frame`` of the patients ``keys``."""
    return frame[frame["patient_key"].isin(list(keys)).to_numpy()]


def _stored_status(session: Session, keys: list[int]) -> dict[int, tuple[pd.Timestamp, Any]]:
    """When each patient's stored status was computed, and last acknowledged (NaT: never)."""
    found = read_frame_in(
        session,
        lambda part: select(
            PatientStatus.patient_id, PatientStatus.computed_at, PatientStatus.acknowledged_at
        ).where(PatientStatus.patient_id.in_(part)),
        keys,
        utc=["computed_at", "acknowledged_at"],
    )
    return {
        int(key): (pd.Timestamp(at), pd.Timestamp(seen))
        for key, at, seen in zip(
            found["patient_id"], found["computed_at"], found["acknowledged_at"], strict=True
        )
        if not pd.isna(at)
    }


def _panels(session: Session, part: list[int], *conditions: Any) -> pd.DataFrame:
    """The panels of ``part`` with a usable CBC result (patient_key, panel_id, collected_at)."""
    return _read_results(
        session,
        lambda keys: select(
            Panel.patient_id.label("patient_key"), Panel.id.label("panel_id"), Panel.collected_at
        ).where(Panel.patient_id.in_(keys), has_cbc(USABLE), *conditions),
        part,
    )


def _read_whole(session: Session, part: list[int]) -> tuple[Inputs, dict[str, pd.DataFrame]]:
    """The inputs of ``part`` read from the store, and the same to keep."""
    frames = {
        "panels": _panels(session, part),
        "history": _history(session, part, USABLE),
        "temperatures": _temperatures(session, part, USABLE),
        "others": _latest_others(session, part, USABLE, pd.DataFrame()),
    }
    return _inputs(frames), frames


def _read_from(session: Session, part: list[int], first: int) -> dict[str, pd.DataFrame]:
    """What `_read_whole` reads, of the panels of ``part`` whose id is ``first`` or more (every haemoglobin
    and platelet result of them: the latest is chosen with the kept ones)."""
    newer = (*USABLE, Panel.id >= first)
    return {
        "panels": _panels(session, part, Panel.id >= first),
        "history": _history(session, part, newer),
        "temperatures": _temperatures(session, part, newer),
        "others": _read_results(
            session,
            lambda keys: _result_rows().where(
                Panel.patient_id.in_(keys), Result.analyte.in_(OTHER_LATEST), *newer
            ),
            part,
        ),
    }


def _inputs(frames: dict[str, pd.DataFrame]) -> Inputs:
    panels = frames["panels"].groupby("patient_key")
    counts = (
        pd.DataFrame({"last_collected_at": panels["collected_at"].max(), "n_panels": panels.size()})
        .rename_axis("patient_key")
        .reset_index()
    )
    return Inputs(counts, frames["history"], frames["temperatures"], frames["others"])


def _latest(others: pd.DataFrame) -> pd.DataFrame:
    """The latest row of each patient and analyte (as `db.status._latest_others` chooses it)."""
    if others.empty:
        return others
    return latest_rows(others).reset_index(drop=True)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``parts`` one after the other with a fresh index; the empty ones left out (their columns' dtypes
    would turn the others' into objects), unless all are."""
    full = [part for part in parts if not part.empty]
    if not full:
        return parts[0].iloc[0:0].reset_index(drop=True) if parts else pd.DataFrame()
    if len(full) == 1:
        return full[0].reset_index(drop=True)
    return pd.concat(full, ignore_index=True)
