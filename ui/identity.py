"""Who is using the dashboard, for the audit trail and the records people make."""

from __future__ import annotations

import os

import streamlit as st

# Until sign-in exists, actions are recorded under this name (or MONITOR_USER when set).
UNSIGNED = "local user"


def current_user() -> str:
    """The signed-in user (Streamlit login, when configured), else ``MONITOR_USER``, else "local user"."""
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name") or UNSIGNED)
    except (AttributeError, KeyError, RuntimeError):  # no login configured
        pass
    return os.environ.get("MONITOR_USER", UNSIGNED)
