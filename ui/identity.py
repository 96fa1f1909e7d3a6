"""Who is using the dashboard: sign-in, the session's ``Viewer``, idle expiry and sign-out.

The account is read again on every run of the page (one small query), so that an account disabled, or
given another role or other teams, applies at once to a session already open. A session idle for
``IDLE_MINUTES`` is signed out by a timer in dashboard.py (`idle_watch`), and anything that hands data
over after the page was drawn (a download, a recorded action) asks `still_signed_in` first, or, where it
runs outside the page's run (a download's deferred data), calls a `session_check` made while the page ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from services.accounts import (
    DEMO_ACCOUNTS,
    DEMO_PASSWORD,
    IDLE_MINUTES,
    Viewer,
    account_now,
    record_sign_out,
    sign_in,
    sign_in_with_identity,
)
from services.admin import NO_ADMIN_HINT, has_active_admin
from services.store import STORE_ERRORS
from ui import data

_LOG = logging.getLogger("monitor.dashboard")
# The product's name (README's title), on the browser tab and the sign-in page.
PRODUCT = "Leukopenia monitor"
PRODUCT_LINE = (
    f"**{PRODUCT}**: white-cell counts (CBC) followed over weeks and months for care teams and oncology "
    "units. Decision support, not a diagnosis."
)
STORE_UNAVAILABLE = "The store is unavailable, so sign-in cannot be checked now: try again in a moment."

_VIEWER = "viewer"
_LAST_ACTIVE = "viewer_last_active"
_SESSION = "viewer_session"
_CHECKED = "viewer_checked"  # when the account was last read (time.monotonic())
_TIMER_RUN = "viewer_timer_run"  # the next run of the page is the idle timer's, not a click
# How often the idle timer looks at the clock: a session ends at most this long after its idle time.
IDLE_CHECK_SECONDS = 30


@dataclass(slots=True)
class _Session:
    """What a `session_check` holds on to: it is read outside the page's run, where session state is not."""

    username: str
    last_active: float
    ended: bool = False

    def valid(self) -> bool:
        return not self.ended and time.monotonic() - self.last_active <= IDLE_MINUTES * 60


def signed_in() -> Viewer | None:
    """The signed-in ``Viewer`` as the account stands now, or None (never signed in, signed out, idle for
    too long, or the account disabled since). A run of the page is activity: it restarts the idle time."""
    viewer = st.session_state.get(_VIEWER)
    if viewer is None and _single_sign_on() and st.user.is_logged_in:
        viewer = _viewer_from_identity_provider()
    if viewer is None:
        return None
    if _idle():
        sign_out(reason="idle")
        st.session_state["sign_in_notice"] = f"Signed out after {IDLE_MINUTES} minutes without activity."
        return None
    now = account_now(data.store(), username=viewer.username)
    if now is None:
        sign_out(reason="account disabled")
        st.session_state["sign_in_notice"] = "Signed out: this account can no longer sign in."
        return None
    _start(now, active=not st.session_state.pop(_TIMER_RUN, False))
    return now


def still_signed_in() -> bool:
    """Whether the session is still signed in and not idle for too long (the time is not restarted): asked
    by anything that hands data over or records an action, in the page or in a widget's callback."""
    return st.session_state.get(_VIEWER) is not None and not _idle()


def session_check() -> Callable[[], bool]:
    """A check of this session that can be called later, outside the page's run (where session state
    cannot be read), e.g. by a download button's deferred data: False once the session was signed out or
    has been idle for too long."""
    held = st.session_state.get(_SESSION)
    if held is None or st.session_state.get(_VIEWER) is None:
        return lambda: False
    return held.valid


def idle_watch() -> None:
    """The idle timer's body (dashboard.py runs it every ``IDLE_CHECK_SECONDS`` as a fragment): once the
    session has been idle for too long, or its account was disabled or changed, the whole app runs again,
    which signs out (or applies the change). Its own runs are not activity: they leave the idle time as
    it is."""
    viewer = st.session_state.get(_VIEWER)
    if viewer is None:
        return
    if _idle():
        st.session_state[_TIMER_RUN] = True
        st.rerun(scope="app")
    # The account is read again only when no run of the page has just done so (one query, not two, a run).
    if time.monotonic() - st.session_state.get(_CHECKED, 0.0) >= IDLE_CHECK_SECONDS / 2:
        st.session_state[_CHECKED] = time.monotonic()
        if account_now(data.store(), username=viewer.username) != viewer:
            st.session_state[_TIMER_RUN] = True  # the run it asks for is not the user's activity
            st.rerun(scope="app")


