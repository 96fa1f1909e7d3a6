"""Leukopenia monitor: the Streamlit entry point (run with `streamlit run dashboard.py`)."""

from __future__ import annotations

import logging

import streamlit as st

from services.config import ConfigError
from services.store import STORE_ERRORS, StoreUnusable
from ui import data, identity
from ui.text import plain

st.set_page_config(page_title=identity.PRODUCT, page_icon="🩸", layout="wide")

_LOG = logging.getLogger("monitor.dashboard")

try:
    data.config()  # the site's configuration, built once per process: a setting that cannot be used is named
    data.store()
except ConfigError as error:  # names the environment variable and the fix, never a value of the store's URL
    st.error(f"The dashboard cannot start: {error}", icon=":material/settings:")
    st.stop()
except StoreUnusable as error:  # an empty or damaged file, a schema newer than the code: what to do
    st.error(
        f"The dashboard cannot start: its store cannot be used: {error.problem}.",
        icon=":material/database_off:",
    )
    st.stop()
except Exception as error:  # noqa: BLE001 - the page must say what is wrong, not show a traceback
    # The cause (a host, a port, a path) is for the server's administrator, not for whoever opened the page.
    # The driver's first line only: no SQL, no parameters, no DETAIL line that could quote a record.
    cause = getattr(error, "orig", None) or error
    first_line = (str(cause).strip().splitlines() or [""])[0][:300]
    _LOG.error("the dashboard cannot start: %s: %s", type(cause).__name__, first_line)
    st.error(
        "The dashboard cannot start: its store cannot be reached or opened. The server's log names the "
        "cause; reload the page to try again.",
        icon=":material/cloud_off:",
    )
    st.stop()


def _store_unavailable(error: Exception) -> None:
    """The store went away (network, server restart, disk): say so plainly, and show nothing stale."""
    data.refresh()
    st.error(
        "The patient store cannot be used just now, so nothing is shown rather than something stale "
        f"({type(getattr(error, 'orig', None) or error).__name__}). Reload the page to try again.",
        icon=":material/cloud_off:",
    )


try:
    viewer = identity.signed_in()  # the account as it stands now: one small query
except STORE_ERRORS as error:
    _store_unavailable(error)
    st.stop()
if viewer is None:
    identity.sign_in_page()
    st.stop()


@st.fragment(run_every=identity.IDLE_CHECK_SECONDS)
def _idle_timer() -> None:
    """Signs an idle session out while its page stays open (its runs are not activity)."""
    identity.idle_watch()


_idle_timer()

if "patient_key" not in st.session_state:
    st.session_state["patient_key"] = None

if data.synthetic_present():
    st.warning(
        "**Synthetic demo data.** The patients shown here are simulated for demonstration; "
        "none is a real person.",
        icon=":material/science:",
    )

with st.sidebar:
    st.markdown(f"Signed in as **{plain(viewer.username)}** ({viewer.role})")
    if st.button("Sign out", key="sign_out"):
        identity.sign_out()
        st.rerun()
    st.caption(
        "Decision support, not a diagnosis: each count is judged against the lower limit that applies to "
        "it (a patient-specific range, else the one its lab reported, else a documented default). "
        "Check results in the laboratory system before acting on them."
    )

pages = [
    st.Page("app_pages/patients.py", title="Worklist", icon=":material/groups:", default=True),
    st.Page("app_pages/patient.py", title="Patient timeline", icon=":material/show_chart:"),
    st.Page("app_pages/cycles.py", title="Treatment cycles", icon=":material/autorenew:"),
]
if viewer.may("administer"):  # the other pages are not even served to other roles
    pages += [
        st.Page("app_pages/imports.py", title="Import", icon=":material/upload_file:"),
        st.Page("app_pages/settings.py", title="Settings", icon=":material/tune:"),
        st.Page("app_pages/audit.py", title="Audit", icon=":material/policy:"),
    ]
try:
    st.navigation(pages).run()
except STORE_ERRORS as error:
    _store_unavailable(error)
