"""The whole cohort's status computed in worker processes beside the one that writes it.

A recompute of every patient (the command line's, after new rules) spends its time reading each pass of
patients' histories and analysing them (pandas, mostly one core); the rows it writes are one a patient. So
the passes are computed by worker processes, each reading the store through a connection of its own, while
this process writes the finished ones in its transaction, in the order of the passes. The workers see the
store as committed: only a transaction that has written nothing the status depends on may use them (the
command line's recompute opens one for this alone). Spawned, not forked: a forked child would inherit this
process's open database connections (SQLite's "How To Corrupt An SQLite Database File", section 2.6).

SQLite stores only: at 8,000,000 results on two cores the recompute took 27.7 s with two workers against
37.5 s in one process, but on PostgreSQL 48.9 s against 35.5 s, its server on the same two cores reading
every pass for the workers (docs/benchmarks.md, 2026-12-04, night).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import types
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from db.status import (
    PANELS_PER_PASS,
    computed_status,
    passes,
    refresh_patient_status,
    store_status,
    stored_panels,
)

# Workers at most, whatever the cores: each holds its passes' histories and its own libraries (about
# 200 MB before any pass).
MOST_WORKERS = 4

# Panels below which the status is computed in this process: starting a worker costs a second or two of
# imports, which two passes of work repay (on two cores, the recompute of 1,000,000 results, 200,000
# panels, took 5.8-6.2 s in this process and 6.0-6.1 s with two workers).
BESIDE_FROM_PANELS = 2 * PANELS_PER_PASS

_SESSIONS: sessionmaker[Session] | None = None


def status_workers() -> int:
    """Workers for a recompute on this host: one a core this process may use (`usable_cores`), at most
    ``MOST_WORKERS``; 1 (no worker: computed in this process) on a single core."""
    cores = usable_cores()
    return min(cores, MOST_WORKERS) if cores > 1 else 1


def beside_allowed(session: Session) -> bool:
    """Whether workers may compute this session's store: a SQLite file, which other processes can open
    (PostgreSQL recomputes in one process: see above)."""
    url = session.get_bind().url
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    in_memory = (
        database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
    )
    return not in_memory and url.query.get("mode") != "memory"


def refresh_beside(
    session: Session, patient_keys: list[int], *, now: datetime, timezone: str, workers: int
) -> None:
    """Recompute and replace the status of ``patient_keys``, their passes computed by ``workers``
    processes and written here as each finishes (`db.status.refresh_patient_status` does the same in
    one process)."""
    panels = stored_panels(session, patient_keys)
    total = int(panels.sum())
    if total < BESIDE_FROM_PANELS:
        refresh_patient_status(session, patient_keys, now=now, timezone=timezone)
        return
    # Passes of a share of PANELS_PER_PASS, so that the workers together hold less than one process would
    # (at 8,000,000 results on two cores: 312 MB here and at most 470 MB a worker, against 845 MB in one
    # process; passes of twice the size were 10 % faster, the workers peaking at 651 MB); and twice as many
    # passes as workers at least, so that one finishing early takes another.
    per_pass = min(PANELS_PER_PASS // (2 * workers), -(-total // (2 * workers)))
    parts = passes(session, patient_keys, per_pass=max(per_pass, 1), panels=panels)
    url = session.get_bind().url.render_as_string(hide_password=False)
    workers = min(workers, len(parts))
    with _no_main_module():  # a worker may start at any submission
        _write_as_computed(session, parts, now=now, timezone=timezone, url=url, workers=workers)


def _write_as_computed(
    session: Session, parts: list[list[int]], *, now: datetime, timezone: str, url: str, workers: int
) -> None:
    """Each pass computed by a worker, written here in order."""
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(url,),
    )
    try:
        # At most two passes a worker ahead of the writing: finished rows never pile up here.
        ahead: deque[tuple[list[int], Future[pd.DataFrame]]] = deque()
        queued = iter(parts)
        for part in islice(queued, 2 * workers):
            ahead.append((part, pool.submit(_computed, part, now, timezone)))
        while ahead:
            part, computing = ahead.popleft()
            rows = computing.result()
            for following in islice(queued, 1):
                ahead.append((following, pool.submit(_computed, following, now, timezone)))
            store_status(session, part, rows, now=now, timezone=timezone)
    except BaseException:
        # A worker's error, this process's (a write refused) or an interruption: the passes not yet begun
        # are dropped and the workers not waited for; the caller's transaction rolls back.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextmanager
def _no_main_module() -> Iterator[None]:
    """While workers may start: a bare ``__main__`` module in this process, so that a spawned worker runs no
    main script of this process's before it takes its work. (A worker re-runs a main script it is told
    of: harmless for ``python -m monitor``, whose main module is guarded, but a host whose ``__main__``
    is some other script, a test runner that ran the dashboard's page for one, would have it run again.)
    The workers need nothing from it: they compute with this module's functions."""
    held = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if held is not None:
            sys.modules["__main__"] = held


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, within the container's CPU quota (cgroup v2
    ``cpu.max``) where there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _start(url: str) -> None:
    global _SESSIONS
    engine = make_engine(url)
    atexit.register(engine.dispose)  # its connection closed when the worker ends, not left to the server
    _SESSIONS = make_session_factory(engine)


def _computed(part: list[int], now: datetime, timezone: str) -> pd.DataFrame:
    assert _SESSIONS is not None, "a worker computes only after _start"
    with _SESSIONS() as session:  # read only: rolled back when it closes
        return computed_status(session, part, now=now, timezone=timezone)
