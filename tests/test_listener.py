"""The MLLP listener, driven by python-hl7's own MLLP client: acknowledgements that never lie, messages
stored once however often they are sent, the same results as a file import, and a listener killed with -9
mid-stream losing nothing it acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import sessionmaker

from db.models import (
    FeedListener,
    FeedMessage,
    ImportBatch,
    Panel,
    Patient,
    PatientStatus,
    PatientTeam,
    RejectedRecord,
    Result,
    StatusPending,
    Team,
)
from db.store import open_store
from services.feed import FeedOptions, FeedWriter, Received, catch_up
from services.imports import ImportOptions, import_path
from services.listener import Listener, ListenOptions
from tests.conftest import DATA, ROOT

SAMPLES = DATA / "external"
START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\r"
NOW = datetime.now(UTC).replace(microsecond=0)


def cbc(number: int, patient: int = 1, *, wbc: str = "3.1", kind: str = "ORU^R01", hours_ago: int = 2) -> str:
    """A CBC message of five LOINC-coded OBX, its control ID ``C`` and the number."""
    when = NOW - timedelta(hours=hours_ago, minutes=number)
    segments = [
        f"MSH|^~\\&|LIS|TEST LAB|EHR|WARD|{when:%Y%m%d%H%M%S}+0000||{kind}|C{number:06d}|P|2.5.1",
        f"PID|1||L{patient:05d}^^^HOSP^MR||Listener^Pat{patient}||19700101|F",
        f"OBR|1||ACC{number:07d}|57021-8^CBC^LN|||{when:%Y%m%d%H%M%S}+0000",
        f"OBX|1|NM|6690-2^Leukocytes^LN||{wbc}|10*3/uL|4.0-11.0|L|||F",
        "OBX|2|NM|751-8^Neutrophils^LN||1.4|10*3/uL|1.8-7.7|L|||F",
        "OBX|3|NM|731-0^Lymphocytes^LN||1.1|10*3/uL|1.0-4.8||||F",
        "OBX|4|NM|718-7^Hemoglobin^LN||12.8|g/dL|12.0-16.0||||F",
        "OBX|5|NM|777-3^Platelets^LN||210|10*3/uL|150-450||||F",
    ]
    return "\r".join(segments)


async def _exchange(port: int, texts: Sequence[str]) -> list[hl7.Message]:
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        acks = []
        for text in texts:
            writer.writeblock(text.encode("utf-8"))
            await writer.drain()
            acks.append(await reader.readmessage())
        return acks
    finally:
        writer.close()
        await writer.wait_closed()


def send(port: int, texts: Sequence[str]) -> list[hl7.Message]:
    """Each message sent in turn on one connection, as an interface engine does; their ACKs."""
    return asyncio.run(_exchange(port, texts))


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    """MSA-1 (code), MSA-2 (control ID echoed) and MSA-3 (words) of an ACK."""
    segment = ack.segment("MSA")
    return str(segment[1]), str(segment[2]), ack.unescape(str(segment[3])) if len(segment) > 3 else ""


@contextmanager
def listening(store, listen: ListenOptions | None = None, **options) -> Iterator[Listener]:
    """A listener on a free loopback port, in a thread of this process, stopped cleanly at the end."""
    feed = FeedOptions(address="127.0.0.1:0", site_timezone="UTC", **options)
    listener = Listener(store, feed, listen or ListenOptions(port=0))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(listener.serve(ready=lambda _port: ready.set())), daemon=True
    )
    thread.start()
    assert ready.wait(30), "the listener did not start"
    try:
        yield listener
    finally:
        loop.call_soon_threadsafe(listener.stop)
        thread.join(60)
        loop.close()
        assert not thread.is_alive(), "the listener did not stop"


def _count(store, *what) -> int:
    with store() as session:
        return int(session.scalar(select(func.count()).select_from(*what)) or 0)


def _stored_results(store) -> list[tuple]:
    """Every result as a reader sees it (patient, panel, values, statuses), without the store's own keys."""
    statement = (
        select(
            Patient.mrn,
            Patient.assigning_authority,
            Patient.name,
            Panel.accession,
            Panel.collected_at,
            Result.analyte,
            Result.loinc,
            Result.value_raw,
            Result.unit_raw,
            Result.value,
            Result.comparator,
            Result.unit,
            Result.ref_low,
            Result.ref_high,
            Result.abnormal_flag,
            Result.status,
            Result.derived,
            Result.version,
            Result.is_current,
        )
        .join(Panel, Result.panel_id == Panel.id)
        .join(Patient, Panel.patient_id == Patient.id)
    )
    with store() as session:
        return sorted(map(tuple, session.execute(statement).all()), key=repr)


