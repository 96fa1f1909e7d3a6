"""A live feed's messages stored a group at a time, each answered with an acknowledgement that never lies;
and the statuses of the patients they touched recomputed behind them.

The listener (``services.listener``) hands over every message that has arrived while the previous group
was being written (group commit). One group is one transaction: its messages are read as one HL7 text by
the same reading as a file import (``monitor.formats.piece``), written by the same bulk writers into the
listener's batch of the day, and recorded with their acknowledgements (``db.feed``). Only once that
transaction has committed are the acknowledgements returned:

- AA: every record of the message is stored (or was already: a result the store held is not stored twice);
- AE: some or all of its records were refused; they are kept with their reasons in the batch, and ERR
  segments name them;
- AR: not processed (no MSH, not UTF-8, not an ORU^R01, no control ID, or the store unavailable): nothing of
  it is stored, so the sender may send it again. What could be read of it is kept for review.

A message processed before (the same control ID and the same content) is answered as it was then and
stores nothing: an interface engine that re-sends a message whose ACK it never received (the listener
stopped, the connection dropped) leaves it stored once.

The status of each patient a group touched is not recomputed in the group's transaction (computing it
takes about half a second for any number of patients: docs/benchmarks.md): the patients are marked in it
(``status_pending``, with the lowest id of the panels added when adding new panels is all the group did to
their results) and `catch_up` recomputes them in passes, each patient once a pass however many of its
messages arrived since the last. The status process keeps each patient's history between passes
(``db.histories``) and reads only the panels added since; anything else is read whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from db.feed import (
    Waiting,
    add_to_batch,
    answered,
    done,
    last_messages,
    listeners,
    mark_pending,
    messages_since,
    pending,
    record_messages,
    waiting,
)
from db.feed_pipeline import look, write
from db.histories import Histories
from db.imports import add_to_teams, is_contention, patients_named, unknown_teams
from db.ingest import (
    WriteCounts,
    demographics,
    field_limits,
    keep_rejected,
    new_batch,
    new_panel_rows,
    panels_of,
    write_new_panels,
)
from db.status import BatchResults, refresh_patient_status
from monitor.formats.hl7_ack import (
    ACCEPTED,
    ERROR,
    INTERNAL_ERROR,
    REJECTED,
    SEGMENT_ERROR,
    UNSUPPORTED_TYPE,
    Problem,
    acknowledgement,
    refusal_summary,
)
from monitor.formats.hl7_quick import read_quickly
from monitor.formats.hl7v2 import Header, message_header, message_type_words, split_messages
from monitor.formats.parsed import REJECT_COLUMNS, cut_raw
from monitor.formats.piece import PieceReading
from monitor.formats.records import FUTURE_TOLERANCE
from monitor.timestamps import is_timezone
from services.accounts import Viewer, require_administrator
from services.import_file import write_piece
from services.store import Store

_log = logging.getLogger("monitor.listener")
_LIMITS = field_limits()
# Attempts of one group's transaction when another writer holds the store or wrote the same rows first.
CONCURRENT_ATTEMPTS = 6
# Patients whose status one pass of `catch_up` recomputes at most.
PATIENTS_PER_PASS = 2_000
ORU_R01 = "ORU^R01"
STORE_UNAVAILABLE = "store unavailable: the message was not stored; send it again"


class TeamNotFound(LookupError):
    """A team asked for does not exist."""


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How a listener stores what it receives.

    Attributes
    ----------
    address
        Where it listens (``host:port``): names its batches and its sign of life.
    site_timezone
        The site's zone (days, and the zone of times without an offset unless ``timezone``).
    timezone
        The zone HL7 times without an offset (and a message whose MSH-7 has none) are read in.
    teams
        Codes of care teams that receive every patient the feed names.
    future_tolerance
        How far after its arrival a collection time may be (``services.config.Config.future_tolerance``).
    processing_ids
        The MSH-11 processing IDs taken (HL7 table 0103: P production, T training, D debugging): a test
        message from an engine's test channel is refused (AR), never stored with patients' results.
    """

    address: str
    site_timezone: str
    timezone: str | None = None
    teams: tuple[str, ...] = ()
    future_tolerance: timedelta = FUTURE_TOLERANCE
    processing_ids: tuple[str, ...] = ("P",)

    def __post_init__(self) -> None:
        for name, zone in (("site_timezone", self.site_timezone), ("timezone", self.timezone)):
            if zone is not None and not is_timezone(zone):
                raise ValueError(f"{name} {zone!r} is not an IANA time zone (e.g. Europe/London)")

    @property
    def by(self) -> str:
        """Who stores, as batches and team memberships name it."""
        return f"listener {self.address}"

    @property
    def zone(self) -> str:
        return self.timezone or self.site_timezone