def current_viewer() -> Viewer:
    """The signed-in ``Viewer`` (pages run only after dashboard.py has checked there is one)."""
    viewer = st.session_state.get(_VIEWER)
    if viewer is None:  # a page run without the entry point: refuse rather than show anything
        st.error("Please sign in.")
        st.stop()
    return viewer


def current_user() -> str:
    return current_viewer().username


def sign_out(reason: str = "signed out") -> None:
    """End the session (audited with ``reason``: 'signed out', 'idle', 'account disabled')."""
    viewer = st.session_state.pop(_VIEWER, None)
    held = st.session_state.pop(_SESSION, None)
    st.session_state.pop(_LAST_ACTIVE, None)
    st.session_state.pop(_CHECKED, None)
    st.session_state.pop(_TIMER_RUN, None)
    for drawn in ("acknowledge_drawn", "acknowledge_said"):  # the patient page's (app_pages/patient.py)
        st.session_state.pop(drawn, None)
    if held is not None:
        held.ended = True
    if viewer is not None:
        record_sign_out(data.store(), username=viewer.username, reason=reason, now=datetime.now(UTC))
    if _single_sign_on() and st.user.is_logged_in:
        st.logout()


def _idle() -> bool:
    last = st.session_state.get(_LAST_ACTIVE)
    return last is not None and time.monotonic() - last > IDLE_MINUTES * 60


def _start(viewer: Viewer, *, active: bool = True) -> None:
    """Hold ``viewer`` as the session's (its account just read); ``active``: the user did something now
    (the idle time starts again)."""
    now = time.monotonic()
    st.session_state[_VIEWER] = viewer
    st.session_state[_CHECKED] = now
    if active or _LAST_ACTIVE not in st.session_state:
        st.session_state[_LAST_ACTIVE] = now
    last = st.session_state[_LAST_ACTIVE]
    held = st.session_state.get(_SESSION)
    if held is None or held.username != viewer.username or held.ended:
        st.session_state[_SESSION] = _Session(viewer.username, last)
    else:
        held.last_active = last


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
    _start(viewer)
    return viewer


def _client_address() -> str | None:
    """The address the browser connects from, as Streamlit sees it (None on localhost, or when unknown)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no address is a client like any other without one
        return None
    return address if isinstance(address, str) and address else None


def sign_in_page() -> None:
    """The sign-in form; nothing else renders until it succeeds."""
    st.title("Sign in")
    st.markdown(PRODUCT_LINE)
    notice = st.session_state.pop("sign_in_notice", None)
    if notice:
        st.info(notice)
    with st.form("sign_in_form"):
        username = st.text_input("Username", key="sign_in_username", autocomplete="username")
        password = st.text_input(
            "Password", type="password", key="sign_in_password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            outcome = sign_in(
                data.store(),
                username=username,
                password=password,
                now=datetime.now(UTC),
                client=_client_address(),
            )
        except STORE_ERRORS as error:  # the words a visitor sees; the cause is for the server's log
            _LOG.error("sign-in could not use the store: %s", type(error).__name__)
            outcome = STORE_UNAVAILABLE
        if isinstance(outcome, Viewer):
            _start(outcome)
            st.rerun()
        st.error(outcome)
    if _single_sign_on() and st.button("Sign in with single sign-on", key="sign_in_sso"):
        st.login()
    try:
        if not has_active_admin(data.store()):
            st.info(f"This dashboard has {NO_ADMIN_HINT}.")
    except STORE_ERRORS:
        st.error(STORE_UNAVAILABLE)
        return
    if data.synthetic_present():
        names = ", ".join(f"`{name}` ({', '.join((role, *teams))})" for name, _, role, teams in DEMO_ACCOUNTS)
        st.caption(
            f"Demo accounts while the synthetic cohort is present: {names}; password `{DEMO_PASSWORD}`."
        )
