"""Cached loaders: the only place the dashboard reads the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from db.config import DEFAULT_CACHE_SECONDS, cache_seconds, display_timezone
from db.settings import site_rules
from monitor.analysis.cycles import cycle_days
from monitor.analysis.flags import episodes as monitor_episodes
from monitor.analysis.rules import SiteRules
from services import imports
from services import rules as site_settings
from services.admin import seed_demo_if_empty
from services.config import Config
from services.store import open_store
from ui import timeline

# What the dashboard read is reused this long: the longest a page lags behind another process's import.
try:
    CACHE_SECONDS = cache_seconds()
except ValueError:  # dashboard.py checks the setting again and refuses to start, naming it
    CACHE_SECONDS = DEFAULT_CACHE_SECONDS


@st.cache_resource(show_spinner=False)
def config() -> Config:
    """The site's configuration, read from the environment once per process (``ConfigError`` names a
    setting that cannot be used; dashboard.py shows it)."""
    return Config.from_environment()


@st.cache_resource(show_spinner="Opening the store (first start: creating it and the demo cohort)...")
def store() -> sessionmaker[Session]:
    """The session factory; an empty store is migrated and, where allowed, seeded with the demo cohort."""
    factory = open_store(config())
    seed_demo_if_empty(factory, config=config(), now=datetime.now(UTC))
    return factory


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def synthetic_present() -> bool:
    with store()() as session:
        return queries.has_synthetic_data(session)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def patients(viewer: Viewer) -> pd.DataFrame:
    """The patients ``viewer`` may see (materialised status), most recent CBC first."""
    with store()() as session:
        return queries.patient_list(session, viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def results(patient_key: int, viewer: Viewer, history: bool = False) -> pd.DataFrame:
    with store()() as session:
        return queries.patient_results(session, patient_key, viewer=viewer, history=history)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def events(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    with store()() as session:
        return queries.patient_events(session, patient_key, viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def timeline_figure(
    patient_key: int,
    viewer: Viewer,
    lineages: tuple[str, ...],
    log: bool,
    window_days: int | None,
    timezone: str,
) -> go.Figure:
    """The patient's timeline figure (ui.timeline), built once per patient and view."""
    current = results(patient_key, viewer)
    start = None
    if window_days is not None and not current.empty:
        start = current["collected_at"].max() - pd.Timedelta(days=window_days)
    return timeline.timeline_figure(
        current,
        events=events(patient_key, viewer),
        cycles=cycles(patient_key, viewer),
        history=results(patient_key, viewer, history=True),
        lineages=lineages,
        log=log,
        start=start,
        timezone=timezone,
        rules=rules().grading,
    )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def flowsheet(patient_key: int, viewer: Viewer, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The patient's flowsheet (ui.timeline.flowsheet): values and their low/high marks."""
    return timeline.flowsheet(results(patient_key, viewer), timezone)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def episodes(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    """The patient's WBC and ANC episodes below the limit, newest first."""
    current = results(patient_key, viewer).assign(patient_key=patient_key)
    parts = [monitor_episodes(current, analyte=a).assign(count=a.upper()) for a in ("wbc", "anc")]
    return pd.concat(parts, ignore_index=True).sort_values("start", ascending=False)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def treated_patients(viewer: Viewer) -> list[int]:
    """Patients ``viewer`` may see with at least one chemotherapy event."""
    with store()() as session:
        return queries.treated_patients(session, viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def cycles(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    """The patient's chemotherapy cycles under the site's rules."""
    with store()() as session:
        return queries.patient_cycles(session, patient_key, viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def cycle_results(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    """The patient's results placed in their cycles (day since each start), for the overlay."""
    with store()() as session:
        results = queries.patient_results(
            session, patient_key, viewer=viewer, analytes=("wbc", "anc", "alc", "plt")
        )
        events = queries.patient_events(session, patient_key, viewer=viewer)
        rules = site_rules(session).cycles
    keyed = {"patient_key": patient_key}
    return cycle_days(
        results.assign(**keyed), events.assign(**keyed), rules=rules, timezone=display_timezone()
    )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def patient_ranges(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    """Patient-specific ranges, active first, with who set them and why."""
    with store()() as session:
        return queries.patient_ranges(session, patient_key, viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def acknowledgements(patient_key: int, viewer: Viewer) -> pd.DataFrame:
    with store()() as session:
        return queries.acknowledgements(session, patient_key, viewer=viewer)


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
def import_batches() -> pd.DataFrame:
    return imports.import_history(store())


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
