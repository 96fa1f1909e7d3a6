"""The store's side of a live feed (``services.feed``): the messages it acknowledged, its listeners' signs
of life, and the patients whose status waits to be recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import case, delete, func, null, or_, select, tuple_, update
from sqlalchemy.orm import Session

from db.frames import conflict_insert, read_frame
from db.models import FeedListener, FeedMessage, ImportBatch, StatusPending


def answered(session: Session, keys: Sequence[str]) -> dict[str, tuple[str, str, list[tuple[str, str]]]]:
    """The acknowledgement given to each message of ``keys`` processed before: its code, its words and
    the refusals its ERR segments named ((location, reason) pairs)."""
    if not keys:
        return {}
    found = session.execute(
        select(
            FeedMessage.message_key, FeedMessage.ack_code, FeedMessage.ack_text, FeedMessage.ack_errors
        ).where(FeedMessage.message_key.in_(list(keys)))
    )
    return {
        str(key): (
            str(code),
            str(words),
            [(str(where), str(why)) for where, why in json.loads(errors or "[]")],
        )
        for key, code, words, errors in found
    }


def record_messages(session: Session, messages: Iterable[dict[str, Any]]) -> None:
    """Keep the messages of one group with their acknowledgements (`FeedMessage`'s columns)."""
    rows = list(messages)
    if rows:
        session.execute(FeedMessage.__table__.insert(), rows)


def add_to_batch(
    session: Session, batch_id: int, *, accepted: int, unchanged: int, superseded: int, rejected: int
) -> None:
    """Add what one group brought to its feed batch's counts."""
    table = ImportBatch.__table__
    session.execute(
        update(table)
        .where(table.c.id == batch_id)
        .values(
            accepted=table.c.accepted + accepted,
            unchanged=table.c.unchanged + unchanged,
            superseded=table.c.superseded + superseded,
            rejected=table.c.rejected + rejected,
        )
    )


def mark_pending(
    session: Session, patient_keys: Sequence[int], *, now: datetime, first_panel: int | None = None
) -> None:
    """Patients whose status is to be recomputed (again, when already waiting: ``since`` moves on).

    ``first_panel``: the lowest id of the panels just written for them, when adding new panels is all
    that was done to their results (null for anything else). A patient already waiting keeps the lowest
    of the two, or null when either is (`pending_first_panel`).
    """
    if not patient_keys:
        return
    table = StatusPending.__table__
    statement = conflict_insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.patient_id],
        set_={"since": now, "first_panel": pending_first_panel(statement.excluded.first_panel)},
    )
    session.execute(
        statement,
        [
            {"patient_id": int(key), "since": now, "first_panel": first_panel}
            for key in sorted(set(patient_keys))
        ],
    )


def pending_first_panel(given: Any) -> Any:
    """The ``first_panel`` of a patient marked again: null when the waiting mark or the new one (``given``)
    is, else the lower."""
    waiting_first = StatusPending.__table__.c.first_panel
    return case(
        (or_(waiting_first.is_(None), given.is_(None)), null()),
        (given < waiting_first, given),
        else_=waiting_first,
    )


class Waiting(NamedTuple):
    """A patient waiting for their status: since when (the mark's time, which `done` checks) and the lowest
    id of the panels added since (None: recompute from the whole history)."""

    patient_key: int
    since: datetime
    first_panel: int | None


def pending(session: Session, *, limit: int) -> list[Waiting]:
    """Up to ``limit`` patients waiting for their status, longest waiting first."""
    rows = session.execute(
        select(StatusPending.patient_id, StatusPending.since, StatusPending.first_panel)
        .order_by(StatusPending.since)
        .limit(limit)
    )
    return [Waiting(int(key), since, None if first is None else int(first)) for key, since, first in rows]


def done(session: Session, taken: Sequence[Waiting]) -> None:
    """Patients whose status was recomputed from what the store held when they were taken: a patient marked
    again since (``since`` moved) stays, for the next pass."""
    if taken:
        session.execute(
            delete(StatusPending).where(
                tuple_(StatusPending.patient_id, StatusPending.since).in_(
                    [(mark.patient_key, mark.since) for mark in taken]
                )
            )
        )


def waiting(session: Session) -> int:
    """How many patients wait for their status."""
    return int(session.scalar(select(func.count()).select_from(StatusPending)) or 0)


def listener_seen(
    session: Session, address: str, *, pid: int, host_name: str, started_at: datetime, now: datetime
) -> None:
    """A listener's sign of life (its row, by host and address, is created on its first)."""
    table = FeedListener.__table__
    values = {"pid": pid, "started_at": started_at, "seen_at": now, "stopped_at": None}
    statement = conflict_insert(session, table).values(host_name=host_name, address=address, **values)
    key = [table.c.host_name, table.c.address]
    session.execute(statement.on_conflict_do_update(index_elements=key, set_=values))


def listener_stopped(session: Session, address: str, *, host_name: str, now: datetime) -> None:
    session.execute(
        update(FeedListener)
        .where(FeedListener.host_name == host_name, FeedListener.address == address)
        .values(seen_at=now, stopped_at=now)
    )


def listeners(session: Session) -> pd.DataFrame:
    """Every listener known: address, pid, host_name, started_at, seen_at, stopped_at."""
    return read_frame(session, select(FeedListener).order_by(FeedListener.host_name, FeedListener.address))


def messages_since(session: Session, since: datetime) -> pd.DataFrame:
    """Messages received since ``since``, counted by acknowledgement code (``ack_code``, ``messages``,
    ``results``, ``refused``, ``last_at``)."""
    statement = (
        select(
            FeedMessage.ack_code,
            func.count().label("messages"),
            func.sum(FeedMessage.results).label("results"),
            func.sum(FeedMessage.refused).label("refused"),
            func.max(FeedMessage.received_at).label("last_at"),
        )
        .where(FeedMessage.received_at >= since)
        .group_by(FeedMessage.ack_code)
    )
    return read_frame(session, statement)


def last_messages(session: Session, *, limit: int, refused_only: bool = False) -> pd.DataFrame:
    """The latest messages, newest first: received_at, control_id, ack_code, ack_text, results, refused,
    batch_id."""
    statement = select(
        FeedMessage.received_at,
        FeedMessage.control_id,
        FeedMessage.ack_code,
        FeedMessage.ack_text,
        FeedMessage.results,
        FeedMessage.refused,
        FeedMessage.batch_id,
    )
    if refused_only:
        statement = statement.where(FeedMessage.ack_code != "AA")
    return read_frame(session, statement.order_by(FeedMessage.id.desc()).limit(limit))
