"""Cached loaders: the only place the dashboard reads the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.config import database_url, seed_demo_when_empty
from db.demo import seed_demo
from db.store import open_store

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


@st.cache_data(ttl=60, show_spinner=False)
def synthetic_present() -> bool:
    with store()() as session:
        return queries.has_synthetic_data(session)


@st.cache_data(ttl=60, show_spinner=False)
def patients() -> pd.DataFrame:
    """The patient list (materialised status), most recent CBC first."""
    with store()() as session:
        return queries.patient_list(session)


@st.cache_data(ttl=60, show_spinner=False)
def results(patient_key: int, history: bool = False) -> pd.DataFrame:
    with store()() as session:
        return queries.patient_results(session, patient_key, history=history)


@st.cache_data(ttl=60, show_spinner=False)
def events(patient_key: int) -> pd.DataFrame:
    with store()() as session:
        return queries.patient_events(session, patient_key)


@st.cache_data(ttl=30, show_spinner=False)
def import_batches() -> pd.DataFrame:
    with store()() as session:
        return queries.import_batches(session)


@st.cache_data(ttl=30, show_spinner=False)
def batch_rejections(batch_id: int) -> pd.DataFrame:
    with store()() as session:
        return queries.batch_rejections(session, batch_id)


def refresh() -> None:
    """Forget cached frames after a write, so every page shows the new data."""
    st.cache_data.clear()
