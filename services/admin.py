"""Looking after the store: its schema brought up to date, the synthetic demo cohort seeded and removed,
and every patient's status recomputed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import demo, queries, settings
from db.accounts import SYSTEM, ensure_demo_accounts
from db.audit import record
from db.demo import DemoConflict, RemovedCohort
from db.migrate import StoreOutOfDate, current_revision, upgrade
from db.session import make_engine
from db.status import refresh_all_status, refresh_patient_status
from db.status_pool import status_workers
from monitor.analysis.rules import set_value
from monitor.simulation.demo import simulate_cohort
from monitor.simulation.demo.showcase import SHOWCASES, TAC, TAC_SETTING, with_showcase
from services.config import Config

__all__ = [
    "DEMO_ACCOUNTS_WARNING",
    "DEMO_PATIENTS",
    "DEMO_SEED",
    "DemoConflict",
    "NO_ADMIN_HINT",
    "DemoSummary",
    "RemovedCohort",
    "SchemaUpgrade",
    "StoreOutOfDate",
    "demo_account_warnings",
    "has_active_admin",
    "recompute_all",
    "remove_demo",
    "seed_demo",
    "seed_demo_if_empty",
    "upgrade_schema",
]

# The demo cohort the command line seeds by default and the dashboard seeds into an empty store.
DEMO_PATIENTS = 60
DEMO_SEED = 7
# What an import says while the demo accounts can still sign in with their published password.
DEMO_ACCOUNTS_WARNING = (
    "this store still has the demo accounts with the published password 'demo': remove them with "
    "`python -m monitor demo --remove` before real use"
)
# What to do when no enabled administrator is left (after the demo's removal, say).
NO_ADMIN_HINT = (
    "no enabled administrator: create one with `python -m monitor users add NAME --role admin` "
    "(the password is asked for)"
)


@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    """The store's schema revision before and after an upgrade (``before`` None: the store was empty)."""

    before: str | None
    after: str | None

    @property
    def already_current(self) -> bool:
        return self.before == self.after


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What seeding the demo cohort did (``already_seeded``: this cohort was there, nothing was added)."""

    patients: int
    results_added: int
    events_added: int
    already_seeded: bool
    anchor: date
    showcase: int = 0  # showcase patients stored after the ``patients`` simulated ones


def upgrade_schema(config: Config) -> SchemaUpgrade:
    """Create the configured store or bring it to the latest schema, whatever its kind (the only way a
    shared PostgreSQL store is upgraded); a store holding data gets every patient's status recomputed."""
    engine = make_engine(config.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine, timezone=config.timezone)
        return SchemaUpgrade(before, current_revision(engine))
    finally:
        engine.dispose()


def seed_demo(
    store: sessionmaker[Session],
    *,
    patients: int = DEMO_PATIENTS,
    seed: int = DEMO_SEED,
    now: datetime,
    timezone: str,
) -> DemoSummary:
    """Simulate the synthetic demo cohort up to its anchor date (``now``'s date at the first seeding) and
    store it with the patients' status (cycle days counted in the site's ``timezone``); seeding the same
    cohort again adds nothing.

    Raises ``DemoConflict`` when the store holds a cohort simulated with another seed.
    """
    with store.begin() as session:
        return _seed(session, patients=patients, seed=seed, now=now, timezone=timezone)


def seed_demo_if_empty(store: sessionmaker[Session], *, config: Config, now: datetime) -> DemoSummary | None:
    """Seed the demo cohort into a store without patients when the site allows it (``config.seed_demo``,
    the dashboard's first start) and the demo was never removed from it; None when nothing was seeded."""
    if not config.seed_demo:
        return None
    with store.begin() as session:
        if queries.patient_count(session) or demo.was_removed(session):
            return None
        return _seed(session, patients=DEMO_PATIENTS, seed=DEMO_SEED, now=now, timezone=config.timezone)