def test_shared_samples_and_generated_messages_are_stored_as_a_file_import_stores_them(
    tmp_path: Path,
) -> None:
    samples = [
        (SAMPLES / name).read_text(encoding="utf-8").strip()
        for name in ("nist-lri-cbc.hl7", "fhir-converter-lab-oru-1.hl7")
    ]
    messages = [*samples, *(cbc(n, patient=n % 3) for n in range(1, 7)), cbc(7, wbc="abc")]
    listened = open_store(f"sqlite:///{tmp_path / 'listened.db'}", timezone="UTC")
    with listening(listened, processing_ids=("P", "T")) as listener:  # the samples are marked T
        acks = send(listener.port, messages)
    controls = [str(hl7.parse(text.replace("\n", "\r")).segment("MSH")[10]) for text in messages]
    assert [msa(ack)[1] for ack in acks] == controls, "MSA-2 echoes each message's control ID"
    codes = [msa(ack)[0] for ack in acks]
    assert codes[2:8] == ["AA"] * 6
    assert codes[8] == "AE" and "value 'abc' is not a number" in msa(acks[8])[2]
    assert str(acks[8].segment("ERR")[2]) == "OBX^1", "ERR-2 names the refused OBX"

    # The same messages in a file, imported by the file importer into another store.
    file = tmp_path / "same.hl7"
    file.write_text("\r\n".join(messages) + "\r\n", encoding="utf-8")
    imported = open_store(f"sqlite:///{tmp_path / 'imported.db'}", timezone="UTC")
    summary = import_path(imported, file, options=ImportOptions(imported_by="test", site_timezone="UTC"))
    assert _stored_results(listened) == _stored_results(imported)
    assert len(_stored_results(listened)) >= 6 * 5
    # A sample's refusals are the file import's, message for message (AE where the file refused records).
    refused_messages = {
        location.split(",")[0].split("(")[-1].rstrip(")") for location in summary.rejected["location"]
    }
    assert {control for control, code in zip(controls, codes, strict=True) if code == "AE"} == {
        control for control in controls if any(control in found for found in refused_messages)
    }


def test_acknowledgements_on_both_stores(store) -> None:
    with listening(store) as listener:
        acks = send(listener.port, [cbc(1), cbc(2, kind="ADT^A01"), "not a message at all", cbc(1)])
    assert [msa(ack)[:2] for ack in acks] == [
        ("AA", "C000001"),
        ("AR", "C000002"),
        ("AR", ""),
        ("AA", "C000001"),
    ]
    assert msa(acks[0])[2] == msa(acks[3])[2] == "message stored (5 OBX)"
    assert "ORU^R01" in msa(acks[1])[2]
    assert str(acks[1].segment("MSH")[9]) == "ACK^A01^ACK", "the ACK carries the message's trigger event"
    # The ACK's MSH sends the message's applications and facilities back, swapped.
    header = acks[0].segment("MSH")
    assert [str(header[n]) for n in (3, 4, 5, 6)] == ["EHR", "WARD", "LIS", "TEST LAB"]
    # Stored once although sent twice; the rejected messages kept for review with their reasons.
    assert _count(store, Result) == 5
    assert _count(store, FeedMessage) == 3
    with store() as session:
        kept = session.execute(select(RejectedRecord.location, RejectedRecord.reason)).all()
    assert {location for location, _ in kept} == {"message C000002", "message without a control ID"}
    # The patient's status is recomputed behind the acknowledgement (at the latest once the listener stops).
    with store() as session:
        status = session.execute(select(PatientStatus.latest_wbc, PatientStatus.latest_wbc_grade)).one()
    assert status == (3.1, 1)


