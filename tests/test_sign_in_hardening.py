"""Sign-in that parallel guesses cannot outrun and an attacker cannot turn against an account's owner, and
sessions that end when the account is disabled or left idle; on both stores where a store is involved."""

from __future__ import annotations

import json
import threading
import time
import types
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select

from cli import cli
from db.accounts import ACCOUNT_THROTTLE, CLIENT_THROTTLE, REFUSED, Viewer, create_user
from db.models import AuditLog, SignInThrottle
from db.session import make_session_factory
from db.store import open_store
from services import accounts
from tests.test_dashboard import _app, _clear_caches  # noqa: F401 - _clear_caches: an autouse fixture

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PASSWORD = "Ward 7 rounds!"
ATTACKER, OWNER = "203.0.113.9", "198.51.100.4"


def _user(store, username: str = "jsmith", role: str = "clinician", teams=("oncology",)) -> None:
    with store.begin() as session:
        create_user(session, username=username, role=role, teams=teams, password=PASSWORD, now=NOW)


def _failures(store, username: str, client: str) -> int:
    with store() as session:
        row = session.get(SignInThrottle, (username, client))
        return 0 if row is None else row.failures


def test_parallel_wrong_passwords_are_each_counted_and_the_throttle_then_holds(store) -> None:
    _user(store)
    start = threading.Barrier(32)
    outcomes: list[object] = []

    def guess() -> None:
        start.wait()
        outcomes.append(
            accounts.sign_in(store, username="jsmith", password="wrong guess", now=NOW, client=ATTACKER)
        )

    threads = [threading.Thread(target=guess) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [REFUSED] * 32
    assert _failures(store, "jsmith", ATTACKER) == 32 and _failures(store, "jsmith", "*") == 32
    # The right password from the attacker's address is refused now and a minute later.
    for later in (NOW, NOW + timedelta(minutes=1)):
        assert accounts.sign_in(store, username="jsmith", password=PASSWORD, now=later, client=ATTACKER) == (
            REFUSED
        )
    # Once the longest delay has passed since the last attempt, it is let through.
    after = NOW + timedelta(minutes=1, seconds=ACCOUNT_THROTTLE.cap + 1)
    signed = accounts.sign_in(store, username="jsmith", password=PASSWORD, now=after, client=ATTACKER)
    assert isinstance(signed, Viewer)


def test_no_one_can_keep_an_accounts_owner_out(store) -> None:
    _user(store, "admin", "admin", ())
    for second in range(30):  # beyond both throttles' free failures
        at = NOW + timedelta(seconds=second)
        assert accounts.sign_in(store, username="admin", password="guess", now=at, client=ATTACKER) == REFUSED
    assert _failures(store, "admin", "*") == 30
    # The owner, from an address without recent failures on the account, signs in at once...
    at = NOW + timedelta(seconds=30)
    assert isinstance(
        accounts.sign_in(store, username="admin", password=PASSWORD, now=at, client=OWNER), Viewer
    )
    # ... while the attacker's address is held back, even with the right password.
    assert accounts.sign_in(store, username="admin", password=PASSWORD, now=at, client=ATTACKER) == REFUSED


def test_delays_grow_after_the_free_failures_and_a_success_clears_them(store) -> None:
    _user(store)
    for _ in range(CLIENT_THROTTLE.free):
        assert accounts.sign_in(store, username="jsmith", password="typo", now=NOW) == REFUSED
    assert accounts.sign_in(store, username="jsmith", password=PASSWORD, now=NOW) == REFUSED
    # That refusal counted too: the next attempt waits twice the first delay after it.
    wait = CLIENT_THROTTLE.wait_after(CLIENT_THROTTLE.free + 1)
    assert wait == timedelta(seconds=2 * CLIENT_THROTTLE.first)
    assert accounts.sign_in(store, username="jsmith", password=PASSWORD, now=NOW + wait / 2) == REFUSED
    later = NOW + wait / 2 + CLIENT_THROTTLE.wait_after(CLIENT_THROTTLE.free + 2)
    assert isinstance(accounts.sign_in(store, username="jsmith", password=PASSWORD, now=later), Viewer)
    assert _failures(store, "jsmith", "") == 0  # forgotten: the next typo costs nothing
    assert accounts.sign_in(store, username="jsmith", password="typo", now=later) == REFUSED
    assert isinstance(accounts.sign_in(store, username="jsmith", password=PASSWORD, now=later), Viewer)


def test_every_refusal_reads_the_same_and_checks_one_password_hash(store, monkeypatch) -> None:
    _user(store)
    _user(store, "gone")
    _user(store, "held")
    accounts.disable_user(store, viewer=accounts.SYSTEM, username="gone", now=NOW)
    for _ in range(CLIENT_THROTTLE.free + 1):
        accounts.sign_in(store, username="held", password="typo", now=NOW)
    accounts.sign_in(store, username="nobody", password="warm-up", now=NOW)  # the dummy hash is made once
    checked: list[str] = []
    verify = PasswordHasher.verify

    def counted(self, hashed, password):
        checked.append(password)
        return verify(self, hashed, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    cases = {
        "wrong password": ("jsmith", "not the password"),
        "unknown user": ("nobody", PASSWORD),
        "account disabled": ("gone", PASSWORD),
        "throttled": ("held", PASSWORD),
    }
    for reason, (username, password) in cases.items():
        checked.clear()
        assert accounts.sign_in(store, username=username, password=password, now=NOW) == REFUSED, reason
        assert checked == [password], reason
    with store() as session:
        trail = session.scalars(select(AuditLog.details).where(AuditLog.action == "sign_in_failed")).all()
    reasons = [json.loads(details)["reason"] for details in trail[-4:]]
    assert reasons == list(cases)  # the trail keeps the cause the page does not say
    assert PASSWORD not in " ".join(trail)


def _run(store, *args: str, stdin: str = "") -> str:
    url = store.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, [*args, "--database", url], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_line_unlocks_sets_a_password_and_removes_a_team_each_audited(store, monkeypatch) -> None:
    _user(store, teams=("oncology", "haematology"))
    for _ in range(CLIENT_THROTTLE.free + 1):
        accounts.sign_in(store, username="jsmith", password="typo", now=NOW)
    assert accounts.sign_in(store, username="jsmith", password=PASSWORD, now=NOW) == REFUSED
    assert "7 recent failed sign-ins forgotten" in _run(store, "users", "unlock", "jsmith")
    assert isinstance(accounts.sign_in(store, username="jsmith", password=PASSWORD, now=NOW), Viewer)

    # A new password is asked for twice, hidden, and the policy applies.
    monkeypatch.setattr(
        "cli.admin.sys", types.SimpleNamespace(stdin=types.SimpleNamespace(isatty=lambda: True))
    )
    runner_url = store.kw["bind"].url.render_as_string(hide_password=False)
    refused = CliRunner().invoke(
        cli, ["users", "set-password", "jsmith", "--database", runner_url], input="short\nshort\n"
    )
    assert refused.exit_code != 0 and "at least 12" in refused.output
    new = "Night shift on 4B"
    changed = CliRunner().invoke(
        cli, ["users", "set-password", "jsmith", "--database", runner_url], input=f"{new}\n{new}\n"
    )
    assert changed.exit_code == 0 and "password changed" in changed.output and new not in changed.output
    assert changed.output.count("password") >= 2  # the prompt and its confirmation
    assert accounts.sign_in(store, username="jsmith", password=PASSWORD, now=NOW) == REFUSED
    assert isinstance(accounts.sign_in(store, username="jsmith", password=new, now=NOW), Viewer)

    before = accounts.account_now(store, username="jsmith")
    assert "removed from team oncology" in _run(store, "users", "remove-team", "jsmith", "oncology")
    after = accounts.account_now(store, username="jsmith")
    assert before is not None and after is not None and len(after.team_ids) == len(before.team_ids) - 1
    with store() as session:
        trail = session.execute(select(AuditLog.action, AuditLog.details)).all()
    actions = [action for action, _ in trail]
    assert {"user_unlock", "user_set_password", "user_remove_team"} <= set(actions)
    assert new not in " ".join(details for _, details in trail)


# --- sessions in the dashboard (AppTest, on a SQLite store of its own) ---


@pytest.fixture
def dashboard_store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    made = open_store(url, timezone="UTC")
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    monkeypatch.setenv("MONITOR_SEED_DEMO", "0")
    _user(made, teams=("oncology", "haematology"))
    return made


def _signed_in_app():
    at = _app(Viewer("jsmith", "clinician", (1, 2))).run()
    assert not at.exception and not (at.title and at.title[0].value == "Sign in")
    return at


def _sign_outs(store) -> list[str]:
    with store() as session:
        details = session.scalars(select(AuditLog.details).where(AuditLog.action == "sign_out")).all()
    return [json.loads(one)["reason"] for one in details]


def test_a_disabled_account_is_signed_out_of_an_open_session_at_once(dashboard_store) -> None:
    at = _signed_in_app()
    accounts.disable_user(dashboard_store, viewer=accounts.SYSTEM, username="jsmith", now=NOW)
    at.run()
    assert at.title[0].value == "Sign in" and not at.dataframe
    assert "can no longer sign in" in at.info[0].value
    assert _sign_outs(dashboard_store) == ["account disabled"]


def test_a_team_taken_away_applies_to_an_open_session_at_once(dashboard_store) -> None:
    at = _signed_in_app()
    assert len(at.session_state["viewer"].team_ids) == 2
    accounts.remove_team(dashboard_store, viewer=accounts.SYSTEM, username="jsmith", team="oncology", now=NOW)
    at.run()
    assert len(at.session_state["viewer"].team_ids) == 1


def test_an_idle_session_is_signed_out_and_the_sign_out_audited(dashboard_store) -> None:
    at = _signed_in_app()
    at.session_state["viewer_last_active"] = time.monotonic() - 31 * 60
    at.run()
    assert at.title[0].value == "Sign in" and not at.dataframe
    assert "without activity" in at.info[0].value
    assert _sign_outs(dashboard_store) == ["idle"]


def test_the_sign_out_button_is_audited(dashboard_store) -> None:
    at = _signed_in_app()
    at.sidebar.button(key="sign_out").click().run()
    assert at.title[0].value == "Sign in"
    assert _sign_outs(dashboard_store) == ["signed out"]


def _timer_script() -> None:
    """The idle timer's body in a page of its own; a run after the first is the full-app run it asked for,
    which reads the session as dashboard.py's does."""
    import streamlit as st

    from ui import identity

    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    if st.session_state["runs"] > 1:
        identity.signed_in()
    identity.idle_watch()


def _timer(last_active: float):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_timer_script, default_timeout=60)
    at.session_state["viewer"] = Viewer("jsmith", "clinician", (1, 2))
    at.session_state["viewer_last_active"] = last_active
    return at.run()


def _signed_out(at) -> bool:
    return "viewer" not in at.session_state or at.session_state["viewer"] is None


def test_the_idle_timer_signs_an_idle_session_out_and_its_runs_are_not_activity(dashboard_store) -> None:
    active = time.monotonic() - 60
    at = _timer(active)
    assert not at.exception and at.session_state["runs"] == 1  # active a minute ago: nothing to do
    assert at.session_state["viewer_last_active"] == active  # and the timer's run did not restart it
    at = _timer(time.monotonic() - 31 * 60)
    assert not at.exception and at.session_state["runs"] == 2 and _signed_out(at)
    assert _sign_outs(dashboard_store) == ["idle"]


def test_the_idle_timer_applies_account_changes_between_clicks_without_restarting_the_idle_time(
    dashboard_store,
) -> None:
    accounts.remove_team(dashboard_store, viewer=accounts.SYSTEM, username="jsmith", team="oncology", now=NOW)
    ten_minutes_ago = time.monotonic() - 10 * 60
    at = _timer(ten_minutes_ago)
    assert not at.exception and at.session_state["runs"] == 2
    assert at.session_state["viewer"].team_ids == (2,)
    assert at.session_state["viewer_last_active"] == ten_minutes_ago
    accounts.disable_user(dashboard_store, viewer=accounts.SYSTEM, username="jsmith", now=NOW)
    at = _timer(time.monotonic())
    assert not at.exception and at.session_state["runs"] == 2 and _signed_out(at)


def test_0016_keeps_accounts_and_teams_and_a_downgrade_keeps_the_trail(engine) -> None:
    """Accounts in teams (rows that refer to app_user) survive dropping the lock's columns; a downgrade
    refuses while the trail holds a sign-out, which the earlier schema cannot hold."""
    from sqlalchemy import text

    from db.migrate import current_revision, downgrade, head_revision, upgrade

    upgrade(engine, "0015_preliminary_corrections", timezone="UTC")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app_user (id, username, display_name, role, password_hash, is_active, "
                "failed_attempts, locked_until, created_at) VALUES (1, 'jsmith', 'J', 'clinician', NULL, "
                "true, 5, '2026-12-02 09:15:00', '2026-12-02 09:00:00')"
            )
        )
        connection.execute(text("INSERT INTO team (id, code, name) VALUES (1, 'oncology', 'Oncology')"))
        connection.execute(text("INSERT INTO user_team (user_id, team_id) VALUES (1, 1)"))
    upgrade(engine, timezone="UTC")
    store = make_session_factory(engine)
    assert accounts.account_now(store, username="jsmith") == Viewer("jsmith", "clinician", (1,))
    accounts.record_sign_out(store, username="jsmith", reason="idle", now=NOW)
    with pytest.raises(RuntimeError, match="sign-outs or account changes"):
        downgrade(engine, "0015_preliminary_corrections")
    # The refused step changed nothing (PostgreSQL undoes the steps above it too, in the same transaction).
    assert current_revision(engine) in {"0016", head_revision()}


def _checks_script() -> None:
    """What a download or a recorded action asks: in the page (`still_signed_in`), and later, outside
    it, through a check made while the page ran (`session_check`)."""
    import streamlit as st

    from ui import identity

    if "check" not in st.session_state:
        identity.signed_in()
        st.session_state["check"] = identity.session_check()
    st.session_state["still"] = identity.still_signed_in()
    if st.session_state.get("sign_out_now"):
        identity.sign_out()


def test_downloads_and_actions_can_ask_whether_the_session_still_holds(dashboard_store) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_checks_script, default_timeout=60)
    at.session_state["viewer"] = Viewer("jsmith", "clinician", (1, 2))
    at.run()
    check = at.session_state["check"]
    assert at.session_state["still"] and check()
    at.session_state["viewer_last_active"] = time.monotonic() - 31 * 60
    at.run()
    assert not at.session_state["still"]  # idle for too long: nothing more is handed over
    at.session_state["sign_out_now"] = True
    at.run()
    assert not check()  # the check made earlier, called after the sign-out (as a deferred download is)
