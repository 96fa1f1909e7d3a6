"""The live feed's status process: ``python -m services.status_worker``, started and ended by the listener
(``services.listener``), never by hand.

It recomputes, in passes, the status of the patients the listener's groups marked (``services.feed.
catch_up``), in a Python process of its own: a pass is pandas work of half a second and more, which in the
listener's process would hold the interpreter while groups wait. A fresh interpreter (not a fork, nor
multiprocessing's spawn, which runs the parent's main script again) that holds its own connection.

Its standard input is the listener's side: the first line is JSON with the store's URL and the site's zone
(kept out of the command line, where any user of the host could read a password in it), then one byte a
message: ``w`` a group committed (there may be statuses to recompute), ``s`` stop (recompute every status
still waiting, then exit). The end of its input means the listener is gone (killed): it exits at once, a
pass under way committing or not (what it had not done stays marked for the next listener). Ctrl-C and
SIGTERM are the listener's to handle.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from db.histories import Histories
from services.config import Config
from services.feed import catch_up
from services.store import Store, open_store

_log = logging.getLogger("monitor.listener")
# The least time between the starts of two passes, and the most of the time between them a pass takes (a
# third: under a burst, statuses come a pass behind while the acknowledgements keep their pace:
# docs/benchmarks.md, the live feed).
PAUSE_SECONDS = 1.0
SHARE = 1 / 3
# The process's niceness: where the processors are all busy, the acknowledgements and the dashboard's
# reads go first and the statuses fall behind (they catch up when the burst ends).
NICENESS = 10


def recompute_statuses(
    store: Store,
    timezone: str,
    wake: threading.Event,
    stop: threading.Event,
    gone: Callable[[], bool] = lambda: False,
) -> None:
    """Passes while woken, one starting at least `PAUSE_SECONDS` after the one before and taking at most
    `SHARE` of the time, until ``stop`` (then until none is left waiting, without pause) or ``gone``. The
    patients' histories are kept between passes, each status extended with the panels the feed added
    (``db.histories``)."""
    histories = Histories()
    while True:
        woken = wake.wait(timeout=1.0)
        if gone():
            return
        if not woken and not stop.is_set():
            continue
        wake.clear()
        final = stop.is_set()
        while not gone():
            started = time.monotonic()
            try:
                extended, whole = histories.extended, histories.whole
                done = catch_up(store, timezone=timezone, histories=histories)
            except Exception as error:  # noqa: BLE001 - the store unreachable: tried again on the next pass
                _log.warning("status pass failed (tried again later): %s", type(error).__name__)
                if final:
                    time.sleep(PAUSE_SECONDS)
                    continue
                break
            if not done:
                break
            took = time.monotonic() - started
            _log.info(
                "status recomputed for %d patients (%.0f ms; %d extended, %d read whole; "
                "%d rows kept, %.0f MB)",
                done,
                took * 1000,
                histories.extended - extended,
                histories.whole - whole,
                histories.rows(),
                histories.megabytes(),
            )
            if not final:
                time.sleep(max(PAUSE_SECONDS, took / SHARE) - took)
        if final:
            return


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICENESS)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The pipe read with os.read, never through sys.stdin's buffer: a thread blocked in a buffered read
    # makes the interpreter's exit fail ("could not acquire lock ... at interpreter shutdown").
    pipe = sys.stdin.fileno()
    first, rest = _line(pipe)
    given = json.loads(first)
    store = open_store(Config(database_url=given["url"], timezone=given["timezone"]))
    wake, stop, ended = threading.Event(), threading.Event(), threading.Event()

    def listen() -> None:
        data = rest
        while True:
            if b"s" in data:
                stop.set()
            if data:
                wake.set()
            data = os.read(pipe, 64)
            if not data:
                break
        ended.set()
        wake.set()

    threading.Thread(target=listen, name="listener-side", daemon=True).start()
    recompute_statuses(
        store, given["timezone"], wake, stop, gone=lambda: ended.is_set() and not stop.is_set()
    )


def _line(pipe: int) -> tuple[bytes, bytes]:
    """The first line read from ``pipe``, and what came after it in the same reads."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(pipe, 4096)
        if not chunk:
            raise SystemExit("the listener closed the pipe before saying which store")
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


if __name__ == "__main__":
    main()