@dataclass(frozen=True, slots=True)
class Received:
    """One MLLP block as it arrived, or why none could be read from the stream (``problem``)."""

    data: bytes
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """A message's acknowledgement (``ack``: its text, segments joined by ``\\r``) and, for the log line, its
    code, control ID and counts; ``again``: answered from a processing before."""

    code: str
    control_id: str
    ack: str
    words: str = ""
    results: int = 0
    refused: int = 0
    again: bool = False
    # The refusals its ERR segments name: (location, reason).
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class _Message:
    """A message read as far as its acknowledgement needs."""

    text: str
    header: Header | None
    lines: list[str] = field(default_factory=list)  # its segments
    results: int = 0
    refusal: str = ""
    error: tuple[str, str] = INTERNAL_ERROR
    key: str = ""

    @property
    def control_id(self) -> str:
        return self.header.control_id if self.header is not None else ""


@dataclass(slots=True)
class _Stored:
    """What a group's transaction produced: its answers, and the batch it wrote into."""

    answers: list[Answer]
    batch: tuple[int, date]
    # The lab ids its writing looked up (kept once it has committed).
    labs: dict[str, int]


@dataclass
class FeedWriter:
    """Stores groups of messages for one listener (`write`); holds the listener's batch of the day."""

    store: Store
    options: FeedOptions
    started_at: datetime
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _batch: tuple[int, date] | None = None
    # Lab ids by code, of labs committed (labs are removed only with the demo cohort: forgotten on an error).
    _labs: dict[str, int] = field(default_factory=dict)
    # PostgreSQL: the driver's connection the common groups are written on (`_in_two_round_trips`).
    _raw: Any = None

    def check_teams(self) -> None:
        """Raise `TeamNotFound` for a team of the options the store does not have."""
        with self.store() as session:
            unknown = unknown_teams(session, self.options.teams)
        if unknown:
            raise TeamNotFound(
                f"no team {', '.join(map(repr, unknown))} (python -m monitor teams lists them)"
            )

    def write(self, group: Sequence[Received]) -> list[Answer]:
        """Store one group in one transaction and answer each of its messages, in order.

        Never raises: a store that cannot be reached answers every message AR ("store unavailable");
        an unexpected error answers the group's messages one by one, so that only the message that
        causes it is refused (AR) and the others are stored.
        """
        now = self.clock()
        try:
            messages = [self._taken(_read(received)) for received in group]
        except Exception as error:  # noqa: BLE001 - a bug in reading: answered, never left unanswered
            _log.error("message not read: %s", type(error).__name__)
            return [unanswerable(now) for _ in group]
        if self._pipelined:
            answers = self._in_two_round_trips(messages, now)
            if answers is not None:
                return answers
        try:
            stored = self._stored(messages, now)
        except Exception as error:  # noqa: BLE001 - a message must never take the listener down
            self._labs.clear()  # a lab removed since (a demo cohort's) is looked up afresh
            return self._refused_group(error, group, messages, now)
        self._batch = stored.batch
        self._labs.update(stored.labs)
        return stored.answers

    def close(self) -> None:
        """Give back the connection the writer holds (PostgreSQL)."""
        self._drop_driver()

    @property
    def _pipelined(self) -> bool:
        dialect = self.store.kw["bind"].dialect
        return bool(dialect.name == "postgresql" and dialect.driver == "psycopg")

    def _in_two_round_trips(self, messages: list[_Message], now: datetime) -> list[Answer] | None:
        """PostgreSQL: a group of the common case (every message new, read by the row reading, its panels
        new, its patients and labs known, nothing of them to complete, each already in the listener's
        teams) written in two round trips (``db.feed_pipeline``), and its answers. None, having stored
        nothing, for any other group, or when the store fails: `_stored` then writes it, or answers why
        not."""
        options = self.options
        day = now.astimezone(ZoneInfo(options.site_timezone)).date()
        keys = [message.key for message in messages]
        if self._batch is None or self._batch[1] != day or not all(keys):
            return None
        if len(set(keys)) != len(keys):  # the same message twice in the group
            return None
        try:
            quick = read_quickly(
                [message.lines for message in messages],
                zone=options.zone,
                imported_at=now,
                future_tolerance=options.future_tolerance,
                limits=_LIMITS,
            )
            if quick is None or any(row["lab"] not in self._labs for row in quick.results):
                return None
            results, batch_id = quick.results, self._batch[0]
            named = {_panel_of(row)[0] for row in results}
            # As many panels as distinct (patient, collection time, lab, accession): ids drawn for each.
            panel_count = len({_panel_of(row) for row in results})
            connection = self._driver()
            known = look(
                connection,
                keys=keys,
                patients=named,
                times=[row["collected_at"] for row in results],
                panels=panel_count,
                teams=options.teams,
            )
            if known is None:  # none of its patients is stored
                connection.rollback()
                return None
            patient_keys = {pair: known.patients[pair][0] for pair in named if pair in known.patients}
            specimens = (
                panels_of(results, patient_keys, self._labs) if len(patient_keys) == len(named) else {}
            )
            if (
                known.answered
                or known.outside_teams  # its membership is added and audited the common way
                or not specimens
                or any(specimen in known.panels for specimen in specimens)
                or _completes(demographics(quick.patients), known.patients)
            ):
                connection.rollback()
                return None
            panel_rows, result_rows = new_panel_rows(
                results, specimens, known.panel_ids, patient_keys, self._labs, batch_id=batch_id, now=now
            )
            answers = [
                _answer(message, ACCEPTED, _stored_words(message), [], now, self._control_id(now))
                for message in messages
            ]
            write(
                connection,
                panels=panel_rows,
                results=result_rows,
                pending=[key[0] for key in specimens],
                messages=[
                    _row(message, answer, batch_id, now, key=message.key)
                    for message, answer in zip(messages, answers, strict=True)
                ],
                batch_id=batch_id,
                now=now,
            )
        except Exception as error:  # noqa: BLE001 - the common way writes the group, or answers why not
            _log.warning(
                "group not written in two round trips (%s): written the common way", type(error).__name__
            )
            self._drop_driver()
            return None
        return answers

    def _driver(self) -> Any:
        """The psycopg connection this writer holds (one of the store's pool, kept between groups)."""
        if self._raw is None:
            self._raw = self.store.kw["bind"].raw_connection()
        return self._raw.driver_connection

    def _drop_driver(self) -> None:
        """Forget the held connection (closed: the next group takes a fresh one)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.invalidate()
            except Exception as error:  # noqa: BLE001 - a connection already gone
                _log.debug("connection not closed: %s", type(error).__name__)

    def _taken(self, message: _Message) -> _Message:
        """``message``, refused when its processing ID is not one taken."""
        allowed = self.options.processing_ids
        if message.key and message.header is not None and message.header.processing_id not in allowed:
            message.key = ""
            message.refusal = (
                f"MSH-11 processing ID {message.header.processing_id!r} is not taken here "
                f"(only {', '.join(allowed)}): not stored"
            )
            message.error = ("202", "Unsupported processing ID")
        return message

    def _refused_group(
        self, error: Exception, group: Sequence[Received], messages: list[_Message], now: datetime
    ) -> list[Answer]:
        """The answers to a group whose transaction failed with ``error``.

        The store down, its connection lost, or held by another writer past every retry: nothing of the
        group is stored, and every message is answered AR "store unavailable" (the sender sends it again
        later). Anything else (a statement the store refused, a fault in the code) is found by writing the
        messages one by one: only the message that causes it is answered AR.
        """
        unavailable = isinstance(error, DBAPIError) and (
            error.connection_invalidated
            or isinstance(error, OperationalError | InterfaceError)
            or _unreachable(error)
            or is_contention(error)
        )
        if unavailable:
            _log.warning("store unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
            return [self._unavailable(message, now) for message in messages]
        if len(messages) > 1:
            return [answer for received in group for answer in self.write([received])]
        _log.error("message not stored: %s", type(getattr(error, "orig", None) or error).__name__)
        return [_internal(messages[0], now, self._control_id(now))]

    def _stored(self, messages: list[_Message], now: datetime) -> _Stored:
        for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
            try:
                with self.store.begin() as session:
                    return self._within(session, messages, now)
            except SQLAlchemyError as error:
                if attempt == CONCURRENT_ATTEMPTS or not is_contention(error):
                    raise
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _within(self, session: Session, messages: list[_Message], now: datetime) -> _Stored:
        options = self.options
        keys = sorted({message.key for message in messages if message.key})
        before = answered(session, keys)
        batch_id, day = self._batch_for(session, now)
        fresh: dict[str, int] = {}  # message key -> its number in the group's text (1, 2, ...)
        texts: list[str] = []
        for message in messages:
            if message.key and message.key not in before and message.key not in fresh:
                texts.append(message.text)
                fresh[message.key] = len(texts)
        counts: WriteCounts | None = None
        refusals: dict[int, list[tuple[str, str, str]]] = {}
        labs = dict(self._labs)
        if texts:
            counts, refusals, naming = self._write_results(session, texts, batch_id, now, labs)
            mark_pending(session, counts.patient_keys, now=now, first_panel=counts.first_panel)
            if options.teams:
                add_to_teams(session, naming(), options.teams, now=now, by=options.by)
        answers: list[Answer] = []
        rows: list[dict[str, Any]] = []
        kept: list[dict[str, str]] = [
            {"location": where, "raw_text": raw, "reason": reason}
            for where, raw, reason in refusals.get(0, [])
        ]
        given: dict[str, Answer] = {}
        for message in messages:
            control_id = self._control_id(now)
            if not message.key:
                answer = _refused(message, now, control_id)
                kept.append(_kept_whole(message))
                rows.append(_row(message, answer, batch_id, now, key=None))
            elif message.key in before:
                code, words, errors = before[message.key]
                problems = [Problem(where, why) for where, why in errors]
                answer = _answer(message, code, words, problems, now, control_id, again=True)
            elif message.key in given:
                # The same message twice in one group: stored once, answered alike (an ACK of its own).
                first = given[message.key]
                problems = [Problem(where, why) for where, why in first.problems]
                answer = _answer(message, first.code, first.words, problems, now, control_id, again=True)
            else:
                mine = [
                    (f"message {message.control_id}{rest}", raw, reason)
                    for rest, raw, reason in refusals.get(fresh[message.key], [])
                ]
                kept += [
                    {"location": where, "raw_text": raw, "reason": reason} for where, raw, reason in mine
                ]
                problems = [Problem(where, reason) for where, _, reason in mine]
                code = ERROR if problems else ACCEPTED
                words = refusal_summary(problems, message.results) if problems else _stored_words(message)
                answer = _answer(message, code, words, problems, now, control_id)
                given[message.key] = answer
                rows.append(_row(message, answer, batch_id, now, key=message.key))
            answers.append(answer)
        if kept:
            keep_rejected(session, batch_id, pd.DataFrame(kept, columns=list(REJECT_COLUMNS)))
        record_messages(session, rows)
        add_to_batch(
            session,
            batch_id,
            accepted=counts.accepted if counts else 0,
            unchanged=counts.unchanged if counts else 0,
            superseded=counts.superseded if counts else 0,
            rejected=len(kept),
        )
        return _Stored(answers, (batch_id, day), labs)

    def _write_results(
        self, session: Session, texts: list[str], batch_id: int, now: datetime, labs: dict[str, int]
    ) -> tuple[WriteCounts, dict[int, list[tuple[str, str, str]]], Callable[[], list[pd.DataFrame]]]:
        """The group's messages (``texts``) read and written as a file import reads and writes them: row by
        row when every record is of the common case and every panel new (``monitor.formats.hl7_quick``,
        ``db.ingest.write_new_panels``), else by the file reading and its bulk writers.

        Returns what was written (``patient_keys``: every stored patient the messages name), the refusals
        by message number (1 for the first text; 0 for none), each (the rest of its location after the
        message, as received, why), and the patients named (for teams), made on demand. ``labs``: lab ids
        known, completed with those looked up."""
        options = self.options
        messages = [split_messages(text)[0][0] for text in texts]
        quick = read_quickly(
            messages,
            zone=options.zone,
            imported_at=now,
            future_tolerance=options.future_tolerance,
            limits=_LIMITS,
        )
        if quick is not None:
            counts = write_new_panels(
                session, quick.results, quick.patients, batch_id=batch_id, now=now, labs=labs
            )
            if counts is not None:
                people = quick.patients
                return (
                    counts,
                    {},
                    lambda: [pd.DataFrame(people, columns=["assigning_authority", "patient_id"])],
                )
        return self._read_and_write(session, "\r\n".join(texts), batch_id, now)

    def _read_and_write(
        self, session: Session, text: str, batch_id: int, now: datetime
    ) -> tuple[WriteCounts, dict[int, list[tuple[str, str, str]]], Callable[[], list[pd.DataFrame]]]:
        options = self.options
        read = PieceReading(
            format_name="hl7",
            zone=options.zone,
            limits=_LIMITS,
            retry=None,
            imported_at=now,
            future_tolerance=options.future_tolerance,
            chunk=len(text),
        )
        piece = read(text, 0)
        counts, refusals, _ = write_piece(
            session, piece, batch_id=batch_id, now=now, held=BatchResults(batch_id)
        )
        refused = [piece.rejected, *refusals]
        counts.unchanged += piece.left
        naming = list(piece.naming)
        # Every patient the messages name (a message of observations outside the CBC changes a status too).
        counts.patient_keys = sorted(set(counts.patient_keys) | set(patients_named(session, naming)))
        rejected = (
            pd.concat(refused, ignore_index=True).reindex(columns=list(REJECT_COLUMNS)).fillna("").astype(str)
        )
        found = rejected["location"].str.extract(r"^message (\d+)(?: \(.*?\))?(.*)$")
        numbers = found[0].fillna("0").astype("int64")
        rests = found[1].where(found[0].notna(), rejected["location"]).fillna("")
        by_message: dict[int, list[tuple[str, str, str]]] = {}
        for number, rest, raw, reason in zip(
            numbers, rests, rejected["raw_text"], rejected["reason"], strict=True
        ):
            by_message.setdefault(int(number), []).append((str(rest), str(raw), str(reason)))
        return counts, by_message, lambda: naming

    def _batch_for(self, session: Session, now: datetime) -> tuple[int, date]:
        """This listener's batch for the site's day: a new one the first time a day's message arrives."""
        day = now.astimezone(ZoneInfo(self.options.site_timezone)).date()
        if self._batch is not None and self._batch[1] == day:
            return self._batch
        address = self.options.address
        identity = f"live feed|{address}|{self.started_at.isoformat()}|{day.isoformat()}"
        batch = new_batch(
            session,
            file_name=f"MLLP feed on {address}, {day:%Y-%m-%d}",
            sha256=hashlib.sha256(identity.encode()).hexdigest(),
            fmt="hl7",
            imported_by=self.options.by,
            now=now,
            timezone=self.options.zone,
        )
        return batch.id, day

    def _unavailable(self, message: _Message, now: datetime) -> Answer:
        words = STORE_UNAVAILABLE
        ack = acknowledgement(
            message.header,
            REJECTED,
            words,
            problems=[Problem("", words)],
            control_id=self._control_id(now),
            now=now,
        )
        return Answer(REJECTED, message.control_id, ack, words, message.results)

    @staticmethod
    def _control_id(now: datetime) -> str:
        """The ACK's own MSH-10: unique enough to trace (time and a random part), 20 characters (the field's
        length in HL7 v2.3 and earlier)."""
        return f"{now:%y%m%d%H%M%S}{random.getrandbits(24):06x}"


