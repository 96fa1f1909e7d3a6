"""The one way a page offers a table as CSV: spreadsheet-safe, and recorded in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from monitor.exports import spreadsheet_safe
from services.accounts import Viewer
from services.audit import record_export
from ui import data


def audited_csv_download(
    label: str,
    frame: pd.DataFrame,
    *,
    file_name: str,
    viewer: Viewer,
    what: str,
    patient_key: int | None = None,
) -> None:
    """A download button for ``frame`` as CSV (cells neutralised for spreadsheets); a click is audited.

    The CSV is written only when the button is clicked, not on every rerun of the page.
    """
    st.download_button(
        label,
        lambda: spreadsheet_safe(frame).to_csv(index=False),
        file_name=file_name,
        mime="text/csv",
        on_click=_record_download,
        args=(viewer, what, patient_key),
    )


def _record_download(viewer: Viewer, what: str, patient_key: int | None) -> None:
    """The download button's on_click: the export in the audit trail."""
    record_export(data.store(), viewer=viewer, what=what, patient_key=patient_key, now=datetime.now(UTC))