def test_a_message_split_across_packets_and_messages_sharing_a_packet(store) -> None:
    with (
        listening(store) as listener,
        socket.create_connection(("127.0.0.1", listener.port), timeout=30) as raw,
    ):
        framed = START_BLOCK + cbc(1).encode() + END_BLOCK
        for start in range(0, len(framed), 37):  # in pieces of 37 bytes, each its own send
            raw.sendall(framed[start : start + 37])
        first = _read_block(raw)
        raw.sendall(b"".join(START_BLOCK + cbc(n, patient=n).encode() + END_BLOCK for n in (2, 3)))
        second, third = _read_block(raw), _read_block(raw)
        # A malformed frame (no start block) is answered AR, and the connection goes on.
        raw.sendall(b"MSH|^~\\&|no start block" + END_BLOCK)
        malformed = _read_block(raw)
        raw.sendall(START_BLOCK + cbc(4).encode() + END_BLOCK)
        after = _read_block(raw)
    answers = [msa(hl7.parse(block)) for block in (first, second, third, malformed, after)]
    assert [(code, control) for code, control, _ in answers] == [
        ("AA", "C000001"),
        ("AA", "C000002"),
        ("AA", "C000003"),
        ("AR", ""),
        ("AA", "C000004"),
    ]
    assert "start block" in answers[3][2]
    assert _count(store, Result) == 4 * 5


def _read_block(raw: socket.socket) -> str:
    data = b""
    while not data.endswith(END_BLOCK):
        chunk = raw.recv(65536)
        assert chunk, "the listener closed the connection"
        data += chunk
    assert data.startswith(START_BLOCK) and data.count(END_BLOCK) == 1
    return data[1:-2].decode("utf-8")


def test_many_connections_at_once_are_each_answered_in_order(store) -> None:
    async def sender(port: int, first: int) -> list[str]:
        acks = await _exchange(port, [cbc(n, patient=n) for n in range(first, first + 10)])
        return [msa(ack)[1] for ack in acks]

    async def all_senders(port: int) -> list[list[str]]:
        return list(await asyncio.gather(*(sender(port, 100 * k) for k in range(1, 5))))

    with listening(store) as listener:
        answered = asyncio.run(all_senders(listener.port))
    assert answered == [[f"C{n:06d}" for n in range(100 * k, 100 * k + 10)] for k in range(1, 5)]
    assert _count(store, Result) == 40 * 5
    with store() as session:
        grouped = session.scalar(
            select(func.count()).select_from(ImportBatch).where(ImportBatch.format == "hl7")
        )
    assert grouped == 1, "a listener's messages of one day go to one batch"


def test_teams_receive_the_patients_a_feed_names(store) -> None:
    with store.begin() as session:
        session.add(Team(code="ONC", name="Oncology"))
    with listening(store, teams=("ONC",)) as listener:
        send(listener.port, [cbc(1)])
    with store() as session:
        members = session.execute(
            select(Patient.mrn, Team.code)
            .select_from(PatientTeam)
            .join(Patient, PatientTeam.patient_id == Patient.id)
            .join(Team, PatientTeam.team_id == Team.id)
        ).all()
    assert members == [("L00001", "ONC")]


def test_a_store_that_cannot_be_reached_is_answered_ar_and_nothing_is_taken() -> None:
    # Nothing listens on port 9 of loopback: every connection is refused.
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/none", pool_pre_ping=False)
    writer = FeedWriter(
        sessionmaker(engine), FeedOptions(address="127.0.0.1:2575", site_timezone="UTC"), started_at=NOW
    )
    answers = writer.write([Received(cbc(1).encode()), Received(cbc(2).encode())])
    assert [(a.code, a.control_id) for a in answers] == [("AR", "C000001"), ("AR", "C000002")]
    assert all("store unavailable" in a.words for a in answers)
    assert all("MSA|AR|" in a.ack for a in answers)


def test_the_log_names_control_ids_and_codes_never_patient_data(store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="monitor.listener")
    with listening(store) as listener:
        send(listener.port, [cbc(1), cbc(2, wbc="abc")])
    lines = [record.getMessage() for record in caplog.records]
    assert any("C000001: AA" in line for line in lines)
    assert any("C000002: AE" in line and "1 refused" in line for line in lines)
    text = "\n".join(lines)
    for private in ("L00001", "Listener", "Pat1", "3.1", "abc", "19700101"):
        assert private not in text