def _seed(session: Session, *, patients: int, seed: int, now: datetime, timezone: str) -> DemoSummary:
    demo.check_seed(session, seed, now=now)
    anchor = demo.anchor_date(session, now=now)
    if demo.already_seeded(session, patients=patients, seed=seed, anchor=anchor):
        ensure_demo_accounts(session, now=now)  # a store seeded before accounts existed
        return DemoSummary(patients, 0, 0, True, anchor)
    # The showcase patients follow the simulated ones (``monitor.simulation.demo.showcase``).
    cohort = with_showcase(simulate_cohort(patients, seed=seed, end_date=anchor), end_date=anchor)
    stored = demo.store_results(session, cohort, patients=patients, seed=seed, anchor=anchor, now=now)
    rules_changed = _showcase_settings(session, now=now)
    # As after any import: the status of the patients whose results were written.
    refresh_patient_status(session, stored.written, now=now, timezone=timezone)
    events_added = demo.store_care(session, cohort, stored, now=now)
    # The patient-specific ranges change which limit applies, and the events place results in cycles; a
    # changed setting may concern any patient.
    if rules_changed:
        refresh_all_status(session, now=now, timezone=timezone)
    else:
        refresh_patient_status(session, stored.patients, now=now, timezone=timezone)
    return DemoSummary(patients, stored.results_added, events_added, False, anchor, len(SHOWCASES))


def _showcase_settings(session: Session, *, now: datetime) -> bool:
    """The per-regimen setting a showcase patient needs (TAC's febrile-neutropenia risk), written by the
    system and audited as any change of settings is, unless the site set that regimen's risk itself."""
    rules = settings.site_rules(session)
    regimen = rules.cycles.regimen(TAC[1])
    if regimen is not None and regimen.fn_risk is not None:
        return False
    overrides = rules.overrides
    for name, value in TAC_SETTING.items():
        overrides = set_value(overrides, f"cycles.regimens.{TAC[1].lower()}.{name}", value)
    _save_as_system(session, overrides, now=now)
    return True


def _remove_showcase_settings(session: Session, *, now: datetime) -> None:
    """Take the demo's own per-regimen setting out with the cohort (a site's own is left alone)."""
    rules = settings.site_rules(session)
    regimen = rules.cycles.regimen(TAC[1])
    if regimen is None or regimen.fn_risk_source != TAC_SETTING["fn_risk_source"]:
        return
    _save_as_system(session, set_value(rules.overrides, f"cycles.regimens.{TAC[1].lower()}", None), now=now)


def _save_as_system(session: Session, overrides: Mapping[str, Any], *, now: datetime) -> None:
    saved = settings.save_site_rules(session, overrides, by=SYSTEM.username, now=now)
    record(session, at=now, username=SYSTEM.username, action="settings", details=dict(saved.overrides))


def remove_demo(store: sessionmaker[Session], *, now: datetime, by: str) -> RemovedCohort:
    """Remove the synthetic cohort with all its rows and disable the demo accounts, audited under ``by``
    (``db.demo.remove_cohort``); the dashboard does not seed it again."""
    with store.begin() as session:
        removed = demo.remove_cohort(session, now=now, by=by)
        _remove_showcase_settings(session, now=now)
        return removed


def has_active_admin(store: sessionmaker[Session]) -> bool:
    """Whether any enabled account is an administrator: without one, nobody can administer the dashboard
    (``NO_ADMIN_HINT`` says how to create one)."""
    with store() as session:
        return demo.has_active_admin(session)


def demo_account_warnings(session: Session) -> tuple[str, ...]:
    """``DEMO_ACCOUNTS_WARNING`` while any demo account can still sign in with the published password, in
    the caller's transaction (an import's)."""
    return (DEMO_ACCOUNTS_WARNING,) if demo.accounts_with_published_password(session) else ()


def recompute_all(store: sessionmaker[Session], *, now: datetime, timezone: str, beside: bool = False) -> int:
    """Recompute every patient's status under the current rules (cycle days counted in the site's
    ``timezone``); return how many patients. ``beside``: computed by worker processes, one a core
    (`db.status_pool`), for a caller that may start processes (the command line)."""
    workers = status_workers() if beside else 1
    with store.begin() as session:  # writes nothing before the status: the workers read what it reads
        return refresh_all_status(session, now=now, timezone=timezone, workers=workers)


def synthetic_data_present(store: sessionmaker[Session]) -> bool:
    """Whether the store holds any synthetic (demo) patient: the dashboard then says so on every page."""
    with store() as session:
        return queries.has_synthetic_data(session)
