"""The live feed's statuses extended from the histories its status process keeps (``db.histories``): the
same status rows as a read of each patient's whole history, and a whole read wherever anything but new
panels changed a patient's results."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from db.accounts import Viewer
from db.feed import mark_pending, pending
from db.histories import Histories
from db.models import Patient, PatientStatus, StatusPending
from db.status import refresh_patient_status
from services.feed import FeedOptions, FeedWriter, Received, catch_up
from services.patient_actions import add_event

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # when the demo cohort was seeded (as tests/test_status_pool)


def message(
    number: int, patient: tuple[str, str], at: datetime, *, wbc: float, anc: float, status: str = "F"
) -> str:
    """A CBC of one of the demo's patients (no birth date or sex: nothing of theirs to complete)."""
    authority, mrn = patient
    stamp = f"{at:%Y%m%d%H%M%S}+0000"
    return "\r".join(
        [
            f"MSH|^~\\&|LIS|FEED LAB|EHR|WARD|{stamp}||ORU^R01|H{number:06d}|P|2.5.1",
            f"PID|1||{mrn}^^^{authority}^MR||Demo^Patient",
            f"OBR|1||HACC{number % 1000:07d}|57021-8^CBC^LN|||{stamp}",
            f"OBX|1|NM|6690-2^Leukocytes^LN||{wbc}|10*3/uL|4.0-11.0||||{status}",
            f"OBX|2|NM|751-8^Neutrophils^LN||{anc}|10*3/uL|1.8-7.7||||{status}",
            "OBX|3|NM|731-0^Lymphocytes^LN||0.9|10*3/uL|1.0-4.8|L|||F",
            "OBX|4|NM|718-7^Hemoglobin^LN||9.1|g/dL|12.0-16.0|L|||F",
            f"OBX|5|NM|777-3^Platelets^LN||{40 + number % 7 * 20}|10*3/uL|150-450|L|||F",
        ]
    )


def temperature(number: int, patient: tuple[str, str], at: datetime, celsius: float) -> str:
    authority, mrn = patient
    stamp = f"{at:%Y%m%d%H%M%S}+0000"
    return "\r".join(
        [
            f"MSH|^~\\&|LIS|FEED LAB|EHR|WARD|{stamp}||ORU^R01|T{number:06d}|P|2.5.1",
            f"PID|1||{mrn}^^^{authority}^MR||Demo^Patient",
            f"OBR|1||TACC{number:07d}|8310-5^Body temperature^LN|||{stamp}",
            f"OBX|1|NM|8310-5^Body temperature^LN||{celsius}|Cel|||||F",
        ]
    )


def _rows(session, keys: list[int]) -> list[tuple]:
    found = session.execute(text("SELECT * FROM patient_status ORDER BY patient_id")).all()
    return [tuple(row) for row in found if row[0] in keys]


def _whole_read(store, keys: list[int], now: datetime) -> list[tuple]:
    """The status rows of ``keys`` recomputed at ``now`` from their whole histories (not kept)."""
    session = store()
    try:
        refresh_patient_status(session, keys, now=now, timezone="UTC")
        session.flush()
        return _rows(session, keys)
    finally:
        session.rollback()
        session.close()


