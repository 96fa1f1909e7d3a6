"""Looking after the store (services.admin): the schema, the demo cohort, every patient's status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM
from db.models import Patient
from db.queries import patient_list
from services.admin import DemoConflict, recompute_all, seed_demo, seed_demo_if_empty, upgrade_schema
from services.config import Config
from services.imports import ImportOptions, import_path
from tests.conftest import DATA

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _patients(store: sessionmaker[Session]) -> int:
    with store() as session:
        return int(session.scalar(select(func.count()).select_from(Patient)) or 0)


def test_recompute_counts_a_cycles_days_in_the_sites_zone(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    events = tmp_path / "events.csv"
    events.write_text(  # an evening dose in New York: already the next day in UTC
        "patient_id,kind,start,end,label,details\n"
        "MRN1001,chemotherapy,2026-02-24T20:00:00-05:00,,Docetaxel cycle 1,docetaxel\n"
    )
    assert (
        import_path(store, events, options=ImportOptions(imported_by="test", site_timezone="UTC")).events == 1
    )
    noon_in_new_york = datetime(2026, 2, 24, 17, 0, tzinfo=UTC)

    def cycle_now(zone: str) -> object:
        assert recompute_all(store, now=noon_in_new_york, timezone=zone) == 2
        with store() as session:
            return patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["MRN1001", "cycle"]

    assert cycle_now("America/New_York") == 1  # the day of the dose has begun there
    assert pd.isna(cycle_now("UTC"))  # the dose's date is 25 February: no cycle yet


def test_the_demo_is_seeded_into_an_empty_store_the_site_allows_once_and_with_one_seed(
    store: sessionmaker[Session],
) -> None:
    url = str(store.kw["bind"].url)
    refused = Config(database_url=url, seed_demo=False)
    assert seed_demo_if_empty(store, config=refused, now=NOW) is None and _patients(store) == 0
    allowed = Config(database_url=url, seed_demo=True)
    seeded = seed_demo_if_empty(store, config=allowed, now=NOW)
    assert seeded is not None and seeded.patients == 60 and not seeded.already_seeded
    assert seeded.anchor == NOW.date() and seeded.results_added > 0 and seeded.events_added > 0
    assert seed_demo_if_empty(store, config=allowed, now=NOW) is None  # no longer empty: nothing again
    # A later day adds nothing (the cohort's end date was fixed); another seed would mix two histories.
    again = seed_demo(store, now=NOW + timedelta(days=3), timezone="UTC")
    assert again.already_seeded and again.anchor == NOW.date() and again.results_added == 0
    with pytest.raises(DemoConflict, match="simulated with seed 7"):
        seed_demo(store, seed=8, now=NOW, timezone="UTC")
    assert _patients(store) == 60 + seeded.showcase  # the showcase patients follow the simulated ones


def test_upgrade_creates_the_store_then_finds_it_current(engine: Engine) -> None:
    config = Config(database_url=engine.url.render_as_string(hide_password=False))
    first = upgrade_schema(config)
    assert first.before is None and first.after is not None and not first.already_current
    again = upgrade_schema(config)
    assert again.before == again.after == first.after and again.already_current
