"""A second process that reads the pieces of a large file while the importing process writes the piece
before (``services.import_file.read_ahead``).

Reading a piece (parsing, checking what the store can keep, normalising) is pure Python and pandas;
writing it is mostly the database's own work. On two cores the two then take little more than the longer
of them instead of their sum (benchmarks/import_csv.py; docs/benchmarks.md).

The process is this module run as ``python -m services.piece_reader``: it imports only the pure domain,
never the entry point that started it, and holds no connection to the store. The importing process sends
one piece at a time (pickled on the process's standard input) and reads its answer before sending the next,
so that neither ever waits on the other's full pipe. An error while reading is sent back and raised in the
importing process as it would have been there; a process that dies is reported as such.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from monitor.formats.piece import PieceReading, ReadPiece

_ROOT = Path(__file__).resolve().parents[1]


class ReaderStopped(RuntimeError):
    """The second process ended before answering (killed, or out of memory)."""


class PieceReader:
    """The importing process's side: start the reader, hand it a piece, take the piece it read."""

    def __init__(self, read: PieceReading) -> None:
        self._read = read
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH", "")]))
        # Nothing of the product's own settings (the store's URL and its password among them): it needs none.
        settings = {name: value for name, value in os.environ.items() if not name.startswith("MONITOR_")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "services.piece_reader"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**settings, "PYTHONPATH": path},
        )
        self._waiting = False

    def send(self, text: str, before: int) -> None:
        """Hand over the next piece (the answer to the one before must have been taken)."""
        assert not self._waiting and self._process.stdin is not None
        try:
            pickle.dump((self._read, text, before), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except BrokenPipeError as error:
            raise self._stopped() from error
        self._waiting = True

    def receive(self) -> ReadPiece:
        """The piece last handed over, read; its reading's error raised here."""
        assert self._waiting and self._process.stdout is not None
        self._waiting = False
        try:
            kind, answer = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError) as error:
            raise self._stopped() from error
        if kind == "error":
            raise answer
        read: ReadPiece = answer
        return read

    def close(self) -> None:
        """End the process: at once when a piece is still being read (the import stopped early)."""
        if self._waiting:
            self._process.kill()
        for stream in (self._process.stdin, self._process.stdout):
            try:
                if stream is not None:
                    stream.close()  # the reader's end of file: it returns
            except OSError:
                pass  # it has gone already (its pipe broken)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _stopped(self) -> ReaderStopped:
        code = self._process.poll()
        return ReaderStopped(f"the process reading the file ahead stopped (exit status {code})")


def _answer(request: tuple[PieceReading, str, int]) -> tuple[str, Any]:
    read, text, before = request
    try:
        return "piece", read(text, before)
    except Exception as error:  # noqa: BLE001 - sent back whole, raised in the importing process
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - an error that cannot travel travels as its text
            return "error", RuntimeError(f"{type(error).__name__}: {error}")
        return "error", error


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Read pieces until the importing process closes the pipe."""
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(_answer(request), answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