def test_extended_statuses_are_the_statuses_a_whole_read_gives(demo_copy) -> None:
    store = demo_copy(NOW)
    with store() as session:
        people = session.execute(
            select(Patient.id, Patient.assigning_authority, Patient.mrn).order_by(Patient.id).limit(30)
        ).all()
    key = {n: int(row[0]) for n, row in enumerate(people)}
    who = {n: (str(row[1] or ""), str(row[2])) for n, row in enumerate(people)}
    histories = Histories()
    writer_at = [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: writer_at[0]
    )
    hour = timedelta(hours=1)
    steps = [
        # The first pass reads every history whole.
        (
            "feed",
            [
                message(1, who[0], NOW - 3 * hour, wbc=2.1, anc=0.8),
                message(2, who[1], NOW - 2 * hour, wbc=3.0, anc=1.2),
            ],
        ),
        (
            "feed",
            [
                message(3, who[2], NOW - 5 * hour, wbc=1.1, anc=0.3),
                message(4, who[3], NOW - hour, wbc=6.0, anc=4.0),
            ],
        ),
        # New panels of patients kept: extended, one of them drawn before the panel before it.
        (
            "feed",
            [
                message(5, who[0], NOW - 90 * timedelta(minutes=1), wbc=1.4, anc=0.4),
                message(6, who[1], NOW - 30 * hour, wbc=2.4, anc=0.9),
            ],
        ),
        (
            "feed",
            [
                temperature(7, who[0], NOW - 50 * timedelta(minutes=1), 38.6),
                message(8, who[2], NOW - 10 * timedelta(minutes=1), wbc=0.9, anc=0.2),
            ],
        ),
        # A corrected count (the file importer's way): read whole.
        (
            "feed",
            [
                message(5, who[0], NOW - 90 * timedelta(minutes=1), wbc=1.9, anc=0.45, status="C").replace(
                    "H000005", "H100005"
                )
            ],
        ),
        # A chemotherapy start recorded on the patient's page: their status computed there, so read whole.
        ("event", 3),
        (
            "feed",
            [
                message(9, who[3], NOW - 20 * timedelta(minutes=1), wbc=3.2, anc=1.4),
                message(10, who[0], NOW - 5 * timedelta(minutes=1), wbc=1.2, anc=0.3),
            ],
        ),
        (
            "feed",
            [
                message(11, who[4], NOW - 7 * timedelta(minutes=1), wbc=4.4, anc=2.0),
                message(12, who[3], NOW - 4 * timedelta(minutes=1), wbc=2.8, anc=1.0),
            ],
        ),
    ]
    # Then groups drawn at random among 30 patients (some in chemotherapy cycles, with forecasts and
    # febrile episodes in the demo): counts of any size, drawn up to two days back.
    draw = random.Random(22)
    for group in range(6):
        picked = draw.sample(range(30), draw.randint(1, 3))
        steps.append(
            (
                "feed",
                [
                    message(
                        100 + group * 3 + n,
                        who[p],
                        NOW - timedelta(minutes=draw.randint(1, 48 * 60)),
                        wbc=round(draw.uniform(0.2, 14), 1),
                        anc=round(draw.uniform(0.0, 9), 2),
                    )
                    for n, p in enumerate(picked)
                ],
            )
        )
    ways: list[tuple[int, int]] = []
    for number, (kind, given) in enumerate(steps, start=1):
        now = NOW + number * timedelta(minutes=7)
        if kind == "event":
            add_event(
                store,
                viewer=Viewer("admin", "admin", None),
                patient_key=key[given],  # type: ignore[index]
                kind="chemotherapy",
                start=NOW - 2 * hour,
                end=None,
                label="FEC cycle 1",
                details="",
                now=now,
                timezone="UTC",
            )
            continue
        writer_at[0] = now
        answers = writer.write([Received(text_.encode()) for text_ in given])  # type: ignore[union-attr]
        assert {answer.code for answer in answers} == {"AA"}, [answer.words for answer in answers]
        with store() as session:
            keys = sorted(mark.patient_key for mark in pending(session, limit=100))
        extended, whole = histories.extended, histories.whole
        assert catch_up(store, timezone="UTC", now=now, histories=histories) == len(keys)
        ways.append((histories.extended - extended, histories.whole - whole))
        with store() as session:
            kept = _rows(session, keys)
        assert kept == _whole_read(store, keys, now), f"step {number}"
    writer.close()
    assert ways[:7] == [
        (0, 2),  # nothing kept yet
        (0, 2),
        (2, 0),
        (0, 2),  # a temperature in the group: the whole group the file importer's way
        (0, 1),  # the correction
        (1, 1),  # patient 0 extended; patient 3's status was computed by the event
        (1, 1),  # patient 3 extended; patient 4 new to the kept histories
    ]
    assert sum(extended for extended, _ in ways[7:]) >= 3, "the drawn groups extend the statuses kept"


def test_a_patient_marked_by_a_correction_stays_marked_for_a_whole_read(store) -> None:
    """The lowest of the panels marked, and null (read whole) once any mark is."""
    with store.begin() as session:
        session.add(Patient(assigning_authority="H", mrn="1", name="P", created_at=NOW))
    with store() as session:
        key = int(session.scalar(select(Patient.id)))
    marks = []
    for first in (10, 5, 7, None, 3):
        with store.begin() as session:
            mark_pending(session, [key], now=NOW + timedelta(seconds=len(marks)), first_panel=first)
        with store() as session:
            marks.append(session.scalar(select(StatusPending.first_panel)))
    assert marks == [10, 5, 5, None, None]