def catch_up(
    store: Store,
    *,
    timezone: str,
    now: datetime | None = None,
    limit: int = PATIENTS_PER_PASS,
    histories: Histories | None = None,
) -> int:
    """Recompute the status of up to ``limit`` patients a feed touched (those waiting longest first); return
    how many. A patient marked again while this pass ran stays marked for the next. A patient whose status
    cannot be computed (a fault, not the store) is found by halving the pass, logged by its key alone and
    left as it was, so that it never holds up the others; the store's own errors are raised (tried again
    on the next pass). ``histories``: the patients' histories kept between passes (the status process's),
    extended with the panels the feed added rather than read whole (``db.histories``)."""
    with store() as session:
        taken = pending(session, limit=limit)
    if not taken:
        return 0
    return _recompute(store, taken, timezone=timezone, now=now or datetime.now(UTC), histories=histories)


def _recompute(
    store: Store, taken: list[Waiting], *, timezone: str, now: datetime, histories: Histories | None
) -> int:
    try:
        with store.begin() as session:
            if histories is None:
                refresh_patient_status(
                    session, [mark.patient_key for mark in taken], now=now, timezone=timezone
                )
                done(session, taken)
            else:
                staged = histories.refresh(
                    session,
                    [(mark.patient_key, mark.first_panel) for mark in taken],
                    now=now,
                    timezone=timezone,
                )
                # A patient left to a writer that replaced their status meanwhile waits for the next pass.
                done(session, [mark for mark in taken if mark.patient_key not in staged.contested])
        if histories is not None:
            histories.keep(staged)
        return len(taken)
    except SQLAlchemyError:
        raise
    except Exception as error:  # noqa: BLE001 - one patient's fault must not stop every status
        if len(taken) > 1:
            half = len(taken) // 2
            return _recompute(
                store, taken[:half], timezone=timezone, now=now, histories=histories
            ) + _recompute(store, taken[half:], timezone=timezone, now=now, histories=histories)
        _log.error(
            "the status of patient key %d could not be recomputed (%s): left as it was",
            taken[0].patient_key,
            type(error).__name__,
        )
        if histories is not None:  # its kept history may lack the panels of this mark: read whole next time
            histories.forget([taken[0].patient_key])
        with store.begin() as session:
            done(session, taken)
        return 1


