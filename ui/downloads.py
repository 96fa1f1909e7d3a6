"""The one way a page offers a table as CSV: spreadsheet-safe, and recorded in the audit trail when the file
is made.

Streamlit's own table toolbar download is switched off (``client.disableDataExport``,
.streamlit/config.toml), so these buttons are the only exports.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.state import SafeSessionState

from monitor.exports import spreadsheet_safe
from services.accounts import IDLE_MINUTES, Viewer
from services.audit import record_export
from ui import data

# The session-state keys ui.identity keeps the signed-in Viewer and its last activity under.
_VIEWER, _LAST_ACTIVE = "viewer", "viewer_last_active"


class SignedOut(PermissionError):
    """A download asked for by a session that is no longer signed in as the viewer it was offered to."""


def audited_csv_download(
    label: str,
    frame: pd.DataFrame,
    *,
    file_name: str,
    viewer: Viewer,
    what: str,
    patient_key: int | None = None,
) -> None:
    """A download button for ``frame`` as CSV (cells neutralised for spreadsheets).

    The CSV is made only when the button is clicked, not on every rerun of the page, and the export is
    audited right then, by whatever asks for the file (the button, or a request sent without it).
    """
    st.download_button(
        label,
        csv_export(frame, viewer=viewer, what=what, patient_key=patient_key, session=_session()),
        file_name=_safe_file_name(file_name),
        mime="text/csv",
        # No rerun on a click: the audit row is written as the file is made, and a rerun racing the request
        # for the file would replace the button, and the file's callable, before the file is made.
        on_click="ignore",
    )


def csv_export(
    frame: pd.DataFrame,
    *,
    viewer: Viewer,
    what: str,
    patient_key: int | None,
    session: SafeSessionState | None,
) -> Callable[[], bytes]:
    """What Streamlit calls to make the file (off the page's script, in a server thread): it refuses
    a session no longer signed in as ``viewer``, records the export, then writes the CSV."""

    def export() -> bytes:
        if not _still_signed_in(session, viewer):
            raise SignedOut("signed out: nothing exported")
        record_export(data.store(), viewer=viewer, what=what, patient_key=patient_key, now=datetime.now(UTC))
        return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8")

    return export


def _still_signed_in(session: SafeSessionState | None, viewer: Viewer) -> bool:
    """Whether the session the button was drawn for still holds ``viewer``: not signed out, nobody else
    signed in since, and not idle for longer than a page would allow (ui.identity signs such a session out
    at its next rerun; a file asked for without one must not outlive that)."""
    if session is None or _VIEWER not in session or session[_VIEWER] != viewer:
        return False
    last = session[_LAST_ACTIVE] if _LAST_ACTIVE in session else None
    return last is not None and time.monotonic() - last <= IDLE_MINUTES * 60


def _session() -> SafeSessionState | None:
    """This browser session's state, held by the export: Streamlit makes the file in a server thread where
    ``st.session_state`` (which looks up the running script) does not name the session."""
    context = get_script_run_ctx()
    return None if context is None else context.session_state


def _safe_file_name(name: str) -> str:
    """A file name of letters, digits, dots, dashes and underscores (an identifier from a feed can hold
    anything)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "export.csv"