def test_histories_past_their_limit_let_go_of_the_patients_computed_longest_ago(demo_copy) -> None:
    store = demo_copy(NOW)
    with store() as session:
        keys = [int(k) for k in session.scalars(select(Patient.id).order_by(Patient.id).limit(4))]
    histories = Histories()
    for step, part in enumerate((keys[:2], keys[2:]), start=1):
        with store.begin() as session:
            staged = histories.refresh(
                session, [(k, None) for k in part], now=NOW + step * timedelta(minutes=1), timezone="UTC"
            )
        histories.keep(staged)
    every = histories.rows()
    assert every > 0 and list(histories.computed_at) == keys
    first_two = sum(int(frame["patient_key"].isin(keys[:2]).sum()) for frame in histories.frames.values())
    histories.rows_kept = every - first_two
    histories._within_limit()
    assert list(histories.computed_at) == keys[2:]
    assert histories.rows() == every - first_two


def _first_patient(store) -> tuple[int, tuple[str, str]]:
    with store() as session:
        key, authority, mrn = session.execute(
            select(Patient.id, Patient.assigning_authority, Patient.mrn).order_by(Patient.id).limit(1)
        ).one()
    return int(key), (str(authority or ""), str(mrn))


def _status_of(store, key: int) -> tuple:
    with store() as session:
        return _rows(session, [key])[0]


def test_a_patient_whose_status_failed_is_read_whole_at_their_next_results(demo_copy, monkeypatch) -> None:
    """A pass that cannot compute one patient's status (a fault, not the store) leaves it as it was and
    ends their mark: what was kept of them lacks that mark's panel, so it is let go of."""
    import db.histories

    store = demo_copy(NOW)
    key, who = _first_patient(store)
    histories, clock = Histories(), [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: clock[0]
    )

    def feed(number: int, at: datetime, now: datetime, **values: float) -> None:
        clock[0] = now
        answers = writer.write([Received(message(number, who, at, **values).encode())])  # type: ignore[arg-type]
        assert [answer.code for answer in answers] == ["AA"]

    feed(1, NOW - timedelta(hours=1), NOW + timedelta(minutes=10), wbc=5.0, anc=3.0)
    assert catch_up(store, timezone="UTC", now=NOW + timedelta(minutes=10), histories=histories) == 1
    # A grade 4 ANC, the latest count, whose recompute fails once.
    feed(2, NOW + timedelta(minutes=15), NOW + timedelta(minutes=20), wbc=0.8, anc=0.1)
    computed = db.histories.computed_status
    with monkeypatch.context() as patch:
        patch.setattr(db.histories, "computed_status", lambda *a, **k: 1 / 0)
        assert catch_up(store, timezone="UTC", now=NOW + timedelta(minutes=20), histories=histories) == 1
    assert db.histories.computed_status is computed
    assert key not in histories.computed_at
    # A panel collected the day before: read whole, and the grade 4 ANC is the latest.
    later = NOW + timedelta(minutes=30)
    feed(3, NOW - timedelta(days=1), later, wbc=5.0, anc=3.0)
    whole = histories.whole
    assert catch_up(store, timezone="UTC", now=later, histories=histories) == 1
    assert histories.whole == whole + 1
    assert _status_of(store, key) == _whole_read(store, [key], later)[0]
    writer.close()