def _read(received: Received) -> _Message:
    """A block decoded and its header read, or the reason it cannot be processed (``refusal``)."""
    if received.problem:
        return _Message(received.data.decode("utf-8", "replace"), None, refusal=received.problem)
    data = received.data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        shown = data.decode("utf-8", "replace")
        try:  # its MSH read as Latin-1 all the same, so that the ACK names the message it answers
            header: Header | None = message_header(data.decode("latin-1"))
        except ValueError:
            header = None
        return _Message(shown, header, refusal=f"not UTF-8 text: byte {error.start + 1} cannot be decoded")
    if "\x00" in text:
        return _Message(text.replace("\x00", "\ufffd"), None, refusal="a NUL character: binary, not text")
    try:
        header = message_header(text)
    except ValueError as error:
        return _Message(text, None, refusal=f"not an HL7 v2 message: {error}", error=SEGMENT_ERROR)
    messages, _ = split_messages(text)
    separator = header.delimiters[0]
    segments = messages[0]
    results = sum(segment.startswith("OBX" + separator) for segment in segments)
    message = _Message(text, header, lines=segments, results=results)
    if len(messages) > 1:
        message.refusal = f"the block holds {len(messages)} messages: MLLP carries one message a block"
        message.error = SEGMENT_ERROR
    elif header.kind.upper() != ORU_R01:
        message.refusal = (
            f"{message_type_words(header.kind)}: this receiver takes ORU^R01 (laboratory results) only"
        )
        message.error = UNSUPPORTED_TYPE
    elif not header.control_id:
        message.refusal = "MSH-10 (message control ID) is empty: a message cannot be acknowledged without one"
        message.error = ("101", "Required field missing")
    else:
        # The control ID and the content: a re-sent message is the same whatever its line endings.
        canonical = "\r".join(segments)
        message.key = hashlib.sha256(f"{header.control_id}\x00{canonical}".encode()).hexdigest()
    return message


