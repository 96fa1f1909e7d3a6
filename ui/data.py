"""Cached loaders: the only place the dashboard reads the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import services.audit
import services.patients
import services.worklist
from monitor.analysis.rules import SiteRules
from services import feed, imports, reports
from services import rules as site_settings
from services.accounts import Viewer
from services.admin import seed_demo_if_empty, synthetic_data_present
from services.config import DEFAULT_CACHE_SECONDS, Config, ConfigError
from services.patients import PatientView
from services.store import Store, open_store
from ui import timeline


@st.cache_resource(show_spinner=False)
def config() -> Config:
    """The site's configuration, read from the environment once per process (``ConfigError`` names a
    setting that cannot be used; dashboard.py shows it)."""
    return Config.from_environment()


# What the dashboard read is reused this long: the longest a page lags behind another process's import.
try:
    CACHE_SECONDS = config().cache_seconds
except ConfigError:  # dashboard.py reads the configuration again and refuses to start, naming the setting
    config.clear()
    CACHE_SECONDS = DEFAULT_CACHE_SECONDS


@st.cache_resource(show_spinner="Opening the store (on a first start, creating it and the demo cohort)...")
def store() -> Store:
    """The session factory; an empty store is migrated and, where allowed, seeded with the demo cohort."""
    factory = open_store(config())
    seed_demo_if_empty(factory, config=config(), now=datetime.now(UTC))
    return factory


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def synthetic_present() -> bool:
    return synthetic_data_present(store())


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def worklist(viewer: Viewer, timezone: str) -> pd.DataFrame:
    """The patients ``viewer`` may see in priority order (``services.worklist.worklist``)."""
    return services.worklist.worklist(store(), viewer=viewer, timezone=timezone, now=datetime.now(UTC))


# The worklist's "what changed" panel looks back as far as `python -m monitor alerts` does by default.
ALERT_HOURS = 24


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def alerts(viewer: Viewer, timezone: str) -> pd.DataFrame:
    """The alerts of the last ``ALERT_HOURS`` hours that still hold, in the worklist's order
    (``services.worklist.alerts``): flags that appeared, grades that rose, flags the lab took back."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=ALERT_HOURS)
    return services.worklist.alerts(store(), viewer=viewer, since=since, timezone=timezone, now=now)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def treated_patients(viewer: Viewer) -> list[int]:
    """Patients ``viewer`` may see with at least one chemotherapy event."""
    return services.worklist.treated_patients(store(), viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def handover_teams(viewer: Viewer) -> list[tuple[str, str]]:
    """The teams whose handover ``viewer`` may print: (code, name)."""
    return reports.handover_teams(store(), viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def patient_view(patient_key: int, viewer: Viewer, timezone: str) -> PatientView:
    """Everything the patient pages show of one patient (``services.patients.patient_view``)."""
    return services.patients.patient_view(
        store(), viewer=viewer, patient_key=patient_key, timezone=timezone, now=datetime.now(UTC)
    )


def record_view(
    patient_key: int | None, viewer: Viewer, page: str, detail: str = "", *, distinct: str | None = None
) -> None:
    """Record in the audit trail that ``viewer`` opened this patient (``None``: a list of patients) on
    ``page`` (``detail`` added to the row): once per patient opened (and per ``distinct``, what tells one
    view of the page from another, e.g. its filters), not at every rerun a widget causes (the session
    remembers the last view audited per page)."""
    seen = (viewer.username, patient_key, distinct)
    if st.session_state.get(f"audited_view:{page}") == seen:
        return
    services.audit.record_view(
        store(), viewer=viewer, patient_key=patient_key, what=page + detail, now=datetime.now(UTC)
    )
    st.session_state[f"audited_view:{page}"] = seen


def record_list_view(
    patient_keys: pd.Series | list[int], viewer: Viewer, page: str, detail: str = ""
) -> None:
    """Record in the audit trail that ``viewer`` saw these patients listed on ``page`` (names, identifiers,
    counts): one row per patient, once per distinct list in this session, not at every rerun nor again on
    another page showing the same list (``services.worklist.record_list_view``)."""
    keys = tuple(sorted({int(key) for key in patient_keys}))
    audited: set[tuple[str, tuple[int, ...]]] = st.session_state.setdefault("audited_lists", set())
    if (viewer.username, keys) in audited:
        return
    services.worklist.record_list_view(
        store(), viewer=viewer, patient_keys=keys, what=page + detail, now=datetime.now(UTC)
    )
    audited.add((viewer.username, keys))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def timeline_figure(
    patient_key: int,
    viewer: Viewer,
    lineages: tuple[str, ...],
    log: bool,
    window_days: int | None,
    timezone: str,
) -> go.Figure:
    """The patient's timeline figure (ui.timeline) with the nadir forecast ahead of the ANC, showing the last
    ``window_days`` of the patient's data (all when None), built once per patient and view."""
    view = patient_view(patient_key, viewer, timezone)
    return timeline.timeline_figure(
        view.results,
        events=view.events,
        cycles=view.cycles.cycles,
        history=view.history,
        lineages=lineages,
        log=log,
        window_days=window_days,
        timezone=timezone,
        forecast=view.cycles.forecast,
    )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def flowsheet(patient_key: int, viewer: Viewer, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The patient's flowsheet (ui.timeline.flowsheet): values and their low/high marks."""
    return timeline.flowsheet(patient_view(patient_key, viewer, timezone).results, timezone)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def rules() -> SiteRules:
    """The site's rules in force."""
    return site_settings.site_rules(store())


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def lab_ranges() -> pd.DataFrame:
    """The configured lab ranges, for people."""
    return site_settings.lab_range_list(store())


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def lab_codes() -> list[str]:
    """The labs a range can be set for."""
    return site_settings.lab_codes(store())


@st.cache_data(ttl=30, show_spinner=False)
def import_batches(viewer: Viewer) -> pd.DataFrame:
    """The most recent imports, for an administrator (``services.imports.import_history``)."""
    return imports.import_history(store(), viewer=viewer)


@st.cache_data(ttl=10, show_spinner=False)
def feed_state(viewer: Viewer) -> feed.FeedState:
    """The live feed's listeners and today's messages, for an administrator (``services.feed.feed_state``);
    kept 10 seconds: a listener records its sign of life every 10."""
    return feed.feed_state(store(), viewer=viewer, now=datetime.now(UTC), timezone=config().timezone)


@st.cache_data(ttl=30, show_spinner=False)
def team_codes() -> list[str]:
    """The care teams' codes, for choosing where imported patients go."""
    return imports.team_codes(store())


def batch_rejections(batch_id: int, viewer: Viewer) -> pd.DataFrame:
    """The records one import refused; never cached: every read is a view of patient data, audited."""
    return imports.refused_records(store(), batch_id, viewer=viewer, now=datetime.now(UTC))


def refresh() -> None:
    """Forget cached frames after a write, so every page shows the new data."""
    st.cache_data.clear()
