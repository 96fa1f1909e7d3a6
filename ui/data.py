"""Cached loaders: the only place the dashboard reads the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

import services.patients
import services.worklist
from db import queries
from db.accounts import team_list
from db.config import (
    DEFAULT_CACHE_SECONDS,
    cache_seconds,
    database_url,
    seed_demo_when_empty,
)
from db.demo import seed_demo
from db.settings import lab_range_list, site_rules
from db.store import open_store
from monitor.analysis.rules import SiteRules
from services.accounts import Viewer
from services.config import Config
from services.patients import PatientView
from ui import timeline

# What the dashboard read is reused this long: the longest a page lags behind another process's import.
try:
    CACHE_SECONDS = cache_seconds()
except ValueError:  # dashboard.py checks the setting again and refuses to start, naming it
    CACHE_SECONDS = DEFAULT_CACHE_SECONDS
DEMO_PATIENTS = 60
DEMO_SEED = 7


@st.cache_resource(show_spinner="Opening the store (first start: creating it and the demo cohort)...")
def store() -> sessionmaker[Session]:
    """The session factory; an empty store is migrated and, where allowed, seeded with the demo cohort."""
    url = database_url()
    factory = open_store(url)
    with factory.begin() as session:
        if queries.patient_count(session) == 0 and seed_demo_when_empty(url):
            seed_demo(session, patients=DEMO_PATIENTS, seed=DEMO_SEED, today=datetime.now(UTC).date())
    return factory


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def synthetic_present() -> bool:
    with store()() as session:
        return queries.has_synthetic_data(session)


@st.cache_resource(show_spinner=False)
def config() -> Config:
    """The site's configuration, read from the environment once per process (dashboard.py checks it
    first and names a setting that cannot be used)."""
    return Config.from_environment()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def worklist(viewer: Viewer, timezone: str) -> pd.DataFrame:
    """The patients ``viewer`` may see in priority order (``services.worklist.worklist``)."""
    return services.worklist.worklist(store(), viewer=viewer, timezone=timezone, now=datetime.now(UTC))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def treated_patients(viewer: Viewer) -> list[int]:
    """Patients ``viewer`` may see with at least one chemotherapy event."""
    return services.worklist.treated_patients(store(), viewer=viewer)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def patient_view(patient_key: int, viewer: Viewer, timezone: str) -> PatientView:
    """Everything the patient pages show of one patient (``services.patients.patient_view``)."""
    return services.patients.patient_view(
        store(), viewer=viewer, patient_key=patient_key, timezone=timezone, now=datetime.now(UTC)
    )


def record_view(patient_key: int, viewer: Viewer, what: str) -> None:
    """Record in the audit trail that ``viewer`` opened this patient's page."""
    services.patients.record_view(
        store(), viewer=viewer, patient_key=patient_key, what=what, now=datetime.now(UTC)
    )


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
    view = patient_view(patient_key, viewer, timezone)
    start = None
    if window_days is not None and not view.results.empty:
        start = view.results["collected_at"].max() - pd.Timedelta(days=window_days)
    return timeline.timeline_figure(
        view.results,
        events=view.events,
        cycles=view.cycles.cycles,
        history=view.history,
        lineages=lineages,
        log=log,
        start=start,
        timezone=timezone,
    )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=200)
def flowsheet(patient_key: int, viewer: Viewer, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The patient's flowsheet (ui.timeline.flowsheet): values and their low/high marks."""
    return timeline.flowsheet(patient_view(patient_key, viewer, timezone).results, timezone)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def rules() -> SiteRules:
    with store()() as session:
        return site_rules(session)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def lab_ranges() -> pd.DataFrame:
    with store()() as session:
        return lab_range_list(session)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def lab_codes() -> list[str]:
    with store()() as session:
        return queries.lab_codes(session)


@st.cache_data(ttl=30, show_spinner=False)
def import_batches() -> pd.DataFrame:
    with store()() as session:
        return queries.import_batches(session)


@st.cache_data(ttl=30, show_spinner=False)
def team_codes() -> list[str]:
    """The care teams' codes, for choosing where imported patients go."""
    with store()() as session:
        return team_list(session)["code"].tolist()


@st.cache_data(ttl=30, show_spinner=False)
def batch_rejections(batch_id: int) -> pd.DataFrame:
    with store()() as session:
        return queries.batch_rejections(session, batch_id)


def audit_export(viewer: Viewer, what: str, patient_key: int | None) -> None:
    """Record a download in the audit trail (called as the download button's on_click)."""
    with store().begin() as session:
        queries.audit_export(session, viewer, what, patient_key, now=datetime.now(UTC))


def refresh() -> None:
    """Forget cached frames after a write, so every page shows the new data."""
    st.cache_data.clear()