def _answer(
    message: _Message,
    code: str,
    words: str,
    problems: Sequence[Problem],
    now: datetime,
    control_id: str,
    *,
    again: bool = False,
) -> Answer:
    ack = acknowledgement(
        message.header, code, words, problems=problems, segments=message.lines, control_id=control_id, now=now
    )
    kept = tuple((problem.location, problem.reason) for problem in problems)
    return Answer(code, message.control_id, ack, words, message.results, len(problems), again, kept)


def _refused(message: _Message, now: datetime, control_id: str) -> Answer:
    problem = Problem("", message.refusal)
    ack = acknowledgement(
        message.header,
        REJECTED,
        message.refusal,
        problems=[problem],
        error=message.error,
        control_id=control_id,
        now=now,
    )
    return Answer(REJECTED, message.control_id, ack, message.refusal, message.results, 1)


def _internal(message: _Message, now: datetime, control_id: str) -> Answer:
    words = "internal error: the message was not stored (the listener's log says more)"
    ack = acknowledgement(
        message.header, REJECTED, words, problems=[Problem("", words)], control_id=control_id, now=now
    )
    return Answer(REJECTED, message.control_id, ack, words, message.results, 1)


def unanswerable(now: datetime) -> Answer:
    """AR for a message that could not even be read (a bug): in the default delimiters, no MSA-2."""
    words = "internal error: the message was not read (the listener's log says more)"
    ack = acknowledgement(
        None, REJECTED, words, problems=[Problem("", words)], control_id=FeedWriter._control_id(now), now=now
    )
    return Answer(REJECTED, "", ack, words, 0, 1)


