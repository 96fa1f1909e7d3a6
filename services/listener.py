"""The MLLP listener (``python -m monitor listen``): HL7 v2 results received live, as an interface engine
(Mirth/NextGen Connect, Rhapsody, Iguana, Cloverleaf) delivers them, each answered once it is stored.

MLLP (HL7 v2.5.1 Appendix C, Minimal Lower Layer Protocol): a TCP stream of blocks, each a start byte
(0x0B), one message and an end (0x1C 0x0D). The engine sends one message on a connection and waits for
its ACK before the next; so many connections are served at once (python-hl7's asyncio server,
``hl7.mllp``), and what they deliver while a group is being written forms the next group: one writer thread
writes one group at a time (``services.feed.FeedWriter``), starting the next as soon as the previous has
committed, with no wait of its own that would hold a sender back (group commit). A second thread
recomputes, in passes, the status of the patients the groups touched (``services.feed.catch_up``).

An ACK is written to its connection only after the group's transaction has committed: a listener killed at
any moment has answered only what is stored, and a message it did not answer is stored at most once however
often the engine sends it again. On SIGTERM or SIGINT it stops accepting connections and messages, writes
and answers every message already received, then closes. Each message gets one log line: its control ID,
the ACK code, its counts and how long it waited, never a patient's data.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7.mllp
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from db.feed import listener_seen, listener_stopped
from services.feed import (
    HEARTBEAT_SECONDS,
    Answer,
    FeedOptions,
    FeedWriter,
    Received,
    shown_control_id,
    unanswerable,
)
from services.status_worker import recompute_statuses
from services.store import Store

_log = logging.getLogger("monitor.listener")
_ROOT = Path(__file__).resolve().parents[1]
# The largest message taken: a CBC message is a few kilobytes; a block larger than this is refused (AR) and
# skipped rather than held in memory.
MESSAGE_LIMIT = 4 * 2**20
# MLLP's framing (HL7 v2.5.1 Appendix C): a block is VT, the message, FS CR.
START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\r"
# Connections served at once at most (interface engines hold one or a few each): more are closed.
MOST_CONNECTIONS = 64
# Messages written in one transaction at most (the rest wait for the next group).
MOST_IN_GROUP = 500
# How long a stop waits for the statuses still to recompute (systemd's TimeoutStopSec should be longer:
# docs/deployment.md).
STATUS_STOP_SECONDS = 120


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """Where and how to listen.

    ``tls_cert``/``tls_key``: serve MLLP over TLS with this certificate chain and key (PEM), for a link that
    leaves the host; without them the listener takes plain TCP (bind it to loopback, or put stunnel or the
    engine's own TLS in front: docs/deployment.md). ``tls_client_ca``: take only engines whose client
    certificate this CA (PEM) signed.
    """

    host: str = "127.0.0.1"
    port: int = 2575
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Listener:
    """One listener: its server, its writer and status threads, and its clean stop (`stop`)."""

    def __init__(self, store: Store, feed: FeedOptions, options: ListenOptions) -> None:
        self.store = store
        self.options = options
        _durable_commits(store)
        self.started_at = datetime.now(UTC)
        self.writer = FeedWriter(store, feed, started_at=self.started_at)
        self.site_timezone = feed.site_timezone
        self._queue: asyncio.Queue[tuple[Received, asyncio.Future[Answer]]] = asyncio.Queue()
        self._writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-writer")
        self._stopping = asyncio.Event()
        self._statuses = _Statuses(store, feed.site_timezone)
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = options.port

    @property
    def address(self) -> str:
        """Where it listens, with the port it was given (the one chosen for it when asked for port 0)."""
        return f"{self.options.host}:{self.port}"

    def stop(self) -> None:
        """Stop taking messages; those received are still written and answered."""
        self._stopping.set()

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        """Listen until `stop` (or SIGTERM/SIGINT when run by `run`); ``ready`` is called with the port once
        connections are accepted."""
        self.writer.check_teams()
        loop_of_this = asyncio.get_running_loop()
        context = _tls(self.options)
        server = await hl7.mllp.start_hl7_server(
            self._connection, self.options.host, self.options.port, limit=MESSAGE_LIMIT, ssl=context
        )
        self.port = server.sockets[0].getsockname()[1]
        if self.options.port == 0:  # the batches and the sign of life name the port chosen
            self.writer.options = replace(self.writer.options, address=self.address)
        self._seen()
        self._statuses.start()
        writing = asyncio.create_task(self._write_groups())
        heartbeat = asyncio.create_task(self._heartbeat())
        _log.info(
            "listening on %s:%s (%s)", self.options.host, self.port, "MLLP over TLS" if context else "MLLP"
        )
        if context is None and not _loopback(self.options.host):
            _log.warning(
                "plain MLLP on %s: results cross the network in clear and anyone who reaches the port can "
                "send them; use --tls-cert/--tls-key (and --tls-client-ca), or stunnel (docs/deployment.md)",
                self.options.host,
            )
        if ready is not None:
            ready(self.port)
        try:
            await self._stopping.wait()
        finally:
            server.close()
            await self._queue.join()  # every message received is written and answered
            writing.cancel()
            heartbeat.cancel()
            for connection in list(self._connections):
                connection.close()
            await server.wait_closed()
            self._writing.shutdown(wait=True)
            self.writer.close()
            await loop_of_this.run_in_executor(None, self._statuses.stop)
            self._stopped()
            _log.info("stopped")

    async def _connection(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        """One sender: a message at a time, each answered once stored."""
        loop = asyncio.get_running_loop()
        peer = _peer(writer.get_extra_info("peername"))
        if len(self._connections) >= MOST_CONNECTIONS:
            _log.warning("connection from %s refused: %d connections open already", peer, MOST_CONNECTIONS)
            writer.close()
            return
        self._connections.add(writer)
        _log.info("connection from %s", peer)
        try:
            while not self._stopping.is_set():
                received, last = await _next_block(reader)
                if received is None or self._stopping.is_set():
                    break  # the sender closed; or stopping: not answered, the engine sends it again
                answered: asyncio.Future[Answer] = loop.create_future()
                self._queue.put_nowait((received, answered))
                answer = await answered
                writer.writeblock(answer.ack.encode("utf-8"))
                await writer.drain()
                if last:
                    _log.warning("connection from %s closed: %s", peer, received.problem)
                    break
        except (ConnectionError, ssl.SSLError, OSError) as error:
            _log.info("connection from %s lost: %s", peer, type(error).__name__)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _write_groups(self) -> None:
        """Write whatever has arrived as one group, as soon as the previous group has committed. Every
        message taken is answered, whatever happens (a message left unanswered would hold its connection
        and the stop)."""
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            group = [first]
            while len(group) < MOST_IN_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            started = time.perf_counter()
            answers: list[Answer] = []
            try:
                answers = await loop.run_in_executor(
                    self._writing, self.writer.write, [item for item, _ in group]
                )
            except BaseException as error:
                _log.error("group not written: %s", type(error).__name__)
                raise
            finally:
                if len(answers) != len(group):  # the writer failed (never meant to): refuse the group
                    answers = [unanswerable(datetime.now(UTC)) for _ in group]
                self._answer(group, answers, (time.perf_counter() - started) * 1000)
            # A message answered "again" may have been stored by this very group (its first way failed
            # after the commit went out): the statuses are woken for it too (a pass with none waiting is
            # one query).
            if any(answer.code != "AR" for answer in answers):
                self._statuses.wake()

    def _answer(
        self, group: list[tuple[Received, asyncio.Future[Answer]]], answers: list[Answer], took: float
    ) -> None:
        for (_, answered), answer in zip(group, answers, strict=True):
            _log.info(
                "message %s: %s%s, %d results, %d refused (group of %d, %.0f ms)",
                shown_control_id(answer.control_id),
                answer.code,
                " (sent again)" if answer.again else "",
                answer.results,
                answer.refused,
                len(group),
                took,
            )
            if not answered.done():
                answered.set_result(answer)
            self._queue.task_done()

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await loop.run_in_executor(None, self._seen)
            self._statuses.keep_running()

    def _seen(self) -> None:
        try:
            with self.store.begin() as session:
                listener_seen(
                    session,
                    self.address,
                    pid=os.getpid(),
                    host_name=socket.gethostname(),
                    started_at=self.started_at,
                    now=datetime.now(UTC),
                )
        except SQLAlchemyError as error:
            _log.warning("could not record the listener's sign of life: %s", type(error).__name__)

    def _stopped(self) -> None:
        try:
            with self.store.begin() as session:
                listener_stopped(session, self.address, host_name=socket.gethostname(), now=datetime.now(UTC))
        except SQLAlchemyError as error:
            _log.warning("could not record the listener's stop: %s", type(error).__name__)


class _Statuses:
    """The patients' statuses recomputed behind the feed, in passes, by ``python -m services.status_worker``
    (a process of its own; on a SQLite store held in memory, which no other process can open, a thread of
    this process instead).

    `wake` after a group committed; `stop` at the end: the passes go on until no patient is left waiting.
    The process leaves when this one is gone (its input ends).
    """

    def __init__(self, store: Store, timezone: str) -> None:
        self.store = store
        self.timezone = timezone
        url = store.kw["bind"].url
        self.url = url.render_as_string(hide_password=False)
        self.in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._stopping = False

    def start(self) -> None:
        if self.in_memory:
            self._thread = threading.Thread(
                target=recompute_statuses,
                args=(self.store, self.timezone, self._wake, self._stop),
                name="feed-status",
                daemon=True,
            )
            self._thread.start()
            return
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH", "")]))
        # The store's URL goes over the pipe, not the command line; none of the product's own settings.
        settings = {name: value for name, value in os.environ.items() if not name.startswith("MONITOR_")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "services.status_worker"],
            stdin=subprocess.PIPE,
            env={**settings, "PYTHONPATH": path},
        )
        self._send(json.dumps({"url": self.url, "timezone": self.timezone}).encode() + b"\n")

    def wake(self) -> None:
        if self._process is not None:
            self._send(b"w")
        self._wake.set()

    def keep_running(self) -> None:
        """Start the process again if it has died (an error it could not survive: logged there)."""
        if self._process is not None and self._process.poll() is not None and not self._stopping:
            _log.warning("the status process ended (exit code %s): started again", self._process.returncode)
            self.start()
            self.wake()

    def stop(self) -> None:
        """Recompute every status still waiting, then end (waits up to `STATUS_STOP_SECONDS`; what is left
        then stays marked for the next start)."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._process is not None:
            self._send(b"s")
            try:
                self._process.wait(STATUS_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _log.warning("the status process did not finish in %d s: stopped", STATUS_STOP_SECONDS)
                self._process.kill()
                self._process.wait()
            if self._process.stdin is not None:
                self._process.stdin.close()
        if self._thread is not None:
            self._thread.join(STATUS_STOP_SECONDS)

    def _send(self, data: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(data)
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the process has ended: `keep_running` starts it again


def run(store: Store, feed: FeedOptions, options: ListenOptions) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly (the command's body)."""

    async def main() -> None:
        listener = Listener(store, feed, options)
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, listener.stop)
        await listener.serve()

    asyncio.run(main())


async def _next_block(reader: asyncio.StreamReader) -> tuple[Received | None, bool]:
    """The next MLLP block (None at the end of the stream), and whether the connection must close after
    it is answered.

    Bytes before a block's start byte (a line end some senders put after each block's end) are skipped.
    Data that ends like a block but holds no start byte is answered AR and the stream goes on at the next
    block; a block larger than `MESSAGE_LIMIT` cannot be told from the next one: answered AR, then the
    connection is closed (the engine reconnects and sends the next message).
    """
    try:
        data = await reader.readuntil(END_BLOCK)
    except asyncio.IncompleteReadError:
        return None, False
    except asyncio.LimitOverrunError:
        limit = MESSAGE_LIMIT // 2**20
        return Received(b"", f"a block larger than {limit} MiB: not read, and the connection closed"), True
    start = data.find(START_BLOCK)
    if start < 0:
        return Received(b"", "not an MLLP block: the data before the end block has no start block"), False
    return Received(data[start + 1 : -len(END_BLOCK)]), False


def _tls(options: ListenOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        if options.tls_client_ca is not None:
            raise ValueError("a client CA (--tls-client-ca) needs TLS: --tls-cert and --tls-key")
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.tls_cert, options.tls_key)
    if options.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(options.tls_client_ca))
    return context


def _durable_commits(store: Store) -> None:
    """On SQLite, every commit of the listener's connections synced to disk (``synchronous=FULL``) before
    it is acknowledged: the store's default (NORMAL, in WAL mode) keeps a commit through a crash of the
    process, not through a power cut or a crash of the machine, and an acknowledged message is not sent
    again. PostgreSQL syncs every commit already (``synchronous_commit`` on, its default)."""
    engine = store.kw["bind"]
    if engine.dialect.name != "sqlite":
        return

    def full(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    event.listen(engine, "connect", full)
    engine.dispose()  # connections opened before (the store's first check) reopen with it


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