def test_a_status_another_writer_replaced_during_a_pass_is_left_to_it(demo_copy, monkeypatch) -> None:
    """A file import corrects a count and recomputes the status while a pass computes: the pass neither
    writes over it nor keeps what it read, and the patient is read whole next."""
    import db.histories
    from services.imports import ImportOptions, import_content

    store = demo_copy(NOW)
    key, who = _first_patient(store)
    histories, clock = Histories(), [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: clock[0]
    )

    def feed(number: int, at: datetime, now: datetime) -> None:
        clock[0] = now
        answers = writer.write([Received(message(number, who, at, wbc=5.0, anc=3.0).encode())])
        assert [answer.code for answer in answers] == ["AA"]

    first = NOW + timedelta(minutes=10)
    feed(1, NOW - timedelta(hours=1), first)
    assert catch_up(store, timezone="UTC", now=first, histories=histories) == 1
    second = NOW + timedelta(minutes=20)
    feed(2, NOW - timedelta(hours=30), second)
    reading = db.histories._read_from
    corrected = message(1, who, NOW - timedelta(hours=1), wbc=0.8, anc=0.1, status="C").replace(
        "H000001", "Y000001"
    )

    def meanwhile(*args, **kwargs):
        summary = import_content(
            store,
            "correction.hl7",
            corrected.encode(),
            options=ImportOptions(imported_by="test", site_timezone="UTC"),
            now=NOW + timedelta(minutes=21),
        )
        assert summary.superseded == 2, summary
        return reading(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(db.histories, "_read_from", meanwhile)
        assert catch_up(store, timezone="UTC", now=second, histories=histories) == 1
    imported = _status_of(store, key)
    assert imported == _whole_read(store, [key], NOW + timedelta(minutes=21))[0], "the import's status stands"
    assert key not in histories.computed_at
    with store() as session:
        assert [mark.patient_key for mark in pending(session, limit=10)] == [key], "still waiting"
    third = NOW + timedelta(minutes=40)
    feed(3, NOW - timedelta(hours=50), third)
    whole = histories.whole
    assert catch_up(store, timezone="UTC", now=third, histories=histories) == 1
    assert histories.whole == whole + 1
    assert _status_of(store, key) == _whole_read(store, [key], third)[0]
    writer.close()


def _acknowledged(store, key: int):
    with store() as session:
        return session.scalar(select(PatientStatus.acknowledged_at).where(PatientStatus.patient_id == key))


def test_an_acknowledgement_made_while_a_pass_computes_is_kept_and_a_worse_count_asks_again(
    demo_copy, monkeypatch
) -> None:
    """An acknowledgement committed while a pass computes covered the flags its author saw: the pass leaves
    that patient to the next one, which keeps the acknowledgement and dates the worse grade after it."""
    import db.histories
    from services.patient_actions import acknowledge

    store = demo_copy(NOW)
    key, who = _first_patient(store)
    histories, clock = Histories(), [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: clock[0]
    )
    first, second = NOW + timedelta(minutes=10), NOW + timedelta(minutes=20)
    clock[0] = first
    writer.write([Received(message(1, who, NOW - timedelta(hours=1), wbc=2.1, anc=0.8).encode())])
    assert catch_up(store, timezone="UTC", now=first, histories=histories) == 1
    clock[0] = second
    writer.write([Received(message(2, who, NOW - timedelta(minutes=30), wbc=1.1, anc=0.1).encode())])
    seen = second + timedelta(seconds=30)
    claiming = db.histories._still_as_read

    def meanwhile(*args, **kwargs):
        acknowledge(store, viewer=Viewer("admin", "admin", None), patient_key=key, comment="seen", now=seen)
        return claiming(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(db.histories, "_still_as_read", meanwhile)
        assert catch_up(store, timezone="UTC", now=second, histories=histories) == 1
    assert _acknowledged(store, key) == seen
    with store() as session:
        assert [mark.patient_key for mark in pending(session, limit=10)] == [key], "left to the next pass"
    later = second + timedelta(minutes=1)
    assert catch_up(store, timezone="UTC", now=later, histories=histories) == 1
    with store() as session:
        grade, changed, acknowledged = session.execute(
            select(
                PatientStatus.latest_anc_grade, PatientStatus.flags_changed_at, PatientStatus.acknowledged_at
            ).where(PatientStatus.patient_id == key)
        ).one()
    assert (grade, acknowledged) == (4, seen)
    assert changed > acknowledged, "the grade 4 is not covered by an acknowledgement made before it was seen"
    writer.close()


def test_a_new_patients_status_an_import_wrote_during_a_pass_stands(demo_copy, monkeypatch) -> None:
    """A patient new to the store has no status row to lock: the pass inserts theirs only where no other
    writer's has appeared (an import committed before its check, or on PostgreSQL between its check and
    its write), and reads them whole next."""
    import db.histories
    from services.imports import ImportOptions, import_content

    store = demo_copy(NOW)
    postgresql = store.kw["bind"].dialect.name == "postgresql"
    histories, clock = Histories(), [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: clock[0]
    )
    moments = ["_still_as_read", "write_new_status"] if postgresql else ["_still_as_read"]
    for number, moment in enumerate(moments, start=1):
        who = ("NEWHOSP", f"NEW{number:04d}")
        first = NOW + timedelta(minutes=10 * number)
        clock[0] = first
        writer.write(
            [Received(message(10 * number, who, NOW - timedelta(hours=2), wbc=5.0, anc=3.0).encode())]
        )
        with store() as session:
            key = session.scalar(select(Patient.id).where(Patient.mrn == who[1]))
        low = message(10 * number + 1, who, NOW - timedelta(minutes=30), wbc=0.8, anc=0.1)
        step = getattr(db.histories, moment)

        def meanwhile(*args, step=step, low=low, first=first, **kwargs):
            import_content(
                store,
                "more.hl7",
                low.replace("|H0000", "|F0000").encode(),
                options=ImportOptions(imported_by="test", site_timezone="UTC"),
                now=first - timedelta(minutes=1),
            )
            return step(*args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(db.histories, moment, meanwhile)
            assert catch_up(store, timezone="UTC", now=first, histories=histories) == 1
        imported = _status_of(store, key)
        assert imported == _whole_read(store, [key], first - timedelta(minutes=1))[0], moment
        assert imported[list(_columns(store)).index("latest_anc_grade")] == 4, "the import's grade 4 stands"
        assert key not in histories.computed_at
        later = first + timedelta(minutes=5)
        assert catch_up(store, timezone="UTC", now=later, histories=histories) == 1, "still waiting"
        assert _status_of(store, key) == _whole_read(store, [key], later)[0]
    writer.close()


def _columns(store) -> list[str]:
    with store() as session:
        return list(session.execute(text("SELECT * FROM patient_status LIMIT 1")).keys())


@pytest.mark.parametrize("worse", [False, True])
def test_an_acknowledgement_waiting_for_a_pass_on_postgresql_lands_on_the_row_it_wrote(
    demo_copy, monkeypatch, worse: bool
) -> None:
    """PostgreSQL: an acknowledgement whose UPDATE waits for the rows a pass holds finds, once the pass
    commits, that the row it waited for was replaced; it is made on the new one, unless the pass changed
    the flags (a worse count): then nothing is acknowledged and the person is told to look again."""
    import threading
    import time

    import db.histories
    from services.patient_actions import acknowledge

    store = demo_copy(NOW)
    if store.kw["bind"].dialect.name != "postgresql":
        return  # SQLite: the acknowledgement waits for the store's write lock, then reads the new row
    key, who = _first_patient(store)
    histories, clock = Histories(), [NOW]
    writer = FeedWriter(
        store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW, clock=lambda: clock[0]
    )
    clock[0] = NOW + timedelta(minutes=10)
    writer.write([Received(message(1, who, NOW - timedelta(hours=1), wbc=2.1, anc=0.8).encode())])
    assert catch_up(store, timezone="UTC", now=clock[0], histories=histories) == 1
    clock[0] = NOW + timedelta(minutes=20)
    # The latest count, grade 4; or a normal one of more than a year before, which changes no flag.
    drawn = NOW - (timedelta(minutes=30) if worse else timedelta(days=400))
    writer.write(
        [Received(message(2, who, drawn, wbc=1.1 if worse else 6.0, anc=0.1 if worse else 3.5).encode())]
    )
    seen = NOW + timedelta(minutes=19)
    writing = db.histories.write_status
    refused: list[Exception] = []

    def acknowledging(**kwargs) -> None:
        try:
            acknowledge(**kwargs)
        except ValueError as error:
            refused.append(error)

    waiting = threading.Thread(
        target=acknowledging,
        kwargs={
            "store": store,
            "viewer": Viewer("admin", "admin", None),
            "patient_key": key,
            "comment": "seen",
            "now": seen,
        },
    )

    def meanwhile(*args, **kwargs):
        waiting.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the acknowledgement waits for this pass's lock
            with store() as session:
                if session.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                ):
                    break
            time.sleep(0.01)
        return writing(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(db.histories, "write_status", meanwhile)
        assert catch_up(store, timezone="UTC", now=NOW + timedelta(minutes=20), histories=histories) == 1
    waiting.join(30)
    assert _acknowledged(store, key) == (None if worse else seen)
    told = [str(error).startswith("not acknowledged: the patient's flags changed since") for error in refused]
    assert told == ([True] if worse else [])
    writer.close()
