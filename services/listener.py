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
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hl7.mllp
from sqlalchemy.exc import SQLAlchemyError

from db.feed import listener_seen, listener_stopped
from services.feed import HEARTBEAT_SECONDS, Answer, FeedOptions, FeedWriter, Received, catch_up
from services.store import Store

_log = logging.getLogger("monitor.listener")
# The largest message taken: a CBC message is a few kilobytes; a block larger than this is refused (AR) and
# skipped rather than held in memory.
MESSAGE_LIMIT = 4 * 2**20
# Messages written in one transaction at most (the rest wait for the next group).
MOST_IN_GROUP = 500
# The least time between the starts of two status passes, and what a pass may take of it.
STATUS_PAUSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """Where and how to listen.

    ``tls_cert``/``tls_key``: serve MLLP over TLS with this certificate chain and key (PEM), for a link that
    leaves the host; without them the listener takes plain TCP (bind it to loopback, or put stunnel or the
    engine's own TLS in front: docs/deployment.md).
    """

    host: str = "127.0.0.1"
    port: int = 2575
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Listener:
    """One listener: its server, its writer and status threads, and its clean stop (`stop`)."""

    def __init__(self, store: Store, feed: FeedOptions, options: ListenOptions) -> None:
        self.store = store
        self.options = options
        self.started_at = datetime.now(UTC)
        self.writer = FeedWriter(store, feed, started_at=self.started_at)
        self.site_timezone = feed.site_timezone
        self._queue: asyncio.Queue[tuple[Received, asyncio.Future[Answer]]] = asyncio.Queue()
        self._writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-writer")
        self._stopping = asyncio.Event()
        self._written = threading.Event()  # a group committed: there may be statuses to recompute
        self._status_done = threading.Event()
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = options.port

    def stop(self) -> None:
        """Stop taking messages; those received are still written and answered."""
        self._stopping.set()

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        """Listen until `stop` (or SIGTERM/SIGINT when run by `run`); ``ready`` is called with the port once
        connections are accepted."""
        self.writer.check_teams()
        context = _tls(self.options)
        server = await hl7.mllp.start_hl7_server(
            self._connection, self.options.host, self.options.port, limit=MESSAGE_LIMIT, ssl=context
        )
        self.port = server.sockets[0].getsockname()[1]
        self._seen()
        status = threading.Thread(target=self._statuses, name="feed-status", daemon=True)
        status.start()
        writing = asyncio.create_task(self._write_groups())
        heartbeat = asyncio.create_task(self._heartbeat())
        _log.info(
            "listening on %s:%s (%s)", self.options.host, self.port, "MLLP over TLS" if context else "MLLP"
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
            self._status_done.set()
            self._written.set()
            status.join(timeout=30)
            self._writing.shutdown(wait=True)
            self._stopped()
            _log.info("stopped")

    async def _connection(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        """One sender: a message at a time, each answered once stored."""
        loop = asyncio.get_running_loop()
        self._connections.add(writer)
        peer = writer.get_extra_info("peername")
        _log.info("connection from %s", _peer(peer))
        try:
            while not self._stopping.is_set():
                try:
                    block = await reader.readblock()
                    received = Received(block)
                except asyncio.IncompleteReadError:
                    break  # the sender closed the connection
                except hl7.mllp.InvalidBlockError:
                    received = Received(
                        b"", "not an MLLP block: the data before the end block has no start block"
                    )
                except ValueError:
                    received = Received(b"", f"a block larger than {MESSAGE_LIMIT // 2**20} MiB: not read")
                if self._stopping.is_set():
                    break  # not answered: the engine sends it again to the next listener
                answered: asyncio.Future[Answer] = loop.create_future()
                self._queue.put_nowait((received, answered))
                answer = await answered
                writer.writeblock(answer.ack.encode("utf-8"))
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as error:
            _log.info("connection from %s lost: %s", _peer(peer), type(error).__name__)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _write_groups(self) -> None:
        """Write whatever has arrived as one group, as soon as the previous group has committed."""
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            group = [first]
            while len(group) < MOST_IN_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            started = time.perf_counter()
            answers = await loop.run_in_executor(
                self._writing, self.writer.write, [item for item, _ in group]
            )
            took = (time.perf_counter() - started) * 1000
            for (_, answered), answer in zip(group, answers, strict=True):
                _log.info(
                    "message %s: %s%s, %d results, %d refused (group of %d, %.0f ms)",
                    answer.control_id or "(no control ID)",
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
            if any(answer.code != "AR" or answer.again for answer in answers):
                self._written.set()

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await loop.run_in_executor(None, self._seen)

    def _statuses(self) -> None:
        """Recompute the status of patients the feed touched, a pass at a time, until stopped; then until
        none is left waiting."""
        while True:
            self._written.wait(timeout=HEARTBEAT_SECONDS)
            self._written.clear()
            final = self._status_done.is_set()
            while True:
                started = time.monotonic()
                try:
                    done = catch_up(self.store, timezone=self.site_timezone)
                except SQLAlchemyError as error:
                    _log.warning("status pass failed (tried again later): %s", type(error).__name__)
                    break
                if not done:
                    break
                took = time.monotonic() - started
                _log.info("status recomputed for %d patients (%.0f ms)", done, took * 1000)
                if not final:
                    # At least STATUS_PAUSE_SECONDS from one pass's start to the next: the writer keeps most
                    # of the machine while messages keep coming.
                    time.sleep(max(0.0, STATUS_PAUSE_SECONDS - took))
            if final:
                return

    def _seen(self) -> None:
        try:
            with self.store.begin() as session:
                listener_seen(
                    session,
                    self.options.address,
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
                listener_stopped(session, self.options.address, now=datetime.now(UTC))
        except SQLAlchemyError as error:
            _log.warning("could not record the listener's stop: %s", type(error).__name__)


def run(store: Store, feed: FeedOptions, options: ListenOptions) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly (the command's body)."""

    async def main() -> None:
        listener = Listener(store, feed, options)
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, listener.stop)
        await listener.serve()

    asyncio.run(main())


def _tls(options: ListenOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.tls_cert, options.tls_key)
    return context


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
