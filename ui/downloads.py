"""The one way a page offers a file: a table as CSV (spreadsheet-safe) or a printed report as PDF, recorded
in the audit trail when the file is made.

Streamlit's own table toolbar download is switched off (``client.disableDataExport``,
.streamlit/config.toml), so these buttons are the only exports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from monitor.exports import spreadsheet_safe
from services import reports
from services.accounts import Viewer, account_now
from services.audit import record_export, record_exports
from ui import data, identity


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
        csv_export(frame, viewer=viewer, what=what, patient_key=patient_key, check=identity.session_check()),
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
    check: Callable[[], bool],
) -> Callable[[], bytes]:
    """What Streamlit calls to make the file (off the page's script, in a server thread): it refuses once
    ``check`` (``ui.identity.session_check``, made while the page ran) says the session has ended or been
    idle too long, else records the export and writes the CSV."""

    def export() -> bytes:
        if not check():
            raise SignedOut("signed out: nothing exported")
        record_export(data.store(), viewer=viewer, what=what, patient_key=patient_key, now=datetime.now(UTC))
        return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8")

    return export


def _safe_file_name(name: str) -> str:
    """A file name of letters, digits, dots, dashes and underscores (an identifier from a feed can hold
    anything)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "export.csv"


def audited_pdf_download(
    label: str,
    make: Callable[[Viewer], reports.Report],
    *,
    file_name: str,
    viewer: Viewer,
    what: str,
    patient_key: int | None = None,
) -> None:
    """A download button for a printed report: ``make`` lays the PDF out only when the button is clicked
    (a summary takes a second or two), as the account stands then (its teams re-read: a user taken out of
    a team since the page was drawn prints none of its patients), and the export is audited then, for the
    patient or for every patient the report lists. Where this machine cannot print, says why instead."""
    problem = reports.printing_problem()
    if problem is not None:
        st.caption(f"{label}: {problem}")
        return
    check = identity.session_check()

    def export() -> bytes:
        if not check():
            raise SignedOut("signed out: nothing printed")
        current = account_now(data.store(), username=viewer.username)
        if current is None:
            raise SignedOut("this account can no longer sign in: nothing printed")
        made = make(current)
        now = datetime.now(UTC)
        if patient_key is not None:
            record_export(data.store(), viewer=current, what=what, patient_key=patient_key, now=now)
        else:
            record_exports(data.store(), viewer=current, what=what, patient_keys=made.patient_keys, now=now)
        return made.pdf

    st.download_button(
        label,
        export,
        file_name=_safe_file_name(file_name),
        mime="application/pdf",
        on_click="ignore",
    )