# The listener in a process of its own, for the kill -9 and SIGTERM tests.
LISTEN = [sys.executable, "-m", "monitor", "listen", "--port", "0"]


def _start(db_url: str, tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as output:
        process = subprocess.Popen(LISTEN, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    port = _port_from(log, process)
    return process, port, log


def _port_from(log: Path, process: subprocess.Popen[bytes]) -> int:
    """The port the listener reports once it accepts connections (its log's first line)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on " in line:
                return int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError("the listener did not start: " + log.read_text())


def test_a_listener_killed_mid_stream_loses_no_acknowledged_message(
    db_url: str, store, tmp_path: Path
) -> None:
    messages = {n: cbc(n, patient=n % 7) for n in range(1, 61)}
    acknowledged: dict[int, str] = {}
    process, port, _ = _start(db_url, tmp_path, "first")

    async def until_killed() -> None:
        async def one_connection(numbers: list[int]) -> None:
            reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
            try:
                for n in numbers:
                    writer.writeblock(messages[n].encode())
                    await writer.drain()
                    acknowledged[n] = msa(await reader.readmessage())[0]
                    if len(acknowledged) == 25:
                        os.kill(
                            process.pid, signal.SIGKILL
                        )  # while the other connection's message is in flight
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                return  # killed: the rest of this connection's messages were never answered

        await asyncio.gather(one_connection(list(range(1, 61, 2))), one_connection(list(range(2, 61, 2))))

    asyncio.run(until_killed())
    process.wait(30)
    assert 25 <= len(acknowledged) < 60 and set(acknowledged.values()) == {"AA"}
    for n in acknowledged:  # every acknowledged message is stored, whole
        assert _results_of(store, n) == 5
    for n in set(messages) - set(acknowledged):  # any other either whole or not at all
        assert _results_of(store, n) in (0, 5)

    # The engine sends every message again (it never saw those ACKs; acknowledged ones too, for the test).
    process, port, _ = _start(db_url, tmp_path, "second")
    try:
        acks = send(port, [messages[n] for n in sorted(messages)])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert [msa(ack)[:2] for ack in acks] == [("AA", f"C{n:06d}") for n in sorted(messages)]
    assert all(_results_of(store, n) == 5 for n in messages), "every message stored exactly once"
    assert _count(store, Result) == 60 * 5
    with store() as session:
        keys = session.execute(
            select(FeedMessage.message_key, func.count()).group_by(FeedMessage.message_key)
        ).all()
        waiting = session.scalar(
            select(func.count())
            .select_from(Patient)
            .join(PatientStatus, isouter=True)
            .where(PatientStatus.patient_id.is_(None))
        )
    assert len(keys) == 60 and all(count == 1 for _, count in keys)
    assert waiting == 0, "every patient has a status once the listener has stopped"


def _results_of(store, number: int) -> int:
    with store() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Result)
                .join(Panel, Result.panel_id == Panel.id)
                .where(Panel.accession == f"ACC{number:07d}", Result.derived.is_(False))
            )
            or 0
        )


def test_sigterm_answers_what_was_received_then_stops(db_url: str, store, tmp_path: Path) -> None:
    process, port, log = _start(db_url, tmp_path, "graceful")
    try:
        acks = send(port, [cbc(1), cbc(2)])
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0 and [msa(ack)[0] for ack in acks] == ["AA", "AA"]
    assert "stopped" in log.read_text()
    with store() as session:
        listener = session.execute(select(FeedListener.stopped_at, FeedListener.pid)).one()
    assert listener.stopped_at is not None and listener.pid == process.pid
    status = subprocess.run(
        [sys.executable, "-m", "monitor", "listen-status"],
        cwd=ROOT,
        env={**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 1, status.stdout + status.stderr
    assert "stopped" in status.stdout and "2 AA" in status.stdout
    health = subprocess.run(
        [sys.executable, "-m", "monitor", "listen-status", "--format", "json"],
        cwd=ROOT,
        env={**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = json.loads(health.stdout)
    assert health.returncode == 1 and shown["healthy"] is False
    assert [listener["state"] for listener in shown["listeners"]] == ["stopped"]
    assert shown["today"] == {"AA": 2, "AE": 0, "AR": 0} and shown["last_message_at"].endswith("Z")
    assert isinstance(shown["statuses_waiting"], int)


def test_catch_up_recomputes_each_waiting_patient_once(store) -> None:
    writer = FeedWriter(store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    writer.write([Received(cbc(n, patient=n % 2).encode()) for n in range(1, 5)])
    assert catch_up(store, timezone="UTC") == 2
    assert catch_up(store, timezone="UTC") == 0
    assert _count(store, PatientStatus) == 2


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "listener test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "listener.pem", folder / "listener.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key_file


def test_mllp_over_tls(store, tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    with listening(store, ListenOptions(port=0, tls_cert=cert, tls_key=key)) as listener:
        trusting = ssl.create_default_context(cafile=str(cert))

        async def over_tls() -> hl7.Message:
            reader, writer = await open_hl7_connection(
                "127.0.0.1", listener.port, ssl=trusting, encoding="utf-8"
            )
            writer.writeblock(cbc(1).encode())
            await writer.drain()
            ack = await reader.readmessage()
            writer.close()
            return ack

        assert msa(asyncio.run(over_tls()))[:2] == ("AA", "C000001")
        # Plain MLLP to the TLS port is not answered: nothing goes over the wire in clear.
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
            raw.sendall(START_BLOCK + cbc(2).encode() + END_BLOCK)
            try:
                answer = raw.recv(65536)
            except (ConnectionResetError, TimeoutError):
                answer = b""
        assert b"MSA" not in answer
    assert _count(store, Result) == 5


def test_a_message_that_breaks_the_writer_is_refused_alone(store, monkeypatch) -> None:
    import services.feed

    reading = services.feed.read_quickly

    def breaks_on_a_mark(messages, **options):
        if any("BREAKS" in segment for message in messages for segment in message):
            raise RuntimeError("a fault in the reading")
        return reading(messages, **options)

    monkeypatch.setattr(services.feed, "read_quickly", breaks_on_a_mark)
    writer = FeedWriter(store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    broken = cbc(2).replace("Listener^Pat1", "BREAKS^Pat1")
    answers = writer.write([Received(cbc(1).encode()), Received(broken.encode()), Received(cbc(3).encode())])
    assert [(a.code, a.control_id) for a in answers] == [
        ("AA", "C000001"),
        ("AR", "C000002"),
        ("AA", "C000003"),
    ]
    assert "internal error" in answers[1].words and "MSA|AR|C000002" in answers[1].ack
    assert _count(store, Result) == 2 * 5


def test_what_an_engine_may_send_wrong_is_answered_and_the_listener_goes_on(store, monkeypatch) -> None:
    import services.listener

    monkeypatch.setattr(services.listener, "MESSAGE_LIMIT", 2048)  # a block larger than 2 kB is refused
    latin = cbc(5).replace("Listener^Pat1", "M\xfcller^Pat1").encode("latin-1")
    with listening(store) as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as raw:
            # Senders that end each block with FS CR LF: the line end before the next block is skipped.
            raw.sendall(b"".join(START_BLOCK + cbc(n).encode() + END_BLOCK + b"\n" for n in (1, 2)))
            first, second = _read_block(raw), _read_block(raw)
            # A header with too few encoding characters, a test message, a message not in UTF-8.
            raw.sendall(START_BLOCK + b"MSH|^~" + END_BLOCK)
            short = _read_block(raw)
            raw.sendall(START_BLOCK + cbc(3).replace("|P|2.5.1", "|T|2.5.1").encode() + END_BLOCK)
            training = _read_block(raw)
            raw.sendall(START_BLOCK + latin + END_BLOCK)
            not_utf8 = _read_block(raw)
            raw.sendall(START_BLOCK + cbc(4).encode() + END_BLOCK)
            after = _read_block(raw)
            # A header cut short after MSH-3: no message type.
            raw.sendall(START_BLOCK + b"MSH|^~\\&|cut short" + END_BLOCK)
            cut_short = _read_block(raw)
            # A block larger than the limit: answered once, then the connection is closed (no ACK that
            # would answer the wrong message).
            raw.sendall(START_BLOCK + (cbc(6) + "\r" + "NTE|1||" + "x" * 4000).encode() + END_BLOCK)
            oversized = _read_block(raw)
            assert raw.recv(65536) == b""
    answers = [
        msa(hl7.parse(block))
        for block in (first, second, short, training, not_utf8, after, cut_short, oversized)
    ]
    assert [(code, control) for code, control, _ in answers] == [
        ("AA", "C000001"),
        ("AA", "C000002"),
        ("AR", ""),
        ("AR", "C000003"),
        ("AR", "C000005"),
        ("AA", "C000004"),
        ("AR", ""),
        ("AR", ""),
    ]
    assert "MSH-1 and MSH-2 are not" in answers[2][2] and "processing ID 'T'" in answers[3][2]
    assert "not UTF-8" in answers[4][2] and "larger than" in answers[7][2]
    assert answers[6][2].startswith("MSH-9 (message type) is empty: this receiver takes ORU^R01")
    assert _count(store, Result) == 3 * 5


def test_a_message_sent_again_is_answered_with_its_own_refusals(store) -> None:
    writer = FeedWriter(store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    one = cbc(1, wbc="abc")
    other = cbc(1, patient=2, wbc="xyz")  # the same control ID, another message
    writer.write([Received(one.encode())])
    writer.write([Received(other.encode())])
    again = writer.write([Received(one.encode())])[0]
    assert again.again and again.code == "AE"
    errors = [segment for segment in again.ack.split("\r") if segment.startswith("ERR")]
    assert len(errors) == 1 and "'abc'" in errors[0] and "xyz" not in again.ack
    # ERR-2 the OBX (its sequence in the message), ERR-3 the kind of error (HL7 table 0357).
    assert errors[0].split("|")[2:4] == ["OBX^1", "102^Data type error^HL70357"]


def test_new_panels_of_known_patients_and_labs_are_stored_as_a_file_import_stores_them(
    tmp_path: Path,
) -> None:
    from db.models import Lab

    first = [cbc(n, patient=n % 3, hours_ago=30).replace("||19700101|F", "||") for n in range(1, 4)]
    later = [cbc(n, patient=n % 3, hours_ago=3) for n in range(4, 10)]  # birth date and sex given now
    stores = []
    for name in ("listened", "imported"):
        store = open_store(f"sqlite:///{tmp_path / f'{name}.db'}", timezone="UTC")
        earlier = tmp_path / f"{name}-first.hl7"
        earlier.write_text("\r\n".join(first) + "\r\n")
        assert import_path(
            store, earlier, options=ImportOptions(imported_by="t", site_timezone="UTC")
        ).accepted
        stores.append(store)
    writer = FeedWriter(stores[0], FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    for pair in (later[:4], later[4:]):
        assert {a.code for a in writer.write([Received(text.encode()) for text in pair])} == {"AA"}
    rest = tmp_path / "rest.hl7"
    rest.write_text("\r\n".join(later) + "\r\n")
    import_path(stores[1], rest, options=ImportOptions(imported_by="t", site_timezone="UTC"))
    assert _stored_results(stores[0]) == _stored_results(stores[1])

    def people(store) -> list[tuple]:
        with store() as session:
            rows = session.execute(select(Patient.mrn, Patient.name, Patient.birth_date, Patient.sex)).all()
            labs = session.execute(select(Lab.code)).all()
        return sorted(map(tuple, rows)) + sorted(map(tuple, labs))

    assert people(stores[0]) == people(stores[1])
    assert ("L00001", "Listener, Pat1", date(1970, 1, 1), "F") in people(stores[0])


def test_common_groups_go_in_two_round_trips_on_postgresql_and_every_other_the_common_way(
    store, tmp_path: Path, monkeypatch, caplog
) -> None:
    import services.feed

    caplog.set_level(logging.WARNING, logger="monitor.listener")

    pipelined: list[list[str]] = []  # the control IDs of each group written in two round trips
    writing = services.feed.write

    def counted(connection, **rows):
        pipelined.append([row["control_id"] for row in rows["messages"]])
        return writing(connection, **rows)

    monkeypatch.setattr(services.feed, "write", counted)
    bare = cbc(11, patient=5).replace("||19700101|F", "||")  # a patient known without birth date and sex
    correction = cbc(6, patient=3, wbc="2.2").replace("|C000006|", "|C000106|").replace("|L|||F", "|L|||C", 1)
    groups = [
        [cbc(1, patient=1), cbc(2, patient=2), bare],  # the first group: the day's batch is new
        [cbc(3, patient=1), cbc(4, patient=2)],  # known patients and lab, new panels
        [cbc(5, patient=3)],  # a new patient
        [cbc(3, patient=1), cbc(6, patient=3)],  # one of them sent again
        [correction],
        [cbc(12, patient=5)],  # completes the patient's birth date and sex
        [cbc(7, patient=1), cbc(8, patient=2), cbc(9, patient=3)],
        [cbc(10, patient=4, wbc="abc")],  # a refused record
        [cbc(13, patient=1).replace("|TEST LAB|", "|OTHER LAB|")],  # a lab not known yet
        [cbc(14, patient=2), cbc(14, patient=2)],  # one message twice in a group
    ]
    writer = FeedWriter(store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    codes = [[a.code for a in writer.write([Received(t.encode()) for t in group])] for group in groups]
    writer.close()
    assert codes == [
        ["AA"] * 3,
        ["AA"] * 2,
        ["AA"],
        ["AA"] * 2,
        ["AA"],
        ["AA"],
        ["AA"] * 3,
        ["AE"],
        ["AA"],
        ["AA"] * 2,
    ]
    postgresql = store.kw["bind"].dialect.name == "postgresql"
    assert pipelined == ([["C000003", "C000004"], ["C000007", "C000008", "C000009"]] if postgresql else [])
    assert not caplog.records, "no group failed on its way"

    # The same messages, once each, in a file imported by the file importer into another store.
    sent = list(dict.fromkeys(text for group in groups for text in group))
    file = tmp_path / "same.hl7"
    file.write_text("\r\n".join(sent) + "\r\n", encoding="utf-8")
    imported = open_store(f"sqlite:///{tmp_path / 'imported.db'}", timezone="UTC")
    import_path(imported, file, options=ImportOptions(imported_by="test", site_timezone="UTC"))
    assert _stored_results(store) == _stored_results(imported)

    with store() as session:
        people = sorted(map(tuple, session.execute(select(Patient.mrn, Patient.birth_date, Patient.sex))))
    assert people == [(f"L{n:05d}", date(1970, 1, 1), "F") for n in range(1, 6)], "the bare one completed"
    assert _count(store, StatusPending) == 5, "every patient a group touched waits for its status"
    with store() as session:
        batch = session.scalars(select(ImportBatch)).one()
        messages = session.scalar(select(func.count()).select_from(FeedMessage))
    # Thirteen CBCs whole, one corrected count (a new version of one result), four of the refused one's.
    assert (batch.accepted, batch.superseded, batch.rejected, messages) == (13 * 5 + 4, 1, 1, 15)


def test_a_connection_lost_between_groups_costs_no_message(store, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.listener")
    writer = FeedWriter(store, FeedOptions(address="test", site_timezone="UTC"), started_at=NOW)
    assert [a.code for a in writer.write([Received(cbc(1).encode())])] == ["AA"]
    assert [a.code for a in writer.write([Received(cbc(2).encode())])] == ["AA"]
    pid = 0
    if writer._raw is not None:  # PostgreSQL: the connection the writer holds is ended by the server
        with store.begin() as session:
            pid = writer._raw.driver_connection.info.backend_pid
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    answers = writer.write([Received(cbc(3).encode()), Received(cbc(4).encode())])
    assert [(a.code, a.again) for a in answers] == [("AA", False), ("AA", False)]
    assert [a.code for a in writer.write([Received(cbc(5).encode())])] == ["AA"]
    writer.close()
    assert _count(store, Result) == 5 * 5
    assert _count(store, FeedMessage) == 5
    lost = [r.getMessage() for r in caplog.records if "two round trips" in r.getMessage()]
    # The server's ending of the connection (psycopg's AdminShutdown, an OperationalError), nothing else.
    assert lost == (
        ["group not written in two round trips (AdminShutdown): written the common way"] if pid else []
    )


def test_on_postgresql_the_two_statement_way_stores_what_the_common_way_stores(
    databases, monkeypatch
) -> None:
    """The same groups through a writer that may write them in two statements and one that may not, at the
    same instants and with the same random control IDs: every table holds the same rows."""
    import random

    import services.feed
    from db.migrate import upgrade
    from db.session import make_engine, make_session_factory

    databases.require_postgres()
    kolkata = cbc(3, patient=1).replace("+0000", "+0530")
    pacific = cbc(4, patient=2, wbc="3.333333333333333").replace("+0000", "-0800")
    bare_unit = cbc(5, patient=3).replace("|g/dL|", "|g/dl|").replace("^^^HOSP^MR", "^^^^MR")
    groups = [
        [cbc(1, patient=1), cbc(2, patient=2), cbc(20, patient=3).replace("^^^HOSP^MR", "^^^^MR")],
        [kolkata, pacific],
        [bare_unit, cbc(6, patient=1).replace("|||F", "|||C", 1)],
        [cbc(7, patient=2).replace("|||F", "|||P")],
        [cbc(31, patient=4)],  # a patient stored by a listener without the team: added to it, and audited
    ]

    def stored(fast: bool) -> tuple[list, dict[str, list]]:
        url = databases.new_postgres()
        engine = make_engine(url)
        upgrade(engine, timezone="UTC")
        store = make_session_factory(engine)
        with monkeypatch.context() as patch:
            if not fast:
                patch.setattr(FeedWriter, "_pipelined", property(lambda _: False))
            writing = services.feed.write
            patch.setattr(services.feed, "write", lambda *a, **k: (ways.append(fast), writing(*a, **k))[1])
            random.seed(22)
            with store.begin() as session:
                session.add_all([Team(code="ONC", name="Oncology"), Team(code="HAEM", name="Haematology")])
            other = FeedWriter(
                store, FeedOptions(address="other", site_timezone="UTC"), started_at=NOW, clock=lambda: NOW
            )
            other.write([Received(cbc(30, patient=4).encode())])
            other.close()
            options = FeedOptions(address="test", site_timezone="UTC", teams=("ONC", "HAEM"))
            writer = FeedWriter(store, options, started_at=NOW, clock=lambda: NOW)
            acks = [[a.ack for a in writer.write([Received(t.encode()) for t in group])] for group in groups]
            writer.close()
        tables = {
            "results": (
                "SELECT p.assigning_authority, p.mrn, p.name, p.birth_date, p.sex, l.code, pa.collected_at, "
                "pa.accession, pa.reported_at, pa.batch_id, r.analyte, r.loinc, r.value_raw, r.unit_raw, "
                "r.value, r.unit, r.ref_low, r.ref_high, r.ref_raw, r.abnormal_flag, r.status, r.derived, "
                "r.version, r.is_current, r.superseded_at, r.batch_id, r.created_at, r.comparator "
                "FROM result r "
                "JOIN panel pa ON pa.id = r.panel_id JOIN patient p ON p.id = pa.patient_id "
                "JOIN lab l ON l.id = pa.lab_id"
            ),
            "messages": (
                "SELECT message_key, control_id, batch_id, received_at, ack_code, ack_text, ack_errors, "
                "results, refused FROM feed_message"
            ),
            "pending": "SELECT p.mrn, s.since FROM status_pending s JOIN patient p ON p.id = s.patient_id",
            "batches": "SELECT id, file_name, accepted, unchanged, superseded, rejected FROM import_batch",
            "refused": "SELECT batch_id, location, reason FROM rejected_record",
            "members": (
                "SELECT p.mrn, t.code FROM patient_team m JOIN patient p ON p.id = m.patient_id "
                "JOIN team t ON t.id = m.team_id"
            ),
            "audit": (
                "SELECT a.username, a.action, p.mrn, a.details FROM audit_log a "
                "LEFT JOIN patient p ON p.id = a.patient_id"
            ),
        }
        with store() as session:
            rows = {
                name: sorted(map(tuple, session.execute(text(sql))), key=repr) for name, sql in tables.items()
            }
        engine.dispose()
        databases.drop(url)
        return acks, rows

    ways: list[bool] = []
    fast, common = stored(True), stored(False)
    assert ways == [True, True], "two of the groups went in two statements, none without being let"
    assert ("L00004", "HAEM") in fast[1]["members"] and len(fast[1]["members"]) == 8
    assert fast[0] == common[0], "the same acknowledgements, word for word"
    for name in fast[1]:
        assert fast[1][name] == common[1][name], name
    assert len(fast[1]["results"]) >= 7 * 5