# A control ID as the log shows it: at most this long, control characters as '?'.
_SHOWN_CONTROL_ID = 64


def shown_control_id(control_id: str) -> str:
    """A control ID for the log: cut, its control characters replaced (a sender's text, not ours)."""
    if not control_id:
        return "(no control ID)"
    shown = "".join(c if c.isprintable() else "?" for c in control_id[:_SHOWN_CONTROL_ID])
    return shown + ("..." if len(control_id) > _SHOWN_CONTROL_ID else "")


def _stored_words(message: _Message) -> str:
    """MSA-3 of an AA: the message stored and how many OBX it held (not all of them need be results: an
    observation still pending, without a value, is not stored until it has one)."""
    return f"message stored ({message.results} OBX)"


def _row(
    message: _Message, answer: Answer, batch_id: int, now: datetime, *, key: str | None
) -> dict[str, Any]:
    return {
        "message_key": key,
        "control_id": message.control_id[:199],
        "batch_id": batch_id,
        "received_at": now,
        "ack_code": answer.code,
        "ack_text": answer.words,
        "ack_errors": json.dumps([list(problem) for problem in answer.problems]),
        "results": message.results,
        "refused": answer.refused,
    }


def _panel_of(row: dict[str, Any]) -> tuple[tuple[str, str], tuple[Any, str, str]]:
    """A result row's patient (assigning authority, identifier) and panel (collected at, lab, accession)."""
    return (row["assigning_authority"], row["patient_id"]), (
        row["collected_at"],
        row["lab"],
        row["accession"],
    )


