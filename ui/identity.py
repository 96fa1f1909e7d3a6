"""Who is using the dashboard: sign-in, the session's ``Viewer``, idle expiry and sign-out."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import streamlit as st

from services.accounts import (
    DEMO_ACCOUNTS,
    DEMO_PASSWORD,
    IDLE_MINUTES,
    Viewer,
    sign_in,
    sign_in_with_identity,
)
from ui import data

_VIEWER = "viewer"
_LAST_ACTIVE = "viewer_last_active"


def signed_in() -> Viewer | None:
    """The signed-in ``Viewer``, or None (never signed in, signed out, or idle for too long)."""
    viewer = st.session_state.get(_VIEWER)
    if viewer is None and _single_sign_on() and st.user.is_logged_in:
        viewer = _viewer_from_identity_provider()
    if viewer is None:
        return None
    last = st.session_state.get(_LAST_ACTIVE, time.monotonic())
    if time.monotonic() - last > IDLE_MINUTES * 60:
        sign_out()
        st.session_state["sign_in_notice"] = f"Signed out after {IDLE_MINUTES} minutes without activity."
        return None
    st.session_state[_LAST_ACTIVE] = time.monotonic()
    return viewer


def current_viewer() -> Viewer:
    """The signed-in ``Viewer`` (pages run only after dashboard.py has checked there is one)."""
    viewer = st.session_state.get(_VIEWER)
    if viewer is None:  # a page run without the entry point: refuse rather than show anything
        st.error("Please sign in.")
        st.stop()
    return viewer


def current_user() -> str:
    return current_viewer().username


def sign_out() -> None:
    for key in (_VIEWER, _LAST_ACTIVE):
        st.session_state.pop(key, None)
    if _single_sign_on() and st.user.is_logged_in:
        st.logout()


def _single_sign_on() -> bool:
    """Whether an OpenID Connect provider is configured in .streamlit/secrets.toml ([auth] section)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


def _viewer_from_identity_provider() -> Viewer | None:
    """The account whose username is the signed-in person's e-mail (as the provider asserts it).

    Single sign-on proves who someone is; what they may see still comes from their account here (role and
    teams): a person without an active account is refused, and the refusal audited.
    """
    email = str(st.user.get("email") or "")
    viewer = sign_in_with_identity(data.store(), username=email, now=datetime.now(UTC))
    if isinstance(viewer, str):
        st.session_state["sign_in_notice"] = viewer
        st.logout()
        return None
    st.session_state[_VIEWER] = viewer
    st.session_state[_LAST_ACTIVE] = time.monotonic()
    return viewer


def sign_in_page() -> None:
    """The sign-in form; nothing else renders until it succeeds."""
    st.title("Sign in")
    notice = st.session_state.pop("sign_in_notice", None)
    if notice:
        st.info(notice)
    with st.form("sign_in_form"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        outcome = sign_in(data.store(), username=username, password=password, now=datetime.now(UTC))
        if isinstance(outcome, Viewer):
            st.session_state[_VIEWER] = outcome
            st.session_state[_LAST_ACTIVE] = time.monotonic()
            st.rerun()
        st.error(outcome)
    if _single_sign_on() and st.button("Sign in with single sign-on", key="sign_in_sso"):
        st.login()
    if data.synthetic_present():
        names = ", ".join(
            f"`{name}` ({role}{', ' + teams[0] if teams else ''})" for name, _, role, teams in DEMO_ACCOUNTS
        )
        st.caption(
            f"Demo accounts while the synthetic cohort is present: {names}; password `{DEMO_PASSWORD}`."
        )