def _completes(
    given: dict[str, dict[tuple[str, str], Any]], stored: dict[tuple[str, str], tuple[int, Any, Any]]
) -> bool:
    """Whether the birth dates and sexes ``given`` (`db.ingest.demographics`) name a patient not ``stored``
    or complete one stored without them."""
    for index, column in ((1, "birth_date"), (2, "sex")):
        for pair in given[column]:
            if pair not in stored or stored[pair][index] is None:
                return True
    return False


def _kept_whole(message: _Message) -> dict[str, str]:
    """A message not processed, kept whole with the reason."""
    where = f"message {message.control_id}" if message.control_id else "message without a control ID"
    return {"location": where, "raw_text": cut_raw(message.text), "reason": message.refusal}


def _unreachable(error: DBAPIError) -> bool:
    """Whether a driver error says the database cannot be reached (rather than refusing a statement)."""
    text = str(error.orig or error).lower()
    return any(
        words in text
        for words in (
            "connection refused",
            "could not connect",
            "server closed",
            "terminating connection",
            "unable to open database",
            "disk i/o error",
            "no such table",
        )
    )


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the live feed did, as the Import page and ``listen-status`` show it (no patient data).

    ``listeners``: address, pid, host_name, started_at, seen_at, stopped_at and ``state`` ("listening",
    "stopped", or "silent": not seen for `SILENT_AFTER` without having stopped: killed, or its host down).
    ``today``: since the site's midnight, by ACK code: messages, results (observations), refused, last_at.
    ``refusals``: the latest messages answered AE or AR. ``waiting``: patients whose status is still to be
    recomputed.
    """

    listeners: pd.DataFrame
    today: pd.DataFrame
    refusals: pd.DataFrame
    waiting: int
    last_at: datetime | None

    @property
    def healthy(self) -> bool:
        """At least one listener is listening."""
        return bool((self.listeners["state"] == "listening").any())


# A listener records a sign of life every HEARTBEAT_SECONDS; one silent for three of them is not running.
HEARTBEAT_SECONDS = 10.0
SILENT_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)


def feed_state(
    store: Store, *, viewer: Viewer, now: datetime, timezone: str, refusals: int = 20
) -> FeedState:
    """The live feed's listeners and today's messages (administrators only)."""
    require_administrator(viewer, "see the live feed's state")
    midnight = datetime.combine(
        now.astimezone(ZoneInfo(timezone)).date(), datetime.min.time(), ZoneInfo(timezone)
    )
    with store() as session:
        found = listeners(session)
        today = messages_since(session, midnight.astimezone(UTC))
        refused = last_messages(session, limit=refusals, refused_only=True)
        left = waiting(session)
    seen = found["seen_at"]
    state = pd.Series("listening", index=found.index, dtype="str")
    state = state.where(seen >= now - SILENT_AFTER, "silent").where(found["stopped_at"].isna(), "stopped")
    last = today["last_at"].max() if len(today) else None
    return FeedState(
        found.assign(state=state), today, refused, left, None if pd.isna(last) else last.to_pydatetime()
    )
